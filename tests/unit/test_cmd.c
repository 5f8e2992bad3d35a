/* The command codec: round trips of every command type, strict rejection of
 * malformed bytes, and random bytes that must never crash the decoder. */
#include "check.h"
#include "rng.h"
#include "store/cmd.h"
#include "util/err.h"

#include <stdbool.h>

static void check_same(const struct mq_cmd *a, const struct mq_cmd *b) {
  CHECK_EQ(a->type, b->type);
  CHECK_EQ(a->now_ms, b->now_ms);
  CHECK_UEQ(a->client_id, b->client_id);
  CHECK_UEQ(a->seq, b->seq);
  bool ia = a->ingest_partition >= 0 && a->ingest_source_len > 0;
  bool ib = b->ingest_partition >= 0 && b->ingest_source_len > 0;
  CHECK_EQ(ia, ib);
  if (ia) {
    CHECK_BYTES_EQ(a->ingest_source, a->ingest_source_len, b->ingest_source, b->ingest_source_len);
    CHECK_EQ(a->ingest_partition, b->ingest_partition);
    CHECK_EQ(a->ingest_offset, b->ingest_offset);
    CHECK_EQ(a->ingest_prev, b->ingest_prev);
  }
  CHECK_EQ(a->return_previous, b->return_previous);
  if (a->type == MQ_CMD_NOOP)
    return;
  CHECK_BYTES_EQ(a->key, a->key_len, b->key, b->key_len);
  switch (a->type) {
  case MQ_CMD_PUT:
    CHECK_BYTES_EQ(a->value, a->value_len, b->value, b->value_len);
    CHECK_EQ(a->ttl_ms, b->ttl_ms);
    /* fall through */
  case MQ_CMD_DELETE:
    CHECK_EQ(a->pre.type, b->pre.type);
    if (a->pre.type == MQ_PRE_VERSION || a->pre.type == MQ_PRE_MOD_REVISION)
      CHECK_EQ(a->pre.num, b->pre.num);
    if (a->pre.type == MQ_PRE_VALUE)
      CHECK_BYTES_EQ(a->pre.value, a->pre.value_len, b->pre.value, b->pre.value_len);
    break;
  case MQ_CMD_EXPIRE:
    CHECK_EQ(a->expect_mod_revision, b->expect_mod_revision);
    break;
  case MQ_CMD_PRODUCE:
    CHECK_BYTES_EQ(a->topic, a->topic_len, b->topic, b->topic_len);
    CHECK_EQ(a->partition, b->partition);
    CHECK_BYTES_EQ(a->value, a->value_len, b->value, b->value_len);
    CHECK_EQ(a->timestamp, b->timestamp);
    break;
  default:
    break;
  }
}

static void roundtrip(const struct mq_cmd *c) {
  struct mq_buf b;
  struct mq_cmd d;
  mq_buf_init(&b);
  CHECK_EQ(mq_cmd_encode(c, &b), 0);
  CHECK_EQ(mq_cmd_decode(b.data, b.len, &d), 0);
  check_same(c, &d);
  /* every strict prefix is truncated, hence corrupt */
  for (size_t n = 0; n < b.len; n++)
    CHECK_EQ(mq_cmd_decode(b.data, n, &d), MQ_ECORRUPT);
  /* a trailing byte is corrupt too */
  mq_buf_put_u8(&b, 0);
  CHECK_EQ(mq_cmd_decode(b.data, b.len, &d), MQ_ECORRUPT);
  mq_buf_close(&b);
}

static struct mq_cmd base(enum mq_cmd_type t) {
  struct mq_cmd c;
  memset(&c, 0, sizeof c);
  c.type = t;
  c.now_ms = 1700000000123;
  c.ingest_partition = -1;
  return c;
}

