/* The forwarded-request codec (cluster/reqcodec.c): round trips of every
 * request type, of results and of change events; every truncation and a
 * trailing byte refused; bit flips and random bytes, after which a decoder
 * must return an error or a value that is valid (pointers inside the input,
 * enums in range, counts that match), never crash or read out of bounds.
 * The ASan/UBSan build runs it too, which is what catches a stray read. */
#include "check.h"
#include "cluster/internal.h"
#include "rng.h"
#include "util/clock.h"

#include <stdbool.h>

static struct reqcodec_clock clk(void) {
  return (struct reqcodec_clock){mq_clock_mono_ms(), mq_clock_wall_ms()};
}

/* p[0..n) lies inside data[0..len) (or is empty). */
static bool inside(const void *p, size_t n, const uint8_t *data, size_t len) {
  if (n == 0)
    return true;
  const uint8_t *q = p;
  return q && q >= data && q <= data + len && n <= (size_t)(data + len - q);
}

#define FIELDS_EQ(a, b, f) CHECK_BYTES_EQ((a)->f, (a)->f##_len, (b)->f, (b)->f##_len)

/* ---- requests ----------------------------------------------------------- */

/* Every input field set, whatever the type uses: the codec carries them
 * all. */
static struct mq_req full_req(enum mq_req_type t) {
  /* what mq_req_init() makes, with every input set */
  return (struct mq_req){
      .type = t,
      .key = "user:42:profile",
      .key_len = 15,
      .value = (const uint8_t *)"\0\1\2\xff value",
      .value_len = 10,
      .ttl_ms = 60000,
      .pre = {MQ_PRE_VALUE, -7, (const uint8_t *)"old", 3},
      .return_previous = true,
      .serializable = true,
      .keys_only = true,
      .prefix = "user:42:",
      .prefix_len = 8,
      .start_after = "user:42:a",
      .start_after_len = 9,
      .limit = 1000,
      .topic = "orders.v1",
      .topic_len = 9,
      .partition = 7,
      .timestamp = 1700000000123,
      .offset = INT64_MAX,
      .count = UINT32_MAX,
      .client_id = UINT64_MAX,
      .seq = 1ull << 40,
      .deadline_ms = mq_clock_mono_ms() + 5000,
      .p_shard1 = 8,
      .ingest_source = "memquorum-input",
      .ingest_source_len = 15,
      .ingest_partition = 3,
      .ingest_offset = 1042,
      .ingest_prev = 1017,
      .ingest_recorded = MQ_INGEST_UNKNOWN,
  };
}

static void check_same_req(const struct mq_req *a, const struct mq_req *b) {
  CHECK_EQ(a->type, b->type);
  FIELDS_EQ(a, b, key);
  FIELDS_EQ(a, b, value);
  CHECK_EQ(a->ttl_ms, b->ttl_ms);
  CHECK_EQ(a->pre.type, b->pre.type);
  CHECK_EQ(a->pre.num, b->pre.num);
  CHECK_BYTES_EQ(a->pre.value, a->pre.value_len, b->pre.value, b->pre.value_len);
  CHECK_EQ(a->return_previous, b->return_previous);
  CHECK_EQ(a->serializable, b->serializable);
  CHECK_EQ(a->keys_only, b->keys_only);
  FIELDS_EQ(a, b, prefix);
  FIELDS_EQ(a, b, start_after);
  CHECK_UEQ(a->limit, b->limit);
  FIELDS_EQ(a, b, topic);
  CHECK_EQ(a->partition, b->partition);
  CHECK_EQ(a->timestamp, b->timestamp);
  CHECK_EQ(a->offset, b->offset);
  CHECK_UEQ(a->count, b->count);
  CHECK_UEQ(a->client_id, b->client_id);
  CHECK_UEQ(a->seq, b->seq);
  CHECK_EQ(a->p_shard1, b->p_shard1);
  FIELDS_EQ(a, b, ingest_source);
  CHECK_EQ(a->ingest_partition, b->ingest_partition);
  CHECK_EQ(a->ingest_offset, b->ingest_offset);
  CHECK_EQ(a->ingest_prev, b->ingest_prev);
}

/* What any accepted request must satisfy, whatever the bytes were. */
static void check_valid_req(const struct mq_req *r, const uint8_t *data, size_t len, int64_t before,
                            int64_t after) {
  CHECK(r->type < MQ_REQ_STATUS || r->type == MQ_REQ_INGEST_PROBE);
  CHECK(r->pre.type >= MQ_PRE_NONE && r->pre.type <= MQ_PRE_VALUE);
  CHECK(r->key && r->prefix && r->start_after && r->topic); /* never NULL */
  CHECK(inside(r->key, r->key_len, data, len));
  CHECK(inside(r->value, r->value_len, data, len));
  CHECK(inside(r->pre.value, r->pre.value_len, data, len));
  CHECK(inside(r->prefix, r->prefix_len, data, len));
  CHECK(inside(r->start_after, r->start_after_len, data, len));
  CHECK(inside(r->topic, r->topic_len, data, len));
  CHECK_GE(r->p_shard1, 0);
  /* at most an hour ahead; an expired one is a millisecond in the past */
  CHECK_GE(r->deadline_ms, before - 1);
  CHECK_LE(r->deadline_ms, after + 3600000);
}

