/* Fuzz target: the public gRPC API's requests (agent/api), the bytes an
 * app sends its agent. The first byte picks the method, the second where
 * the payload is cut into two slices (0: one slice, which is unpacked where
 * it lies; otherwise gRPC's reader joins them); the rest is the request
 * message. Each request goes the way api/unary.c takes it: unpack, the
 * method's prepare (validation of what conversion would lose, then the
 * struct mq_req), then the node's validation (cluster/exec.c), then, for a
 * request that passed, the reply built from a result made of its inputs.
 *
 * Promises checked: a refusal is INVALID_ARGUMENT (NOT_FOUND for an
 * unknown health service) with a message; a request unpacked packs and
 * unpacks to the same bytes (fuzz/pb.h); the struct mq_req holds the message's own
 * strings and numbers; a key that passed validation maps to a shard in
 * range; the reply unpacks as the method's response and carries the key it
 * was built from; a health check names one of our services or is refused
 * NOT_FOUND. ASan's leak check covers the arena and the replies. */
#include "api/internal.h"
#include "cluster/internal.h"
#include "cluster/sharding.h"
#include "fuzz/fuzz.h"
#include "fuzz/pb.h"

#include "grpc/health/v1/health.pb-c.h"

#include <string.h>

enum {
  SHARDS = 16
};

struct method {
  const struct api_unary_method *um;          /* NULL: Watch, unpack only */
  const ProtobufCMessageDescriptor *in, *out; /* out NULL: no reply built here */
};

static const struct method methods[] = {
    {&api_um_put, &memquorum__v1__put_request__descriptor,
     &memquorum__v1__put_response__descriptor},
    {&api_um_get, &memquorum__v1__get_request__descriptor,
     &memquorum__v1__get_response__descriptor},
    {&api_um_delete, &memquorum__v1__delete_request__descriptor,
     &memquorum__v1__delete_response__descriptor},
    {&api_um_scan, &memquorum__v1__scan_request__descriptor,
     &memquorum__v1__scan_response__descriptor},
    {&api_um_produce, &memquorum__v1__produce_request__descriptor,
     &memquorum__v1__produce_response__descriptor},
    {&api_um_read, &memquorum__v1__read_request__descriptor,
     &memquorum__v1__read_response__descriptor},
    {&api_um_status, &memquorum__v1__status_request__descriptor, NULL},
    {&api_um_recover, &memquorum__v1__recover_request__descriptor, NULL},
    {&api_um_health_check, &grpc__health__v1__health_check_request__descriptor,
     &grpc__health__v1__health_check_response__descriptor},
    {NULL, &memquorum__v1__watch_request__descriptor, NULL},
};
enum {
  N_METHODS = sizeof methods / sizeof methods[0]
};

static struct mq_node *node(void) {
  static struct mq_node *n;
  if (!n) {
    n = calloc(1, sizeof *n);
    FUZZ_CHECK(n);
    mq_store_limits_default(&n->limits);
    n->n_shards = SHARDS;
  }
  return n;
}

static grpc_byte_buffer *payload(const uint8_t *data, size_t len, size_t cut) {
  grpc_slice s[2];
  size_t n = 0;
  if (cut > 0 && cut < len) {
    s[n++] = grpc_slice_from_copied_buffer((const char *)data, cut);
    s[n++] = grpc_slice_from_copied_buffer((const char *)data + cut, len - cut);
  } else {
    s[n++] = grpc_slice_from_copied_buffer((const char *)data, len);
  }
  grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(s, n);
  for (size_t i = 0; i < n; i++)
    grpc_slice_unref(s[i]);
  return bb;
}

static bool same(const char *a, size_t alen, const char *b) {
  return b && strlen(b) == alen && memcmp(a, b, alen) == 0;
}

