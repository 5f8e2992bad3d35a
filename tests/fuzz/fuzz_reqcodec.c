/* Fuzz target: the forwarded-request codec (cluster/reqcodec.c), what an
 * agent reads from a peer that forwards a request to the shard's leader,
 * the leader's answer, and the change events a replica streams to an agent
 * that follows a shard. The first byte picks the decoder (0 request,
 * 1 result, 2 event), the rest is its input. Promises checked: an error or
 * a value that re-encodes to bytes that decode again; borrowed pointers lie
 * inside the input; every allocation is freed by mq_req_clear() (ASan's
 * leak check), also after an error. */
#include "cluster/internal.h"
#include "fuzz/fuzz.h"

#include <string.h>

static bool inside(const void *p, size_t n, const uint8_t *data, size_t len) {
  const uint8_t *q = p;
  return n == 0 || (q && q >= data && q <= data + len && n <= (size_t)(data + len - q));
}

/* A fixed clock, so that every input decodes the same way on every run. */
static const struct reqcodec_clock now = {1000000, 1700000000000};

static void request(const uint8_t *data, size_t len) {
  struct mq_req r, r2;
  void *owned;
  int rc = reqcodec_decode_req(data, len, &r, &owned, now);
  FUZZ_CHECK(rc == 0 || rc == MQ_ECORRUPT);
  if (rc)
    return;
  FUZZ_CHECK(owned == NULL && (r.type < MQ_REQ_STATUS || r.type == MQ_REQ_INGEST_PROBE) &&
             r.pre.type <= MQ_PRE_VALUE);
  FUZZ_CHECK(r.key && r.prefix && r.start_after && r.topic && r.ingest_source && r.p_shard1 >= 0);
  FUZZ_CHECK(inside(r.ingest_source, r.ingest_source_len, data, len));
  FUZZ_CHECK(inside(r.key, r.key_len, data, len) && inside(r.value, r.value_len, data, len));
  FUZZ_CHECK(inside(r.prefix, r.prefix_len, data, len) && inside(r.topic, r.topic_len, data, len));
  FUZZ_CHECK(inside(r.start_after, r.start_after_len, data, len));
  FUZZ_CHECK(inside(r.pre.value, r.pre.value_len, data, len));
  struct mq_buf b1, b2;
  mq_buf_init(&b1);
  mq_buf_init(&b2);
  reqcodec_encode_req(&b1, &r, now);
  FUZZ_CHECK(b1.err == 0 && reqcodec_decode_req(b1.data, b1.len, &r2, &owned, now) == 0);
  reqcodec_encode_req(&b2, &r2, now);
  /* the same bytes but for the deadline (time left and wall clock, the 16
   * bytes before the last 4), which is stamped from the clocks */
  FUZZ_CHECK(b1.len == b2.len && b1.len >= 20);
  FUZZ_CHECK(memcmp(b1.data, b2.data, b1.len - 20) == 0);
  FUZZ_CHECK(memcmp(b1.data + b1.len - 4, b2.data + b2.len - 4, 4) == 0);
  mq_buf_close(&b1);
  mq_buf_close(&b2);
}

static void result(const uint8_t *data, size_t len) {
  struct mq_req r, r2;
  mq_req_init(&r, MQ_REQ_GET);
  int rc = reqcodec_decode_result(data, len, &r);
  FUZZ_CHECK(rc == 0 || rc == MQ_ECORRUPT || rc == MQ_ENOMEM);
  if (rc == 0) {
    FUZZ_CHECK(r.status.code <= 0 && r.status.code >= -100);
    FUZZ_CHECK(r.n_kvs == 0 || r.kvs);
    FUZZ_CHECK(r.n_entries == 0 || r.entries);
    struct mq_buf b1, b2;
    mq_buf_init(&b1);
    mq_buf_init(&b2);
    reqcodec_encode_result(&b1, &r);
    mq_req_init(&r2, MQ_REQ_GET);
    FUZZ_CHECK(b1.err == 0 && reqcodec_decode_result(b1.data, b1.len, &r2) == 0);
    reqcodec_encode_result(&b2, &r2);
    FUZZ_CHECK(b1.len == b2.len && memcmp(b1.data, b2.data, b1.len) == 0);
    mq_req_clear(&r2);
    mq_buf_close(&b1);
    mq_buf_close(&b2);
  }
  mq_req_clear(&r);
}

static void event(const uint8_t *data, size_t len) {
  struct mq_reader rd;
  mq_reader_init(&rd, data, len);
  /* a reply carries events back to back: decode until the bytes end */
  while (mq_reader_left(&rd) > 0) {
    struct mq_event ev;
    int rc = reqcodec_decode_event(&rd, &ev);
    FUZZ_CHECK(rc == 0 || rc == MQ_ECORRUPT);
    if (rc)
      return;
    FUZZ_CHECK(ev.type <= MQ_EV_PRODUCE && ev.kv.key && ev.topic && ev.entry.key);
    FUZZ_CHECK(inside(ev.kv.key, ev.kv.key_len, data, len));
    FUZZ_CHECK(inside(ev.kv.value, ev.kv.value_len, data, len));
    FUZZ_CHECK(inside(ev.topic, ev.topic_len, data, len));
    FUZZ_CHECK(inside(ev.entry.key, ev.entry.key_len, data, len));
    FUZZ_CHECK(inside(ev.entry.value, ev.entry.value_len, data, len));
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0)
    return 0;
  switch (data[0] % 3) {
  case 0:
    request(data + 1, size - 1);
    break;
  case 1:
    result(data + 1, size - 1);
    break;
  default:
    event(data + 1, size - 1);
    break;
  }
  return 0;
}
