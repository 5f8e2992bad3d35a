/* Outgoing peer calls (mq_peer_call): one unary Call per request on a
 * cached channel per address, with a deadline. The whole call is one batch;
 * its completion maps the outcome onto one MQ_E* code and runs done()
 * exactly once on a queue thread:
 *   OK + CallResponse        -> 0 with the body
 *   the peer's mq_peer_reply -> its exact code, read from the PN_ERR_KEY
 *                               trailer (consistent with the gRPC status)
 *   UNAVAILABLE              -> MQ_EUNAVAIL (cannot connect, peer gone)
 *   DEADLINE_EXCEEDED        -> MQ_ETIMEDOUT
 *   CANCELLED                -> MQ_ECANCELED (our shutdown)
 *   any other status         -> mq_err_from_grpc(), details as message.
 * A call that failed to connect drops the address's cached channel, so the
 * next call dials afresh instead of failing fast on a stale connection. */
#include "peer/internal.h"
#include "util/clock.h"
#include "util/log.h"

#include <grpc/support/time.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct pn_ocall {
  struct mq_peer_net *net;
  struct pn_live live;
  struct mq_grpc_tag tag;
  mq_peer_call_done done;
  void *arg;
  grpc_byte_buffer *req_bb, *resp_bb;
  grpc_metadata_array imd, tmd;
  grpc_status_code status;
  grpc_slice details;
  char addr[300];
};

/* The exact code the peer sent in its trailer, if it is one of ours and
 * agrees with the status; else the mapping of the status. */
static int error_code(const struct pn_ocall *c) {
  for (size_t i = 0; i < c->tmd.count; i++) {
    const grpc_metadata *md = &c->tmd.metadata[i];
    if (!grpc_slice_str_cmp(md->key, PN_ERR_KEY)) {
      char v[16];
      pn_slice_str(md->value, v, sizeof v);
      char *end;
      long code = strtol(v, &end, 10);
      if (end != v && *end == '\0' && code < 0 && code >= MQ_ECOMPACTED &&
          mq_err_to_grpc((int)code) == (int)c->status)
        return (int)code;
    }
  }
  return mq_err_from_grpc(c->status);
}

/* Under net->mu: the cached channel for addr, created when missing. */
static grpc_channel *channel_get(struct mq_peer_net *net, const char *addr) {
  struct pn_channel *victim = &net->chans[0];
  int64_t now = mq_clock_mono_ms();
  for (int i = 0; i < PN_CHANNEL_CACHE; i++) {
    struct pn_channel *c = &net->chans[i];
    if (c->ch && strcmp(c->addr, addr) == 0) {
      c->used_ms = now;
      return c->ch;
    }
    if (!c->ch)
      victim = c;
    else if (victim->ch && c->used_ms < victim->used_ms)
      victim = c;
  }
  /* Calls in flight keep their own reference to an evicted channel. */
  if (victim->ch)
    grpc_channel_destroy(victim->ch);
  victim->ch = pn_channel_create(net, addr);
  snprintf(victim->addr, sizeof victim->addr, "%s", addr);
  victim->used_ms = now;
  return victim->ch;
}

static void channel_drop(struct mq_peer_net *net, const char *addr) {
  for (int i = 0; i < PN_CHANNEL_CACHE; i++) {
    struct pn_channel *c = &net->chans[i];
    if (c->ch && strcmp(c->addr, addr) == 0) {
      grpc_channel_destroy(c->ch);
      c->ch = NULL;
    }
  }
}

static void ocall_free(struct pn_ocall *c) {
  struct mq_peer_net *net = c->net;
  pthread_mutex_lock(&net->mu);
  pn_live_del(&c->live);
  pthread_mutex_unlock(&net->mu);
  grpc_call_unref(c->live.call);
  if (c->req_bb)
    grpc_byte_buffer_destroy(c->req_bb);
  if (c->resp_bb)
    grpc_byte_buffer_destroy(c->resp_bb);
  grpc_metadata_array_destroy(&c->imd);
  grpc_metadata_array_destroy(&c->tmd);
  grpc_slice_unref(c->details);
  free(c);
}