static int decode_req(const uint8_t *p, size_t n, struct mq_req *r) {
  void *owned = (void *)1;
  int rc = reqcodec_decode_req(p, n, r, &owned, clk());
  CHECK(owned == NULL); /* the request borrows from p, owns nothing */
  return rc;
}

static void roundtrip_req(const struct mq_req *r) {
  struct mq_buf b;
  struct mq_req d;
  mq_buf_init(&b);
  reqcodec_encode_req(&b, r, clk());
  CHECK_EQ(b.err, 0);
  int64_t before = mq_clock_mono_ms();
  CHECK_EQ(decode_req(b.data, b.len, &d), 0);
  int64_t after = mq_clock_mono_ms();
  check_same_req(r, &d);
  check_valid_req(&d, b.data, b.len, before, after);
  /* the time left travels, not the clock: same deadline give or take the
   * time the test took */
  CHECK_GE(d.deadline_ms, r->deadline_ms - 1000);
  CHECK_LE(d.deadline_ms, r->deadline_ms + (after - before) + 1);
  for (size_t n = 0; n < b.len; n++)
    if (decode_req(b.data, n, &d) != MQ_ECORRUPT)
      CHECK_FAIL("type %d: a prefix of %zu of %zu bytes is not refused", r->type, n, b.len);
  mq_buf_put_u8(&b, 0);
  CHECK_EQ(decode_req(b.data, b.len, &d), MQ_ECORRUPT);
  mq_buf_close(&b);
}

static void test_req_roundtrips(void) {
  for (int t = MQ_REQ_PUT; t <= MQ_REQ_READ; t++) {
    struct mq_req r = full_req((enum mq_req_type)t);
    roundtrip_req(&r);
    /* every precondition and flag combination */
    for (int p = MQ_PRE_NONE; p <= MQ_PRE_VALUE; p++)
      for (int f = 0; f < 8; f++) {
        r.pre.type = (enum mq_precond_type)p;
        r.return_previous = f & 1;
        r.serializable = f & 2;
        r.keys_only = f & 4;
        roundtrip_req(&r);
      }
    /* empty everything: strings come back "" (never NULL), numbers 0 */
    mq_req_init(&r, (enum mq_req_type)t);
    r.deadline_ms = mq_clock_mono_ms() + 100;
    roundtrip_req(&r);
    /* extremes of the signed fields */
    r = full_req((enum mq_req_type)t);
    r.ttl_ms = INT64_MIN;
    r.pre.num = INT64_MIN;
    r.partition = INT32_MIN;
    r.timestamp = INT64_MIN;
    r.offset = -1;
    r.p_shard1 = INT32_MAX;
    roundtrip_req(&r);
  }

  /* Status and recovery act on the agent they reach: never forwarded. */
  struct mq_buf b;
  struct mq_req d;
  mq_buf_init(&b);
  for (int t = MQ_REQ_STATUS; t <= MQ_REQ_TYPES; t++) {
    if (t == MQ_REQ_INGEST_PROBE)
      continue; /* forwarded to the shard's leader like a write */
    struct mq_req r = full_req((enum mq_req_type)t);
    mq_buf_reset(&b);
    reqcodec_encode_req(&b, &r, clk());
    CHECK_EQ(decode_req(b.data, b.len, &d), MQ_ECORRUPT);
  }
  mq_buf_close(&b);
}

