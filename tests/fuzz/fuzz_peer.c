/* Fuzz target: the peer transport's messages (agent/peer), what an agent
 * reads from whoever connects to its peer port or answers its dial. The
 * first byte picks the reader (0 the acceptor's side of a pipe: a Hello,
 * then frames; 1 the dialer's: a Welcome carrying the acceptor's Hello;
 * 2 a CallRequest; 3 a CallResponse); the rest is the message. The frames
 * and call bodies themselves go on to the Raft host and the request codec,
 * which fuzz_raft_frame and fuzz_reqcodec cover.
 *
 * Promises checked: a message unpacked packs and unpacks to the same
 * bytes (fuzz/pb.h); a Hello is taken or refused with a reason, and one taken gives
 * the same hello after a round trip through the message; pn_hello_ok
 * accepts only a hello that matches ours in protocol version, shard count
 * and seed hash, from another node with a name. */
#include "fuzz/fuzz.h"
#include "fuzz/pb.h"
#include "grpc/pack.h"
#include "peer/internal.h"

#include <string.h>

static const struct mq_peer_net *net(void) {
  static struct mq_peer_net *n;
  if (!n) {
    n = calloc(1, sizeof *n);
    FUZZ_CHECK(n);
    snprintf(n->self.node_id, sizeof n->self.node_id, "n1");
    snprintf(n->self.peer_address, sizeof n->self.peer_address, "127.0.0.1:7001");
    n->self.incarnation = 1;
    n->self.shards_total = 16;
    n->self.protocol_version = MQ_PEER_PROTOCOL_VERSION;
    n->self.seed_hash = 0x5eed;
  }
  return n;
}

static void hello(const Memquorum__Peer__V1__Hello *m) {
  struct mq_peer_hello h, h2;
  Memquorum__Peer__V1__Hello m2;
  char reason[256] = "";
  if (!pn_hello_from_msg(m, &h, reason, sizeof reason)) {
    FUZZ_CHECK(reason[0]);
    return;
  }
  pn_hello_to_msg(&h, &m2);
  FUZZ_CHECK(pn_hello_from_msg(&m2, &h2, reason, sizeof reason));
  FUZZ_CHECK(memcmp(&h, &h2, sizeof h) == 0);
  const struct mq_peer_hello *me = &net()->self;
  bool ok = pn_hello_ok(net(), &h, reason, sizeof reason);
  FUZZ_CHECK(ok ==
             (h.protocol_version == me->protocol_version && h.shards_total == me->shards_total &&
              h.seed_hash == me->seed_hash && h.node_id[0] && strcmp(h.node_id, me->node_id) != 0));
  FUZZ_CHECK(ok || reason[0]);
}

static ProtobufCMessage *unpack(const ProtobufCMessageDescriptor *d, const uint8_t *data,
                                size_t len) {
  grpc_slice s = grpc_slice_from_copied_buffer((const char *)data, len);
  grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
  grpc_slice_unref(s);
  struct mq_status st;
  mq_status_clear(&st);
  ProtobufCMessage *m = mq_grpc_unpack(d, bb, &st);
  grpc_byte_buffer_destroy(bb);
  FUZZ_CHECK(m || (st.code == MQ_EINVAL && st.msg[0]));
  if (m)
    fuzz_pb_check_repack(m);
  return m;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0)
    return 0;
  int kind = data[0] % 4;
  ProtobufCMessage *m = unpack(kind == 2   ? &memquorum__peer__v1__call_request__descriptor
                               : kind == 3 ? &memquorum__peer__v1__call_response__descriptor
                                           : &memquorum__peer__v1__pipe_message__descriptor,
                               data + 1, size - 1);
  if (!m)
    return 0;
  if (kind == 0) {
    const Memquorum__Peer__V1__PipeMessage *pm = (const void *)m;
    if (pm->body_case == MEMQUORUM__PEER__V1__PIPE_MESSAGE__BODY_HELLO) {
      hello(pm->hello);
    } else if (pm->body_case == MEMQUORUM__PEER__V1__PIPE_MESSAGE__BODY_FRAME) {
      FUZZ_CHECK(pm->frame.len == 0 || pm->frame.data);
    } else {
      for (size_t i = 0; i < pm->n_frames; i++)
        FUZZ_CHECK(pm->frames[i].len == 0 || pm->frames[i].data);
    }
  } else if (kind == 1) {
    const Memquorum__Peer__V1__PipeMessage *pm = (const void *)m;
    if (pm->body_case == MEMQUORUM__PEER__V1__PIPE_MESSAGE__BODY_WELCOME && pm->welcome->accepted)
      hello(pm->welcome->server);
  } else if (kind == 2) {
    const Memquorum__Peer__V1__CallRequest *c = (const void *)m;
    hello(c->from);
    FUZZ_CHECK(c->body.len == 0 || c->body.data);
  }
  protobuf_c_message_free_unpacked(m, NULL);
  return 0;
}