static void test_roundtrips(void) {
  struct mq_cmd c = base(MQ_CMD_NOOP);
  roundtrip(&c);

  c = base(MQ_CMD_PUT);
  c.key = "user:1:x";
  c.key_len = 8;
  c.value = (const uint8_t *)"\0\1\2binary";
  c.value_len = 9;
  c.ttl_ms = 5000;
  c.return_previous = true;
  c.client_id = UINT64_MAX;
  c.seq = 1ull << 40;
  roundtrip(&c);
  for (int p = MQ_PRE_NONE; p <= MQ_PRE_VALUE; p++) {
    c.pre.type = (enum mq_precond_type)p;
    c.pre.num = -7;
    c.pre.value = (const uint8_t *)"old";
    c.pre.value_len = 3;
    roundtrip(&c);
  }
  c.value_len = 0; /* empty value */
  roundtrip(&c);

  c = base(MQ_CMD_DELETE);
  c.key = "k";
  c.key_len = 1;
  c.pre.type = MQ_PRE_MOD_REVISION;
  c.pre.num = 42;
  roundtrip(&c);

  c = base(MQ_CMD_EXPIRE);
  c.key = "k";
  c.key_len = 1;
  c.expect_mod_revision = INT64_MAX;
  c.now_ms = INT64_MIN;
  roundtrip(&c);

  c = base(MQ_CMD_PRODUCE);
  c.topic = "orders.v1";
  c.topic_len = 9;
  c.partition = 7;
  c.key = "user:2";
  c.key_len = 6;
  c.value = (const uint8_t *)"payload";
  c.value_len = 7;
  c.timestamp = 0;
  c.ingest_source = "memquorum-input";
  c.ingest_source_len = 15;
  c.ingest_partition = 3;
  c.ingest_offset = 123456;
  c.ingest_prev = 123001;
  roundtrip(&c);
  c.ingest_prev = -1; /* the first record of its (partition, shard) */
  roundtrip(&c);

  /* a previous offset at or after the record's own cannot be encoded */
  {
    struct mq_buf e;
    mq_buf_init(&e);
    c.ingest_prev = c.ingest_offset;
    CHECK_EQ(mq_cmd_encode(&c, &e), MQ_EINVAL);
    c.ingest_prev = -2;
    CHECK_EQ(mq_cmd_encode(&c, &e), MQ_EINVAL);
    CHECK_EQ(e.len, 0);
    mq_buf_close(&e);
    c.ingest_prev = -1;
  }

  /* a zeroed command carries no ingest position */
  c.ingest_partition = 0;
  c.ingest_source_len = 0;
  struct mq_buf b;
  struct mq_cmd d;
  mq_buf_init(&b);
  CHECK_EQ(mq_cmd_encode(&c, &b), 0);
  CHECK_EQ(mq_cmd_decode(b.data, b.len, &d), 0);
  CHECK_EQ(d.ingest_partition, -1);
  mq_buf_close(&b);
}