static void test_req_rejects(void) {
  struct mq_req r = full_req(MQ_REQ_PUT), d;
  struct mq_buf b;
  mq_buf_init(&b);
  reqcodec_encode_req(&b, &r, clk());
  uint8_t *p = b.data;
  CHECK_EQ(decode_req(p, b.len, &d), 0);

  p[0] = CALL_GOSSIP; /* not a request */
  CHECK_EQ(decode_req(p, b.len, &d), MQ_ECORRUPT);
  p[0] = CALL_REQ;
  p[1] = 1; /* the version before ingest positions */
  CHECK_EQ(decode_req(p, b.len, &d), MQ_ECORRUPT);
  p[1] = 3; /* unknown version */
  CHECK_EQ(decode_req(p, b.len, &d), MQ_ECORRUPT);
  p[1] = 2;
  p[2] = 0xff; /* unknown type */
  CHECK_EQ(decode_req(p, b.len, &d), MQ_ECORRUPT);
  p[2] = MQ_REQ_PUT;
  CHECK_EQ(decode_req(p, b.len, &d), 0);
  CHECK_EQ(decode_req(NULL, 0, &d), MQ_ECORRUPT);

  /* The tail is: ... u64 time left, u64 wall deadline, u32 shard + 1. */
  size_t left_at = b.len - 20, shard_at = b.len - 4;
  int64_t wall = mq_clock_wall_ms();

  /* a shard + 1 below zero */
  p[shard_at + 3] = 0x80;
  CHECK_EQ(decode_req(p, b.len, &d), MQ_ECORRUPT);
  p[shard_at + 3] = 0;

  /* more than an hour left is corrupt; exactly an hour is not */
  for (int i = 0; i < 8; i++)
    p[left_at + i] = (uint8_t)(3600001ull >> (8 * i));
  CHECK_EQ(decode_req(p, b.len, &d), MQ_ECORRUPT);
  for (int i = 0; i < 8; i++) {
    p[left_at + i] = (uint8_t)(3600000ull >> (8 * i));
    p[left_at + 8 + i] = (uint8_t)((uint64_t)(wall + 7200000) >> (8 * i));
  }
  int64_t before = mq_clock_mono_ms();
  CHECK_EQ(decode_req(p, b.len, &d), 0);
  CHECK_GE(d.deadline_ms, before + 3600000);

  /* A wall deadline already past wins over the time left: the request
   * arrives expired (deadline 1 ms ago) and is refused unapplied. */
  for (int i = 0; i < 8; i++)
    p[left_at + 8 + i] = (uint8_t)((uint64_t)(wall - 10) >> (8 * i));
  CHECK_EQ(decode_req(p, b.len, &d), 0);
  CHECK_LT(d.deadline_ms, mq_clock_mono_ms());

  /* a length past the end, and a varint of eleven bytes */
  uint8_t huge[] = {CALL_REQ, 1, MQ_REQ_GET, 0xff, 0xff, 0xff, 0xff, 0x0f};
  CHECK_EQ(decode_req(huge, sizeof huge, &d), MQ_ECORRUPT);
  uint8_t overlong[] = {CALL_REQ, 1,    MQ_REQ_GET, 0xff, 0xff, 0xff, 0xff,
                        0xff,     0xff, 0xff,       0xff, 0xff, 0xff, 0x01};
  CHECK_EQ(decode_req(overlong, sizeof overlong, &d), MQ_ECORRUPT);
  mq_buf_close(&b);
}

/* ---- results ------------------------------------------------------------ */

static struct mq_kv kv_of(const char *k, const char *v, int64_t rev, int32_t shard) {
  struct mq_kv kv = {0};
  kv.key = k;
  kv.key_len = strlen(k);
  kv.value = (const uint8_t *)v;
  kv.value_len = strlen(v);
  kv.create_revision = rev;
  kv.mod_revision = rev + 1;
  kv.version = 2;
  kv.expires_at_ms = rev ? 1700000000000 : 0;
  kv.shard = shard;
  return kv;
}

static void check_same_kv(const struct mq_kv *a, const struct mq_kv *b) {
  FIELDS_EQ(a, b, key);
  FIELDS_EQ(a, b, value);
  CHECK_EQ(a->create_revision, b->create_revision);
  CHECK_EQ(a->mod_revision, b->mod_revision);
  CHECK_EQ(a->version, b->version);
  CHECK_EQ(a->expires_at_ms, b->expires_at_ms);
  CHECK_EQ(a->shard, b->shard);
}

static void check_same_result(const struct mq_req *a, const struct mq_req *b) {
  CHECK_EQ(a->status.code, b->status.code);
  CHECK_STREQ(a->status.msg, b->status.msg);
  CHECK_STREQ(a->p_leader_hint, b->p_leader_hint);
  CHECK_EQ(a->revision, b->revision);
  CHECK_EQ(a->shard, b->shard);
  CHECK_EQ(a->deleted, b->deleted);
  CHECK_EQ(a->out_offset, b->out_offset);
  CHECK_EQ(a->has_kv, b->has_kv);
  if (a->has_kv)
    check_same_kv(&a->kv, &b->kv);
  CHECK_UEQ(a->n_kvs, b->n_kvs);
  for (size_t i = 0; i < a->n_kvs; i++)
    check_same_kv(&a->kvs[i], &b->kvs[i]);
  CHECK_EQ(a->more, b->more);
  CHECK_UEQ(a->n_entries, b->n_entries);
  for (size_t i = 0; i < a->n_entries; i++) {
    const struct mq_entry *x = &a->entries[i], *y = &b->entries[i];
    FIELDS_EQ(x, y, key);
    FIELDS_EQ(x, y, value);
    CHECK_EQ(x->timestamp, y->timestamp);
    CHECK_EQ(x->offset, y->offset);
    CHECK_EQ(x->partition, y->partition);
  }
  CHECK_EQ(a->next_offset, b->next_offset);
  CHECK_EQ(a->high_watermark, b->high_watermark);
  CHECK_EQ(a->log_start_offset, b->log_start_offset);
  CHECK_EQ(a->ingest_recorded, b->ingest_recorded);
}

