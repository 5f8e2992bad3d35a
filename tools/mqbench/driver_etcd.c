/* mqbench driver for etcd's v3 KV API (etcdserverpb), so that one load
 * generator drives both MemQuorum and etcd with the same calls, keys and
 * values, and the numbers differ only by the server.
 *
 *   put  KV.Put of a value of --value-size bytes to key user:<k>:bench
 *   get  KV.Range of exactly that key (preloaded with put); linearizable
 *        unless --serializable, which sets RangeRequest.serializable
 *
 * Keys are the byte strings driver_mq.c uses, and values are the same bytes
 * for the same --seed. A get counts as an answer only when the Range
 * returned the one key asked for: an empty Range means the preload did not
 * land, and counting it would flatter the read path. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "driver.h"
#include "etcd/rpc.pb-c.h"
#include "util/err.h"

enum op {
  OP_PUT,
  OP_GET
};

struct etcd_state {
  enum op op;
  int serializable;
  uint8_t *value;
  size_t value_size;
};

static int etcd_open(void **state, const char *op, const struct mq_bench_params *p, char *err,
                     size_t errlen) {
  enum op o;
  if (strcmp(op, "put") == 0) {
    o = OP_PUT;
  } else if (strcmp(op, "get") == 0) {
    o = OP_GET;
  } else {
    snprintf(err, errlen, "unknown op '%s' for etcd (expected put or get)", op);
    return MQ_EINVAL;
  }
  if (p->method) {
    snprintf(err, errlen, "--method applies to --target memquorum --op echo only");
    return MQ_EINVAL;
  }
  struct etcd_state *s = calloc(1, sizeof(*s));
  if (!s) return MQ_ENOMEM;
  s->op = o;
  s->serializable = p->serializable;
  s->value_size = p->value_size;
  s->value = mq_bench_value_new(p);
  if (!s->value) {
    free(s);
    return MQ_ENOMEM;
  }
  *state = s;
  return 0;
}

static const char *etcd_method(void *state) {
  return ((struct etcd_state *)state)->op == OP_PUT ? "/etcdserverpb.KV/Put"
                                                    : "/etcdserverpb.KV/Range";
}

static const char *etcd_preload_op(void *state) {
  return ((struct etcd_state *)state)->op == OP_GET ? "put" : NULL;
}

static grpc_byte_buffer *etcd_request(void *state, uint64_t k) {
  struct etcd_state *s = state;
  char key[48];
  int n = snprintf(key, sizeof(key), "user:%llu:bench", (unsigned long long)k);
  ProtobufCBinaryData kb = {(size_t)n, (uint8_t *)key};
  if (s->op == OP_PUT) {
    Etcdserverpb__PutRequest req = ETCDSERVERPB__PUT_REQUEST__INIT;
    req.key = kb;
    req.value.len = s->value_size;
    req.value.data = s->value;
    return mq_codec_pack(&req.base);
  }
  Etcdserverpb__RangeRequest req = ETCDSERVERPB__RANGE_REQUEST__INIT;
  req.key = kb;
  req.serializable = s->serializable != 0;
  return mq_codec_pack(&req.base);
}

static int etcd_check(void *state, grpc_byte_buffer *reply) {
  struct etcd_state *s = state;
  if (!reply) return MQ_ECORRUPT;
  ProtobufCMessage *m;
  const ProtobufCMessageDescriptor *d = s->op == OP_PUT ? &etcdserverpb__put_response__descriptor
                                                        : &etcdserverpb__range_response__descriptor;
  if (mq_codec_unpack(reply, d, &m) != 0) return MQ_ECORRUPT;
  int rc = 0;
  if (s->op == OP_PUT) {
    /* etcd always sends a header with the revision the put created. */
    Etcdserverpb__PutResponse *r = (Etcdserverpb__PutResponse *)m;
    if (!r->header || r->header->revision <= 0) rc = MQ_ECORRUPT;
  } else {
    Etcdserverpb__RangeResponse *r = (Etcdserverpb__RangeResponse *)m;
    if (r->n_kvs != 1) rc = MQ_ECORRUPT;
  }
  protobuf_c_message_free_unpacked(m, NULL);
  return rc;
}

static void etcd_close(void *state) {
  struct etcd_state *s = state;
  if (!s) return;
  free(s->value);
  free(s);
}

const struct mq_bench_driver mq_bench_driver_etcd = {
    .name = "etcd",
    .ops = "put get",
    .open = etcd_open,
    .method = etcd_method,
    .preload_op = etcd_preload_op,
    .request = etcd_request,
    .check = etcd_check,
    .close = etcd_close,
};