/* The request's strings are the message's, numbers carried over. */
static void check_req(const ProtobufCMessage *m, const struct mq_req *r) {
  if (m->descriptor == &memquorum__v1__put_request__descriptor) {
    const Memquorum__V1__PutRequest *p = (const void *)m;
    FUZZ_CHECK(r->type == MQ_REQ_PUT && r->key == p->key && r->key_len == strlen(p->key));
    FUZZ_CHECK(r->value_len == p->value.len && r->ttl_ms == p->ttl_ms);
  } else if (m->descriptor == &memquorum__v1__get_request__descriptor) {
    const Memquorum__V1__GetRequest *g = (const void *)m;
    FUZZ_CHECK(r->type == MQ_REQ_GET && r->key == g->key);
    FUZZ_CHECK(r->serializable == (g->consistency == MEMQUORUM__V1__CONSISTENCY__SERIALIZABLE));
  } else if (m->descriptor == &memquorum__v1__scan_request__descriptor) {
    const Memquorum__V1__ScanRequest *s = (const void *)m;
    FUZZ_CHECK(r->type == MQ_REQ_SCAN && r->prefix == s->prefix && s->limit >= 0);
    FUZZ_CHECK(r->limit == (uint32_t)s->limit && r->start_after == s->start_after);
  } else if (m->descriptor == &memquorum__v1__produce_request__descriptor) {
    const Memquorum__V1__ProduceRequest *p = (const void *)m;
    FUZZ_CHECK(r->type == MQ_REQ_PRODUCE && r->topic == p->topic && r->partition == p->partition);
  } else if (m->descriptor == &memquorum__v1__read_request__descriptor) {
    const Memquorum__V1__ReadRequest *q = (const void *)m;
    FUZZ_CHECK(r->type == MQ_REQ_READ && r->topic == q->topic && q->count >= 0);
    FUZZ_CHECK(r->offset == q->offset && r->count == (uint32_t)q->count);
  }
}

/* A result made of the request's own inputs, as the node would fill it. */
static void fill_result(struct mq_req *r, struct mq_kv *kv, struct mq_entry *e) {
  memset(kv, 0, sizeof *kv);
  memset(e, 0, sizeof *e);
  kv->key = r->type == MQ_REQ_SCAN ? r->prefix : r->key;
  kv->key_len = r->type == MQ_REQ_SCAN ? r->prefix_len : r->key_len;
  kv->value = r->value;
  kv->value_len = r->value_len;
  kv->create_revision = kv->mod_revision = 5;
  kv->version = 1;
  e->key = r->key;
  e->key_len = r->key_len;
  e->offset = r->offset;
  r->revision = 5;
  r->shard = 3;
  r->has_kv = r->type == MQ_REQ_GET || r->return_previous;
  r->kv = *kv;
  r->deleted = true;
  r->out_offset = 9;
  if (r->type == MQ_REQ_SCAN) {
    r->kvs = kv;
    r->n_kvs = 1;
  }
  if (r->type == MQ_REQ_READ) {
    r->entries = e;
    r->n_entries = 1;
  }
}