/* Copies of key and value are NUL-terminated (req_copy_pair). */
static void check_valid_kv(const struct mq_kv *kv) {
  CHECK(kv->key && kv->value);
  CHECK_EQ(kv->key[kv->key_len], '\0');
  CHECK_EQ(kv->value[kv->value_len], '\0');
}

static void check_valid_result(const struct mq_req *r) {
  CHECK_LE(r->status.code, 0);
  CHECK_GE(r->status.code, -100);
  CHECK_LT(strlen(r->status.msg), sizeof r->status.msg);
  CHECK_LT(strlen(r->p_leader_hint), sizeof r->p_leader_hint);
  if (r->has_kv)
    check_valid_kv(&r->kv);
  CHECK(r->n_kvs == 0 || r->kvs);
  for (size_t i = 0; i < r->n_kvs; i++)
    check_valid_kv(&r->kvs[i]);
  CHECK(r->n_entries == 0 || r->entries);
  for (size_t i = 0; i < r->n_entries; i++)
    CHECK(r->entries[i].key && r->entries[i].value);
}

static int decode_result(const uint8_t *p, size_t n, struct mq_req *r) {
  mq_req_init(r, MQ_REQ_GET);
  return reqcodec_decode_result(p, n, r);
}

static void roundtrip_result(const struct mq_req *r) {
  struct mq_buf b;
  struct mq_req d;
  mq_buf_init(&b);
  reqcodec_encode_result(&b, r);
  CHECK_EQ(b.err, 0);
  CHECK_EQ(decode_result(b.data, b.len, &d), 0);
  check_same_result(r, &d);
  check_valid_result(&d);
  mq_req_clear(&d);
  /* every prefix is refused, and what it allocated before is freed by
   * mq_req_clear (the leak checker of the ASan build watches) */
  for (size_t n = 0; n < b.len; n++) {
    if (decode_result(b.data, n, &d) != MQ_ECORRUPT)
      CHECK_FAIL("a result prefix of %zu of %zu bytes is not refused", n, b.len);
    mq_req_clear(&d);
  }
  mq_buf_put_u8(&b, 0);
  CHECK_EQ(decode_result(b.data, b.len, &d), MQ_ECORRUPT);
  mq_req_clear(&d);
  mq_buf_close(&b);
}

static void test_result_roundtrips(void) {
  struct mq_req r;
  mq_req_init(&r, MQ_REQ_PUT); /* a bare success */
  roundtrip_result(&r);

  mq_status_set(&r.status, MQ_ENOTLEADER, "shard 7 is led by node-2");
  snprintf(r.p_leader_hint, sizeof r.p_leader_hint, "node-2");
  roundtrip_result(&r);

  mq_req_init(&r, MQ_REQ_PUT); /* put with the previous value */
  r.revision = INT64_MAX;
  r.shard = 15;
  r.has_kv = true;
  r.kv = kv_of("user:1:x", "before", 41, 15);
  roundtrip_result(&r);
  r.kv = kv_of("", "", 0, 0); /* an empty key and value */
  roundtrip_result(&r);

  mq_req_init(&r, MQ_REQ_DELETE);
  r.deleted = true;
  r.revision = 9;
  roundtrip_result(&r);

  mq_req_init(&r, MQ_REQ_SCAN);
  struct mq_kv kvs[3] = {kv_of("a", "1", 1, 0), kv_of("b", "", 2, 1),
                         kv_of("c\xff", "\0\1", 3, INT32_MAX)};
  kvs[2].value_len = 2;
  r.kvs = kvs;
  r.n_kvs = 3;
  r.more = true;
  roundtrip_result(&r);

  mq_req_init(&r, MQ_REQ_READ);
  struct mq_entry ents[2] = {
      {"k1", 2, (const uint8_t *)"v1", 2, 1700000000000, 0, 3},
      {"", 0, (const uint8_t *)"", 0, INT64_MIN, INT64_MAX, -1},
  };
  r.entries = ents;
  r.n_entries = 2;
  r.next_offset = 2;
  r.high_watermark = 2;
  r.log_start_offset = 0;
  r.ingest_recorded = 1042;
  roundtrip_result(&r);

  mq_req_init(&r, MQ_REQ_PRODUCE);
  r.out_offset = 123456789;
  r.revision = 77;
  r.shard = 3;
  mq_status_set(&r.status, MQ_ENOSPACE, "%s", "memory budget of 64 MiB is full");
  roundtrip_result(&r);

  /* the longest message and hint the codec carries */
  mq_req_init(&r, MQ_REQ_GET);
  memset(r.status.msg, 'm', sizeof r.status.msg - 1);
  r.status.code = MQ_EUNAVAIL;
  memset(r.p_leader_hint, 'h', sizeof r.p_leader_hint - 1);
  roundtrip_result(&r);
}

