/* mqbench driver for the MemQuorum public API (memquorum.v1).
 *
 *   put      KV.Put of a value of --value-size bytes to key user:<k>:bench
 *   get      KV.Get of user:<k>:bench (preloaded with put)
 *   produce  PartitionService.Produce of the same key and value to --topic
 *   echo     the very PutRequest of "put", sent to /memquorum.v1.KV/Put (or
 *            --method) with the reply not parsed: any OK reply counts.
 *
 * Why echo does not parse: mq-echo-server returns the request bytes, which
 * are a PutRequest, not a PutResponse, so parsing would fail by design.
 * Sending byte-for-byte the same request as "put" makes echo-server vs.
 * agent numbers differ only by what the server does with it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "driver.h"
#include "memquorum/v1/memquorum.pb-c.h"
#include "util/err.h"

enum op {
  OP_PUT,
  OP_GET,
  OP_PRODUCE,
  OP_ECHO
};

struct mq_state {
  enum op op;
  const char *method;
  const char *topic;
  uint8_t *value;
  size_t value_size;
  uint64_t ttl_ms;
};

static int mq_open(void **state, const char *op, const struct mq_bench_params *p, char *err,
                   size_t errlen) {
  static const struct {
    const char *name;
    enum op op;
    const char *method;
  } ops[] = {
      {"put", OP_PUT, "/memquorum.v1.KV/Put"},
      {"get", OP_GET, "/memquorum.v1.KV/Get"},
      {"produce", OP_PRODUCE, "/memquorum.v1.PartitionService/Produce"},
      {"echo", OP_ECHO, "/memquorum.v1.KV/Put"},
  };
  struct mq_state *s = calloc(1, sizeof(*s));
  if (!s) return MQ_ENOMEM;
  size_t i;
  for (i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
    if (strcmp(op, ops[i].name) == 0) break;
  if (i == sizeof(ops) / sizeof(ops[0])) {
    snprintf(err, errlen, "unknown op '%s' (expected put, get, produce or echo)", op);
    free(s);
    return MQ_EINVAL;
  }
  if (p->method && ops[i].op != OP_ECHO) {
    snprintf(err, errlen, "--method applies to --op echo only");
    free(s);
    return MQ_EINVAL;
  }
  s->op = ops[i].op;
  s->method = p->method ? p->method : ops[i].method;
  s->topic = p->topic;
  s->value_size = p->value_size;
  s->ttl_ms = p->ttl_ms;
  s->value = mq_bench_value_new(p);
  if (!s->value) {
    free(s);
    return MQ_ENOMEM;
  }
  *state = s;
  return 0;
}

static const char *mq_method(void *state) { return ((struct mq_state *)state)->method; }

static const char *mq_preload_op(void *state) {
  return ((struct mq_state *)state)->op == OP_GET ? "put" : NULL;
}

static grpc_byte_buffer *mq_request(void *state, uint64_t k) {
  struct mq_state *s = state;
  char key[48];
  snprintf(key, sizeof(key), "user:%llu:bench", (unsigned long long)k);
  ProtobufCBinaryData value = {s->value_size, s->value};
  switch (s->op) {
  case OP_PUT:
  case OP_ECHO: {
    Memquorum__V1__PutRequest req = MEMQUORUM__V1__PUT_REQUEST__INIT;
    req.key = key;
    req.value = value;
    if (s->op == OP_PUT) req.ttl_ms = (int64_t)s->ttl_ms;
    return mq_codec_pack(&req.base);
  }
  case OP_GET: {
    Memquorum__V1__GetRequest req = MEMQUORUM__V1__GET_REQUEST__INIT;
    req.key = key;
    return mq_codec_pack(&req.base);
  }
  case OP_PRODUCE: {
    Memquorum__V1__Entry entry = MEMQUORUM__V1__ENTRY__INIT;
    entry.key = key;
    entry.value = value;
    Memquorum__V1__ProduceRequest req = MEMQUORUM__V1__PRODUCE_REQUEST__INIT;
    req.topic = (char *)s->topic;
    req.partition = -1;
    req.entry = &entry;
    return mq_codec_pack(&req.base);
  }
  }
  return NULL;
}

static int mq_check(void *state, grpc_byte_buffer *reply) {
  struct mq_state *s = state;
  const ProtobufCMessageDescriptor *d;
  switch (s->op) {
  case OP_PUT:
    d = &memquorum__v1__put_response__descriptor;
    break;
  case OP_GET:
    d = &memquorum__v1__get_response__descriptor;
    break;
  case OP_PRODUCE:
    d = &memquorum__v1__produce_response__descriptor;
    break;
  case OP_ECHO:
    return 0; /* any OK reply: see the top of this file */
  default:
    return MQ_ECORRUPT;
  }
  if (!reply) return MQ_ECORRUPT;
  ProtobufCMessage *m;
  if (mq_codec_unpack(reply, d, &m) != 0) return MQ_ECORRUPT;
  int rc = 0;
  if (s->op == OP_GET && ((Memquorum__V1__GetResponse *)m)->kv == NULL) rc = MQ_ECORRUPT;
  protobuf_c_message_free_unpacked(m, NULL);
  return rc;
}

static void mq_close(void *state) {
  struct mq_state *s = state;
  if (!s) return;
  free(s->value);
  free(s);
}

const struct mq_bench_driver mq_bench_driver_memquorum = {
    .name = "memquorum",
    .ops = "put get produce echo",
    .open = mq_open,
    .method = mq_method,
    .preload_op = mq_preload_op,
    .request = mq_request,
    .check = mq_check,
    .close = mq_close,
};

uint8_t *mq_bench_value_new(const struct mq_bench_params *p) {
  uint8_t *v = malloc(p->value_size ? p->value_size : 1);
  if (!v) return NULL;
  uint64_t x = p->seed * 0x9e3779b97f4a7c15ull + 1;
  for (size_t k = 0; k < p->value_size; k++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    v[k] = (uint8_t)('a' + x % 26);
  }
  return v;
}