/* The reply unpacks as the method's response and carries the key. */
static void check_reply(const struct method *me, struct api_unary *u) {
  const struct mq_req *r = &u->req;
  grpc_byte_buffer *bb = me->um->reply(u);
  FUZZ_CHECK(bb);
  struct mq_status st;
  mq_status_clear(&st);
  ProtobufCMessage *m = mq_grpc_unpack(me->out, bb, &st);
  grpc_byte_buffer_destroy(bb);
  FUZZ_CHECK(m);
  if (me->out == &memquorum__v1__put_response__descriptor) {
    const Memquorum__V1__PutResponse *p = (const void *)m;
    FUZZ_CHECK(p->revision == 5 && (p->previous != NULL) == r->return_previous);
    FUZZ_CHECK(!p->previous || same(r->key, r->key_len, p->previous->key));
  } else if (me->out == &memquorum__v1__get_response__descriptor) {
    const Memquorum__V1__GetResponse *g = (const void *)m;
    FUZZ_CHECK(g->kv && same(r->key, r->key_len, g->kv->key));
    FUZZ_CHECK(g->kv->value.len == r->value_len);
  } else if (me->out == &memquorum__v1__delete_response__descriptor) {
    const Memquorum__V1__DeleteResponse *d = (const void *)m;
    FUZZ_CHECK(d->deleted && d->revision == 5);
  } else if (me->out == &memquorum__v1__scan_response__descriptor) {
    const Memquorum__V1__ScanResponse *s = (const void *)m;
    FUZZ_CHECK(s->n_kvs == 1 && same(r->prefix, r->prefix_len, s->kvs[0]->key));
  } else if (me->out == &memquorum__v1__produce_response__descriptor) {
    const Memquorum__V1__ProduceResponse *p = (const void *)m;
    FUZZ_CHECK(p->offset == 9 && p->revision == 5);
  } else if (me->out == &memquorum__v1__read_response__descriptor) {
    const Memquorum__V1__ReadResponse *q = (const void *)m;
    FUZZ_CHECK(q->n_entries == 1 && same(r->key, r->key_len, q->entries[0]->key));
  } else if (me->out == &grpc__health__v1__health_check_response__descriptor) {
    const Grpc__Health__V1__HealthCheckResponse *h = (const void *)m;
    FUZZ_CHECK(h->status == GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING);
  }
  protobuf_c_message_free_unpacked(m, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2)
    return 0;
  const struct method *me = &methods[data[0] % N_METHODS];
  size_t cut = data[1];
  data += 2;
  size -= 2;

  struct api_unary u;
  memset(&u, 0, sizeof u);
  mq_grpc_arena_init(&u.arena);
  struct mq_status st;
  mq_status_clear(&st);
  grpc_byte_buffer *bb = payload(data, size, cut);
  u.msg = mq_grpc_unpack_in(me->in, bb, &u.arena, &st);
  grpc_byte_buffer_destroy(bb);
  if (!u.msg) {
    FUZZ_CHECK(st.code == MQ_EINVAL && st.msg[0]);
    return 0;
  }
  fuzz_pb_check_repack(u.msg);

  if (me->um) {
    static struct mq_api_server srv;
    srv.node = node();
    u.srv = &srv;
    u.um = me->um;
    int rc = me->um->prepare(&u, &st);
    if (me->um == &api_um_health_check) {
      /* answered here: the node (never ready here) is NOT_SERVING */
      const Grpc__Health__V1__HealthCheckRequest *h = (const void *)u.msg;
      bool known = !h->service[0] || api_is_service(h->service);
      FUZZ_CHECK(known ? rc == 1 : (rc == MQ_ENOTFOUND && st.code == MQ_ENOTFOUND));
      if (rc == 1)
        check_reply(me, &u);
    } else if (rc != 0) {
      FUZZ_CHECK(rc == MQ_EINVAL && st.code == MQ_EINVAL && st.msg[0]);
    } else {
      check_req(u.msg, &u.req);
      rc = exec_validate(node(), &u.req);
      FUZZ_CHECK(rc == 0 ||
                 (rc == MQ_EINVAL && u.req.status.code == MQ_EINVAL && u.req.status.msg[0]));
      if (rc == 0 &&
          (u.req.type == MQ_REQ_PUT || u.req.type == MQ_REQ_GET || u.req.type == MQ_REQ_DELETE)) {
        int shard = mq_shard_of_key(u.req.key, u.req.key_len, SHARDS);
        FUZZ_CHECK(shard >= 0 && shard < SHARDS);
      }
      if (rc == 0 && me->out) {
        struct mq_kv kv;
        struct mq_entry e;
        fill_result(&u.req, &kv, &e);
        check_reply(me, &u);
      }
    }
  }
  protobuf_c_message_free_unpacked(u.msg, &u.arena.pa);
  return 0;
}