static void test_result_rejects(void) {
  struct mq_req d;
  /* version, then a code above 0 and one below -100 */
  uint8_t v2[] = {2, 0, 0, 0, 0, 0, 0};
  CHECK_EQ(decode_result(v2, sizeof v2, &d), MQ_ECORRUPT);
  mq_req_clear(&d);
  struct mq_req r;
  mq_req_init(&r, MQ_REQ_GET);
  struct mq_buf b;
  mq_buf_init(&b);
  int codes[] = {1, -101, INT32_MIN, INT32_MAX};
  for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
    mq_buf_reset(&b);
    r.status.code = codes[i];
    reqcodec_encode_result(&b, &r);
    CHECK_EQ(decode_result(b.data, b.len, &d), MQ_ECORRUPT);
    mq_req_clear(&d);
  }
  /* a hint longer than the field is corrupt, not truncated */
  mq_buf_reset(&b);
  mq_buf_put_u8(&b, 1);
  mq_buf_put_u32(&b, 0);
  mq_buf_put_bytes(&b, "", 0);
  static char hint[200];
  memset(hint, 'h', sizeof hint);
  mq_buf_put_bytes(&b, hint, sizeof hint);
  CHECK_EQ(decode_result(b.data, b.len, &d), MQ_ECORRUPT);
  mq_req_clear(&d);
  /* a count of items past the limit, and one the bytes cannot hold */
  mq_req_init(&r, MQ_REQ_SCAN);
  mq_buf_reset(&b);
  reqcodec_encode_result(&b, &r);
  /* the kvs count is the varint after has_kv; in a bare result 27 bytes
   * from the end (then u8 more, varint entries, 3 x u64) */
  size_t at = b.len - 27;
  CHECK_EQ(b.data[at], 0);
  struct mq_buf c;
  mq_buf_init(&c);
  mq_buf_put(&c, b.data, at);
  mq_buf_put_varint(&c, 100001);
  mq_buf_put(&c, b.data + at + 1, b.len - at - 1);
  CHECK_EQ(decode_result(c.data, c.len, &d), MQ_ECORRUPT);
  mq_req_clear(&d);
  c.len = at;
  mq_buf_put_varint(&c, 100000);
  mq_buf_put(&c, b.data + at + 1, b.len - at - 1);
  CHECK_EQ(decode_result(c.data, c.len, &d), MQ_ECORRUPT);
  CHECK(d.kvs == NULL); /* refused before room for 100000 items is taken */
  mq_req_clear(&d);
  mq_buf_close(&c);
  mq_buf_close(&b);
}

/* ---- events ------------------------------------------------------------- */

static void check_same_event(const struct mq_event *a, const struct mq_event *b) {
  CHECK_EQ(a->type, b->type);
  CHECK_EQ(a->shard, b->shard);
  CHECK_EQ(a->revision, b->revision);
  check_same_kv(&a->kv, &b->kv);
  FIELDS_EQ(a, b, topic);
  FIELDS_EQ(&a->entry, &b->entry, key);
  FIELDS_EQ(&a->entry, &b->entry, value);
  CHECK_EQ(a->entry.timestamp, b->entry.timestamp);
  CHECK_EQ(a->entry.offset, b->entry.offset);
  CHECK_EQ(a->entry.partition, b->entry.partition);
}

static void check_valid_event(const struct mq_event *ev, const uint8_t *data, size_t len) {
  CHECK(ev->type >= MQ_EV_PUT && ev->type <= MQ_EV_PRODUCE);
  CHECK(ev->kv.key && ev->topic && ev->entry.key);
  CHECK(inside(ev->kv.key, ev->kv.key_len, data, len));
  CHECK(inside(ev->kv.value, ev->kv.value_len, data, len));
  CHECK(inside(ev->topic, ev->topic_len, data, len));
  CHECK(inside(ev->entry.key, ev->entry.key_len, data, len));
  CHECK(inside(ev->entry.value, ev->entry.value_len, data, len));
}