static void call_fn(struct mq_grpc_tag *t, bool ok) {
  struct pn_ocall *c = MQ_GRPC_CONTAINER(t, struct pn_ocall, tag);
  struct mq_peer_net *net = c->net;
  struct mq_status st;
  ProtobufCMessage *m = NULL;
  const uint8_t *body = NULL;
  size_t len = 0;
  int rc;

  mq_status_clear(&st);
  if (!ok) {
    rc = mq_status_set(&st, MQ_EINTERNAL, "peer call to %s failed in the transport", c->addr);
  } else if (c->status == GRPC_STATUS_OK) {
    m = mq_grpc_unpack(&memquorum__peer__v1__call_response__descriptor, c->resp_bb, &st);
    if (m) {
      const Memquorum__Peer__V1__CallResponse *r = (const Memquorum__Peer__V1__CallResponse *)m;
      rc = 0;
      body = r->body.data;
      len = r->body.len;
    } else {
      rc = mq_status_set(&st, MQ_ECORRUPT, "peer %s answered with a bad CallResponse", c->addr);
    }
  } else {
    char details[MQ_STATUS_MSG_MAX];
    pn_slice_str(c->details, details, sizeof details);
    rc = error_code(c);
    mq_status_set(&st, rc, "%s", details[0] ? details : mq_strerror(rc));
    if (c->status == GRPC_STATUS_UNAVAILABLE) {
      unsigned held = 0;
      pthread_mutex_lock(&net->mu);
      if (!net->cq_closing)
        channel_drop(net, c->addr);
      /* A refused TLS handshake shows only here when no pipe is up yet. */
      bool log = !net->stopping && mq_ratelimit_pass(&net->unreachable_log, mq_clock_mono_ms(),
                                                     PN_LOG_EVERY_MS, &held);
      pthread_mutex_unlock(&net->mu);
      /* In TLS 1.3 the server checks our certificate after we finished
       * the handshake: a refusal reaches us as a closed socket. */
      if (log)
        mq_info("peer", "cannot reach peer at %s: %s%s%s", c->addr, details,
                net->tls_on && !strstr(details, "Connection refused")
                    ? " (with mutual TLS, a certificate either side refused shows as "
                      "a failed handshake or a closed socket)"
                    : "",
                held ? " (repeated failures not logged)" : "");
    }
  }
  if (rc)
    PN_STAT_ADD(net, calls_failed, 1);
  c->done(c->arg, rc, &st, body ? body : (const uint8_t *)"", len);
  if (m)
    protobuf_c_message_free_unpacked(m, NULL);
  ocall_free(c);
}

int mq_peer_call(struct mq_peer_net *net, const char *addr, const uint8_t *body, size_t len,
                 int64_t deadline_ms, mq_peer_call_done done, void *arg) {
  Memquorum__Peer__V1__CallRequest req;
  Memquorum__Peer__V1__Hello h;
  grpc_op ops[6];

  if (!addr || !addr[0] || strlen(addr) >= 300 || !done || len > PN_MAX_FRAME || (len && !body))
    return MQ_EINVAL;
  struct pn_ocall *c = calloc(1, sizeof *c);
  if (!c)
    return MQ_ENOMEM;
  c->net = net;
  c->tag.fn = call_fn;
  c->done = done;
  c->arg = arg;
  c->details = grpc_empty_slice();
  snprintf(c->addr, sizeof c->addr, "%s", addr);
  grpc_metadata_array_init(&c->imd);
  grpc_metadata_array_init(&c->tmd);
  memquorum__peer__v1__call_request__init(&req);
  pn_hello_to_msg(&net->self, &h);
  req.from = &h;
  req.body.data = (uint8_t *)(len ? body : (const uint8_t *)"");
  req.body.len = len;
  c->req_bb = mq_grpc_pack(&req.base);

  int64_t now = mq_clock_mono_ms();
  if (deadline_ms == 0)
    deadline_ms = now + PN_CALL_DEFAULT_MS;
  int64_t left = deadline_ms > now ? deadline_ms - now : 0;
  gpr_timespec deadline =
      gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(left, GPR_TIMESPAN));

  memset(ops, 0, sizeof ops);
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[1].op = GRPC_OP_SEND_MESSAGE;
  ops[1].data.send_message.send_message = c->req_bb;
  ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
  ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
  ops[3].data.recv_initial_metadata.recv_initial_metadata = &c->imd;
  ops[4].op = GRPC_OP_RECV_MESSAGE;
  ops[4].data.recv_message.recv_message = &c->resp_bb;
  ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  ops[5].data.recv_status_on_client.trailing_metadata = &c->tmd;
  ops[5].data.recv_status_on_client.status = &c->status;
  ops[5].data.recv_status_on_client.status_details = &c->details;

  int rc = 0;
  pthread_mutex_lock(&net->mu);
  grpc_channel *ch = net->stopping ? NULL : channel_get(net, addr);
  grpc_call *call = NULL;
  if (!ch) {
    rc = net->stopping ? MQ_EUNAVAIL : MQ_ENOMEM;
  } else {
    call =
        grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, net->cq,
                                 grpc_slice_from_static_string(PN_CALL_PATH), NULL, deadline, NULL);
    pn_live_add(net, &c->live, call, PN_K_OCALL);
    if (pn_start_batch(net, call, ops, 6, &c->tag) != GRPC_CALL_OK) {
      pn_live_del(&c->live);
      rc = MQ_EINTERNAL;
    }
  }
  pthread_mutex_unlock(&net->mu);
  if (rc) {
    if (call)
      grpc_call_unref(call);
    grpc_byte_buffer_destroy(c->req_bb);
    grpc_metadata_array_destroy(&c->imd);
    grpc_metadata_array_destroy(&c->tmd);
    free(c);
    return rc;
  }
  PN_STAT_ADD(net, calls_sent, 1);
  return 0;
}

void pn_calls_release(struct mq_peer_net *net) {
  pthread_mutex_lock(&net->mu);
  for (int i = 0; i < PN_CHANNEL_CACHE; i++)
    if (net->chans[i].ch) {
      grpc_channel_destroy(net->chans[i].ch);
      net->chans[i].ch = NULL;
    }
  pthread_mutex_unlock(&net->mu);
}