static void test_rejects(void) {
  struct mq_cmd c = base(MQ_CMD_PUT), d;
  c.key = "k";
  c.key_len = 1;
  struct mq_buf b;
  mq_buf_init(&b);
  CHECK_EQ(mq_cmd_encode(&c, &b), 0);
  uint8_t *p = b.data;

  p[0] = 2; /* unknown version */
  CHECK_EQ(mq_cmd_decode(p, b.len, &d), MQ_ECORRUPT);
  CHECK_EQ(d.type, 0);
  p[0] = 1;
  p[1] = 9; /* unknown type */
  CHECK_EQ(mq_cmd_decode(p, b.len, &d), MQ_ECORRUPT);
  p[1] = MQ_CMD_PUT;
  p[2] = 0x80; /* unknown flag */
  CHECK_EQ(mq_cmd_decode(p, b.len, &d), MQ_ECORRUPT);
  p[2] = 0;
  p[b.len - 1] = 9; /* unknown precondition type */
  CHECK_EQ(mq_cmd_decode(p, b.len, &d), MQ_ECORRUPT);
  p[b.len - 1] = 0;
  CHECK_EQ(mq_cmd_decode(p, b.len, &d), 0);
  CHECK_EQ(mq_cmd_decode(NULL, 0, &d), MQ_ECORRUPT);

  /* a length far past the end, and an overlong varint */
  uint8_t huge[] = {1, MQ_CMD_PUT, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f};
  CHECK_EQ(mq_cmd_decode(huge, sizeof huge, &d), MQ_ECORRUPT);
  uint8_t overlong[] = {1, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
  CHECK_EQ(mq_cmd_decode(overlong, sizeof overlong, &d), MQ_ECORRUPT);

  /* encode refuses what it could not decode again */
  mq_buf_reset(&b);
  c.type = (enum mq_cmd_type)17;
  CHECK_EQ(mq_cmd_encode(&c, &b), MQ_EINVAL);
  c.type = MQ_CMD_PUT;
  c.key_len = MQ_CMD_MAX_KEY + 1;
  CHECK_EQ(mq_cmd_encode(&c, &b), MQ_EINVAL);
  CHECK_EQ(b.len, 0);
  mq_buf_close(&b);
}

/* Random bytes and random mutations of valid encodings: decode returns 0 or
 * MQ_ECORRUPT, and whatever it accepts re-encodes to the same command. */
static void test_fuzz(uint64_t seed) {
  /* printed first, so that a failing CHECK below comes with its seed */
  fprintf(stderr, "test_cmd: fuzz seed %" PRIu64 "\n", seed);
  rng_state = seed;
  uint8_t buf[256];
  struct mq_cmd d;
  struct mq_buf b, b2;
  mq_buf_init(&b);
  mq_buf_init(&b2);
  size_t ok = 0;
  for (int iter = 0; iter < 200000; iter++) {
    size_t n = rnd() % sizeof buf;
    for (size_t i = 0; i < n; i++)
      buf[i] = (uint8_t)rnd();
    if (n > 3 && (rnd() & 1)) { /* make the header plausible to get deeper */
      buf[0] = 1;
      buf[1] = (uint8_t)(rnd() % 5);
      buf[2] = (uint8_t)(rnd() % 4);
    }
    int rc = mq_cmd_decode(buf, n, &d);
    if (rc != 0 && rc != MQ_ECORRUPT)
      CHECK_FAIL("seed %" PRIu64 " iter %d: decode returned %d", seed, iter, rc);
    if (rc == 0) {
      ok++;
      /* varints may carry redundant bytes, so compare meanings, not bytes */
      struct mq_cmd d2;
      mq_buf_reset(&b2);
      if (mq_cmd_encode(&d, &b2) != 0 || mq_cmd_decode(b2.data, b2.len, &d2) != 0)
        CHECK_FAIL("seed %" PRIu64 " iter %d: decoded command does not re-encode", seed, iter);
      check_same(&d, &d2);
    }
  }
  /* bit flips of a valid produce */
  struct mq_cmd c = base(MQ_CMD_PRODUCE);
  c.topic = "t";
  c.topic_len = 1;
  c.key = "key";
  c.key_len = 3;
  c.value = (const uint8_t *)"value";
  c.value_len = 5;
  c.ingest_source = "src";
  c.ingest_source_len = 3;
  c.ingest_partition = 1;
  c.ingest_offset = 7;
  c.ingest_prev = 3;
  CHECK_EQ(mq_cmd_encode(&c, &b), 0);
  for (int iter = 0; iter < 100000; iter++) {
    memcpy(buf, b.data, b.len);
    int flips = 1 + (int)(rnd() % 3);
    for (int f = 0; f < flips; f++)
      rnd_flip(buf, b.len);
    int rc = mq_cmd_decode(buf, b.len, &d);
    if (rc != 0 && rc != MQ_ECORRUPT)
      CHECK_FAIL("seed %" PRIu64 " flip iter %d: decode returned %d", seed, iter, rc);
  }
  CHECK_GT(ok, 0);
  mq_buf_close(&b);
  mq_buf_close(&b2);
}

int main(void) {
  test_roundtrips();
  test_rejects();
  test_fuzz(0x5eed0001);
  printf("test_cmd: ok\n");
  return 0;
}