static int decode_event(const uint8_t *p, size_t n, struct mq_event *ev) {
  struct mq_reader rd;
  mq_reader_init(&rd, p, n);
  int rc = reqcodec_decode_event(&rd, ev);
  /* events are read back to back from one reply: no bytes may be left for
   * a whole event to count as one */
  return rc ? rc : mq_reader_left(&rd) ? MQ_ECORRUPT : 0;
}

static void roundtrip_event(const struct mq_event *ev) {
  struct mq_buf b;
  struct mq_event d;
  mq_buf_init(&b);
  reqcodec_encode_event(&b, ev);
  CHECK_EQ(b.err, 0);
  CHECK_EQ(decode_event(b.data, b.len, &d), 0);
  check_same_event(ev, &d);
  check_valid_event(&d, b.data, b.len);
  for (size_t n = 0; n < b.len; n++)
    if (decode_event(b.data, n, &d) != MQ_ECORRUPT)
      CHECK_FAIL("an event prefix of %zu of %zu bytes is not refused", n, b.len);
  mq_buf_close(&b);
}

static void test_event_roundtrips(void) {
  struct mq_event ev;
  memset(&ev, 0, sizeof ev);
  ev.type = MQ_EV_PUT;
  ev.shard = 7;
  ev.revision = 1042;
  ev.kv = kv_of("user:123:x", "hello", 1000, 7);
  roundtrip_event(&ev);
  ev.type = MQ_EV_DELETE;
  ev.kv.value_len = 0;
  roundtrip_event(&ev);
  ev.type = MQ_EV_EXPIRE;
  roundtrip_event(&ev);
  memset(&ev, 0, sizeof ev);
  ev.type = MQ_EV_PRODUCE;
  ev.shard = 3;
  ev.revision = INT64_MAX;
  ev.topic = "orders";
  ev.topic_len = 6;
  ev.entry = (struct mq_entry){"k", 1, (const uint8_t *)"\xff\0v", 3, 1, 2, 3};
  roundtrip_event(&ev);
  memset(&ev, 0, sizeof ev); /* all empty: strings come back "" */
  roundtrip_event(&ev);

  uint8_t bad_type[] = {MQ_EV_PRODUCE + 1};
  CHECK_EQ(decode_event(bad_type, 1, &ev), MQ_ECORRUPT);
}

/* ---- random bytes and bit flips ----------------------------------------- */

static void fuzz_req(const uint8_t *p, size_t n, uint64_t seed, int iter, size_t *ok) {
  struct mq_req d;
  int64_t before = mq_clock_mono_ms();
  int rc = decode_req(p, n, &d);
  int64_t after = mq_clock_mono_ms();
  if (rc != 0 && rc != MQ_ECORRUPT)
    CHECK_FAIL("seed %" PRIu64 " iter %d: request decode returned %d", seed, iter, rc);
  if (rc)
    return;
  ++*ok;
  check_valid_req(&d, p, n, before, after);
  /* what was accepted encodes and decodes to the same request */
  struct mq_buf b;
  struct mq_req d2;
  mq_buf_init(&b);
  reqcodec_encode_req(&b, &d, clk());
  if (decode_req(b.data, b.len, &d2) != 0)
    CHECK_FAIL("seed %" PRIu64 " iter %d: accepted request does not re-encode", seed, iter);
  check_same_req(&d, &d2);
  mq_buf_close(&b);
}

static void fuzz_result(const uint8_t *p, size_t n, uint64_t seed, int iter, size_t *ok) {
  struct mq_req d;
  int rc = decode_result(p, n, &d);
  if (rc != 0 && rc != MQ_ECORRUPT && rc != MQ_ENOMEM)
    CHECK_FAIL("seed %" PRIu64 " iter %d: result decode returned %d", seed, iter, rc);
  if (rc == 0) {
    ++*ok;
    check_valid_result(&d);
    struct mq_buf b;
    struct mq_req d2;
    mq_buf_init(&b);
    reqcodec_encode_result(&b, &d);
    if (decode_result(b.data, b.len, &d2) != 0)
      CHECK_FAIL("seed %" PRIu64 " iter %d: accepted result does not re-encode", seed, iter);
    check_same_result(&d, &d2);
    mq_req_clear(&d2);
    mq_buf_close(&b);
  }
  mq_req_clear(&d);
}

static void fuzz_event(const uint8_t *p, size_t n, uint64_t seed, int iter, size_t *ok) {
  struct mq_event ev;
  struct mq_reader rd;
  mq_reader_init(&rd, p, n);
  int rc = reqcodec_decode_event(&rd, &ev);
  if (rc != 0 && rc != MQ_ECORRUPT)
    CHECK_FAIL("seed %" PRIu64 " iter %d: event decode returned %d", seed, iter, rc);
  if (rc == 0) {
    ++*ok;
    check_valid_event(&ev, p, n);
  }
}

typedef void (*fuzz_fn)(const uint8_t *p, size_t n, uint64_t seed, int iter, size_t *ok);
typedef void (*gen_fn)(struct mq_buf *b);

/* Random field values: short random bytes, and numbers that are often
 * extremes. The bytes live in pool until the next call. */
static uint8_t pool[8][24];
static const void *rbytes(int slot, size_t *len) {
  *len = rnd() % 4 == 0 ? 0 : rnd() % sizeof pool[slot];
  for (size_t i = 0; i < *len; i++)
    pool[slot][i] = (uint8_t)rnd();
  return *len || (rnd() & 1) ? pool[slot] : NULL;
}
static int64_t rnum(void) {
  static const int64_t special[] = {0, 1, -1, INT32_MAX, INT32_MIN, INT64_MAX, INT64_MIN};
  if (rnd() & 1)
    return special[rnd() % 7];
  int64_t v = (int64_t)rnd();
  return v >> (rnd() % 64); /* one draw per statement: the same in every build */
}

static void gen_req(struct mq_buf *b) {
  struct mq_req r;
  mq_req_init(&r, (enum mq_req_type)(rnd() % (MQ_REQ_READ + 1)));
  r.key = rbytes(0, &r.key_len);
  r.value = rbytes(1, &r.value_len);
  r.ttl_ms = rnum();
  r.pre.type = (enum mq_precond_type)(rnd() % (MQ_PRE_VALUE + 1));
  r.pre.num = rnum();
  r.pre.value = rbytes(2, &r.pre.value_len);
  r.return_previous = rnd() & 1;
  r.serializable = rnd() & 1;
  r.keys_only = rnd() & 1;
  r.prefix = rbytes(3, &r.prefix_len);
  r.start_after = rbytes(4, &r.start_after_len);
  r.limit = (uint32_t)rnum();
  r.topic = rbytes(5, &r.topic_len);
  r.partition = (int32_t)rnum();
  r.timestamp = rnum();
  r.offset = rnum();
  r.count = (uint32_t)rnum();
  r.client_id = (uint64_t)rnum();
  r.seq = (uint64_t)rnum();
  r.deadline_ms = mq_clock_mono_ms() + 1 + (int64_t)(rnd() % 3600000);
  r.p_shard1 = (int32_t)(rnd() % 4097);
  reqcodec_encode_req(b, &r, clk());
}

static struct mq_kv rkv(int slot) {
  struct mq_kv kv;
  kv.key = rbytes(slot, &kv.key_len);
  kv.value = rbytes(slot + 1, &kv.value_len);
  kv.create_revision = rnum();
  kv.mod_revision = rnum();
  kv.version = rnum();
  kv.expires_at_ms = rnum();
  kv.shard = (int32_t)rnum();
  return kv;
}

static void gen_result(struct mq_buf *b) {
  struct mq_req r;
  mq_req_init(&r, MQ_REQ_GET);
  size_t n;
  const void *p = rbytes(0, &n);
  mq_status_set(&r.status, -(int)(rnd() % 101), "%.*s", (int)n, p ? (const char *)p : "");
  p = rbytes(1, &n);
  memcpy(r.p_leader_hint, p ? p : "", n);
  r.revision = rnum();
  r.shard = (int32_t)rnum();
  r.deleted = rnd() & 1;
  r.out_offset = rnum();
  r.has_kv = rnd() & 1;
  r.kv = rkv(2);
  struct mq_kv kvs[3];
  r.n_kvs = rnd() % 4;
  for (size_t i = 0; i < r.n_kvs; i++)
    kvs[i] = rkv(4);
  r.kvs = kvs;
  r.more = rnd() & 1;
  struct mq_entry ents[3];
  r.n_entries = rnd() % 4;
  for (size_t i = 0; i < r.n_entries; i++) {
    ents[i].key = rbytes(6, &ents[i].key_len);
    ents[i].value = rbytes(7, &ents[i].value_len);
    ents[i].timestamp = rnum();
    ents[i].offset = rnum();
    ents[i].partition = (int32_t)rnum();
  }
  r.entries = ents;
  r.next_offset = rnum();
  r.high_watermark = rnum();
  r.log_start_offset = rnum();
  reqcodec_encode_result(b, &r);
}

static void gen_event(struct mq_buf *b) {
  struct mq_event ev;
  ev.type = (enum mq_event_type)(rnd() % (MQ_EV_PRODUCE + 1));
  ev.shard = (int32_t)rnum();
  ev.revision = rnum();
  ev.kv = rkv(0);
  ev.topic = rbytes(2, &ev.topic_len);
  ev.entry.key = rbytes(3, &ev.entry.key_len);
  ev.entry.value = rbytes(4, &ev.entry.value_len);
  ev.entry.timestamp = rnum();
  ev.entry.offset = rnum();
  ev.entry.partition = (int32_t)rnum();
  reqcodec_encode_event(b, &ev);
}

/* Three kinds of input for one decoder: random bytes (behind a plausible
 * header half of the time), random valid encodings, which must decode, and
 * those with bit flips, byte changes or a cut. */
static void fuzz_one(const char *what, fuzz_fn fn, gen_fn gen, const uint8_t *hdr, size_t hdr_len,
                     uint64_t seed) {
  uint8_t buf[1024];
  size_t ok = 0, gen_ok = 0, mut_ok = 0;
  struct mq_buf b;
  mq_buf_init(&b);
  for (int iter = 0; iter < 50000; iter++) {
    size_t n = rnd() % 512;
    for (size_t i = 0; i < n; i++)
      buf[i] = (uint8_t)rnd();
    if (n >= hdr_len && (rnd() & 1))
      memcpy(buf, hdr, hdr_len);
    fn(buf, n, seed, iter, &ok);
  }
  for (int iter = 0; iter < 100000; iter++) {
    mq_buf_reset(&b);
    gen(&b);
    CHECK_EQ(b.err, 0);
    CHECK_LE(b.len, sizeof buf);
    size_t before = gen_ok;
    fn(b.data, b.len, seed, iter, &gen_ok);
    if (gen_ok == before)
      CHECK_FAIL("seed %" PRIu64 " iter %d: a valid %s encoding is refused", seed, iter, what);
    memcpy(buf, b.data, b.len);
    int changes = 1 + (int)(rnd() % 3);
    for (int f = 0; f < changes; f++) {
      if (rnd() & 1) {
        rnd_flip(buf, b.len);
      } else {
        size_t at = rnd() % b.len;
        buf[at] = (uint8_t)rnd();
      }
    }
    size_t n = rnd() % 4 == 0 ? rnd() % (b.len + 1) : b.len;
    fn(buf, n, seed, iter, &mut_ok);
  }
  mq_buf_close(&b);
  printf("test_reqcodec: %s: accepted %zu of 50000 random, %zu of 100000 mutated\n", what, ok,
         mut_ok);
}

static void test_fuzz(uint64_t seed) {
  /* printed first, so that a failing CHECK below comes with its seed */
  fprintf(stderr, "test_reqcodec: fuzz seed %" PRIu64 "\n", seed);
  rng_state = seed;
  const uint8_t req_hdr[] = {CALL_REQ, 1, MQ_REQ_GET};
  fuzz_one("request", fuzz_req, gen_req, req_hdr, sizeof req_hdr, seed);
  const uint8_t res_hdr[] = {1, 0, 0, 0, 0};
  fuzz_one("result", fuzz_result, gen_result, res_hdr, sizeof res_hdr, seed);
  const uint8_t ev_hdr[] = {MQ_EV_PUT};
  fuzz_one("event", fuzz_event, gen_event, ev_hdr, sizeof ev_hdr, seed);
}

/* ---- wall-clock deadlines at the ends of the range ---------------------- */

/* The wall deadline is any u64 a peer sends: one as far in the past as it
 * gets arrives expired (its subtraction from now once overflowed and served
 * the request with its full time left), one as far in the future is capped
 * by the time left. */
static void test_wall_deadline_extremes(void) {
  const int64_t walls[] = {INT64_MIN, INT64_MIN + 1, -1, 0, INT64_MAX};
  for (size_t w = 0; w < sizeof walls / sizeof walls[0]; w++) {
    struct mq_req r = full_req(MQ_REQ_PUT), d;
    struct mq_buf b;
    mq_buf_init(&b);
    reqcodec_encode_req(&b, &r, clk());
    size_t wall_at = b.len - 12;
    for (int i = 0; i < 8; i++)
      b.data[wall_at + i] = (uint8_t)((uint64_t)walls[w] >> (8 * i));
    int64_t before = mq_clock_mono_ms();
    CHECK_EQ(decode_req(b.data, b.len, &d), 0);
    if (walls[w] == INT64_MAX)
      CHECK(d.deadline_ms >= before + 4000 && d.deadline_ms <= mq_clock_mono_ms() + 5000);
    else
      CHECK_LT(d.deadline_ms, before);
    mq_buf_close(&b);
  }
}

int main(void) {
  test_req_roundtrips();
  test_req_rejects();
  test_result_roundtrips();
  test_result_rejects();
  test_event_roundtrips();
  test_wall_deadline_extremes();
  test_fuzz(0x5eed0002);
  printf("test_reqcodec: ok\n");
  return 0;
}
