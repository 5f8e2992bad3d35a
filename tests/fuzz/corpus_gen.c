/* Writes the seed corpora of tests/fuzz: real encodings made by the real
 * encoders (commands, snapshots, Raft messages, forwarded requests) and
 * hand-written texts (properties files, subscribe messages), a few of each
 * kind, small. The committed tests/fuzz/corpus/<target>/seed-* files are
 * its output:
 *   fuzz-corpus tests/fuzz/corpus
 * Crash regressions sit next to them as crash-* files and are not written
 * here. Request encodings carry a deadline from the clock, so those bytes
 * differ from run to run; the rest is the same every time. */
#include "cluster/internal.h"
#include "core/raft.h"
#include "fuzz/raft_node.h"
#include "store/cmd.h"
#include "store/sm.h"

#include "grpc/health/v1/health.pb-c.h"
#include "memquorum/v1/memquorum.pb-c.h"
#include "memquorum/v1/peer.pb-c.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* A fixed clock: the request seeds come out byte for byte the same. */
static const struct reqcodec_clock gen_clock = {1000000, 1700000000000};

static const char *root;

static void mkdir_p(const char *dir) {
  if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
    fprintf(stderr, "fuzz-corpus: mkdir %s: %s\n", dir, strerror(errno));
    exit(1);
  }
}

/* Writes corpus/<target>/seed-<name>: an optional leading byte, then n
 * bytes. */
static void put(const char *target, const char *name, int lead, const void *p, size_t n) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", root, target);
  mkdir_p(path);
  snprintf(path, sizeof path, "%s/%s/seed-%s", root, target, name);
  FILE *f = fopen(path, "wb");
  if (!f || (lead >= 0 && fputc(lead, f) == EOF) || (n && fwrite(p, 1, n, f) != n) ||
      fclose(f) != 0) {
    fprintf(stderr, "fuzz-corpus: %s: %s\n", path, strerror(errno));
    exit(1);
  }
}

static void put_buf(const char *target, const char *name, int lead, struct mq_buf *b) {
  if (b->err) {
    fprintf(stderr, "fuzz-corpus: %s/%s: out of memory\n", target, name);
    exit(1);
  }
  put(target, name, lead, b->data, b->len);
  mq_buf_reset(b);
}

static void put_text(const char *target, const char *name, const char *text) {
  put(target, name, -1, text, strlen(text));
}

/* ---- store commands and snapshots ---------------------------------------- */

/* A zeroed command carries no ingest position (store/cmd.h). */
static struct mq_cmd cmd(enum mq_cmd_type t) {
  return (struct mq_cmd){.type = t, .now_ms = 1700000000000};
}

static struct mq_cmd put_cmd(const char *key, const char *value, int64_t ttl_ms) {
  struct mq_cmd c = cmd(MQ_CMD_PUT);
  c.key = key;
  c.key_len = strlen(key);
  c.value = (const uint8_t *)value;
  c.value_len = strlen(value);
  c.ttl_ms = ttl_ms;
  return c;
}

static struct mq_cmd produce_cmd(const char *topic, const char *key, const char *value) {
  struct mq_cmd c = cmd(MQ_CMD_PRODUCE);
  c.topic = topic;
  c.topic_len = strlen(topic);
  c.key = key;
  c.key_len = strlen(key);
  c.value = (const uint8_t *)value;
  c.value_len = strlen(value);
  return c;
}

static void commands(struct mq_buf *b) {
  struct mq_cmd c = cmd(MQ_CMD_NOOP);
  mq_cmd_encode(&c, b);
  put_buf("cmd", "noop", -1, b);

  c = put_cmd("user:123:profile", "{\"name\":\"Ada\"}", 0);
  c.client_id = 0x1234abcd;
  c.seq = 7;
  mq_cmd_encode(&c, b);
  put_buf("cmd", "put", -1, b);
  c.ttl_ms = 30000;
  c.return_previous = true;
  c.pre.type = MQ_PRE_VERSION;
  c.pre.num = 3;
  mq_cmd_encode(&c, b);
  put_buf("cmd", "put-ttl-version", -1, b);
  c.pre.type = MQ_PRE_VALUE;
  c.pre.value = (const uint8_t *)"old";
  c.pre.value_len = 3;
  mq_cmd_encode(&c, b);
  put_buf("cmd", "put-cas", -1, b);
  c.pre.type = MQ_PRE_ABSENT;
  mq_cmd_encode(&c, b);
  put_buf("cmd", "put-absent", -1, b);

  c = cmd(MQ_CMD_DELETE);
  c.key = "user:1:a";
  c.key_len = 8;
  c.pre.type = MQ_PRE_MOD_REVISION;
  c.pre.num = 1;
  mq_cmd_encode(&c, b);
  put_buf("cmd", "delete", -1, b);

  c = cmd(MQ_CMD_EXPIRE);
  c.key = "user:1:a";
  c.key_len = 8;
  c.expect_mod_revision = 1;
  mq_cmd_encode(&c, b);
  put_buf("cmd", "expire", -1, b);

  c = produce_cmd("memquorum-input", "user:123:login", "{\"at\":1}");
  c.partition = 0;
  c.ingest_source = "memquorum-input";
  c.ingest_source_len = 15;
  c.ingest_partition = 2;
  c.ingest_offset = 1042;
  c.ingest_prev = 1017;
  mq_cmd_encode(&c, b);
  put_buf("cmd", "produce-ingest", -1, b);
}

static void apply(struct mq_sm *sm, uint64_t *index, const struct mq_cmd *c) {
  struct mq_apply_result res;
  mq_sm_apply(sm, ++*index, c, &res);
  if (res.status.code) {
    fprintf(stderr, "fuzz-corpus: apply: %s\n", res.status.msg);
    exit(1);
  }
}

/* A shard with a key of each kind, a topic, a Kafka position, a client's
 * request ids and the history they made. */
static void snapshots(struct mq_buf *b) {
  struct mq_store_limits l;
  mq_store_limits_default(&l);
  struct mq_sm *sm;
  if (mq_sm_new(&sm, 0, &l)) {
    fprintf(stderr, "fuzz-corpus: out of memory\n");
    exit(1);
  }
  mq_sm_snapshot(sm, b);
  put_buf("snapshot", "empty", 0, b);

  uint64_t index = 0;
  struct mq_cmd c = put_cmd("user:1:a", "v1", 0);
  c.client_id = 42;
  c.seq = 1;
  apply(sm, &index, &c);
  c = put_cmd("user:1:b", "\xff\x00 binary", 600000);
  c.value_len = 9;
  c.client_id = 42;
  c.seq = 2;
  apply(sm, &index, &c);
  c = put_cmd("user:1:a", "v2", 0);
  apply(sm, &index, &c);
  c = put_cmd("gone", "x", 0);
  apply(sm, &index, &c);
  c = cmd(MQ_CMD_DELETE);
  c.key = "gone";
  c.key_len = 4;
  apply(sm, &index, &c);
  c = produce_cmd("orders", "user:1", "o1");
  apply(sm, &index, &c);
  c = produce_cmd("orders", "user:2", "o2");
  c.ingest_source = "memquorum-input";
  c.ingest_source_len = 15;
  c.ingest_partition = 0;
  c.ingest_offset = 9;
  c.ingest_prev = -1;
  apply(sm, &index, &c);
  mq_sm_snapshot(sm, b);
  put_buf("snapshot", "state", 0, b);
  mq_sm_snapshot(sm, b);
  put_buf("snapshot", "state-fix-checksum", 1, b);
  mq_sm_free(sm);
}

/* ---- Raft messages ----------------------------------------------------- */

static struct mq_raft_msg msg(uint32_t type) {
  return (struct mq_raft_msg){.type = type,
                              .group = 7,
                              .from = {0x1111, 1},
                              .to = {0x2222, 3},
                              .term = 5,
                              .index = 10,
                              .log_term = 4,
                              .commit = 9};
}

static void raft_messages(struct mq_buf *b) {
  struct mq_raft_conf conf = {0};
  conf.n = 3;
  for (uint32_t i = 0; i < 3; i++) {
    conf.m[i].id = (struct mq_raft_member){0x1111 * (i + 1), i + 1};
    conf.m[i].role = i < 2 ? MQ_RAFT_VOTER : MQ_RAFT_LEARNER;
  }
  struct mq_buf cb;
  mq_buf_init(&cb);
  mq_raft_conf_encode(&cb, &conf);
  put("raft_msg", "conf", -1, cb.data, cb.len);

  struct mq_buf cmdb;
  mq_buf_init(&cmdb);
  struct mq_cmd c = put_cmd("user:1:a", "v", 0);
  mq_cmd_encode(&c, &cmdb);
  struct mq_raft_entry ents[3] = {
      {.index = 11, .term = 5, .type = MQ_RAFT_ENTRY_NOOP},
      {.index = 12,
       .term = 5,
       .type = MQ_RAFT_ENTRY_NORMAL,
       .data = cmdb.data,
       .len = (uint32_t)cmdb.len},
      {.index = 13,
       .term = 5,
       .type = MQ_RAFT_ENTRY_CONF,
       .data = cb.data,
       .len = (uint32_t)cb.len},
  };
  struct mq_raft_msg m = msg(MQ_RAFT_MSG_APP);
  m.entries = ents;
  m.n_entries = 3;
  mq_raft_msg_encode(b, &m);
  put_buf("raft_msg", "app", -1, b);

  /* a frame's body: several messages back to back */
  m = msg(MQ_RAFT_MSG_HEARTBEAT);
  m.ctx = 3;
  mq_raft_msg_encode(b, &m);
  m = msg(MQ_RAFT_MSG_APP_RESP);
  m.hint = 8;
  m.flags = 1;
  mq_raft_msg_encode(b, &m);
  m = msg(MQ_RAFT_MSG_PREVOTE);
  mq_raft_msg_encode(b, &m);
  put_buf("raft_msg", "several", -1, b);

  static const uint32_t others[] = {MQ_RAFT_MSG_VOTE,         MQ_RAFT_MSG_VOTE_RESP,
                                    MQ_RAFT_MSG_PREVOTE_RESP, MQ_RAFT_MSG_HEARTBEAT_RESP,
                                    MQ_RAFT_MSG_SNAP_RESP,    MQ_RAFT_MSG_TIMEOUT_NOW};
  for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
    m = msg(others[i]);
    mq_raft_msg_encode(b, &m);
    char name[32];
    snprintf(name, sizeof name, "type-%u", others[i]);
    put_buf("raft_msg", name, -1, b);
  }

  m = msg(MQ_RAFT_MSG_SNAP);
  m.snap_index = 100;
  m.snap_term = 4;
  m.hint = 4096;
  m.index = 0;
  m.data = (const uint8_t *)"MQSN chunk bytes";
  m.len = 16;
  mq_raft_msg_encode(b, &m);
  put_buf("raft_msg", "snap", -1, b);
  mq_buf_close(&cb);
  mq_buf_close(&cmdb);
}

/* ---- Raft frames -------------------------------------------------------- */

/* Frames between the three nodes of raft_node.h, in flight. */
struct flight {
  int from, to;
  struct mq_buf frame;
};
static struct flight air[256];
static size_t n_air;

static int who_of(uint64_t node) {
  for (int i = FZ_A; i <= FZ_C; i++)
    if (fz_member(i).node == node)
      return i;
  fprintf(stderr, "fuzz-corpus: a frame to an unknown node\n");
  exit(1);
}

/* Handles h's ready batches and puts its frames in the air. */
static void drain_to_air(struct mq_raft_host *h, int who) {
  fz_drain(h);
  for (size_t i = 0; i < mq_raft_host_batches(h); i++) {
    uint64_t node;
    const uint8_t *p;
    size_t n;
    mq_raft_host_batch(h, i, &node, &p, &n);
    if (n_air == sizeof air / sizeof air[0]) {
      fprintf(stderr, "fuzz-corpus: too many frames in flight\n");
      exit(1);
    }
    struct flight *f = &air[n_air++];
    f->from = who;
    f->to = who_of(node);
    mq_buf_init(&f->frame);
    mq_buf_put(&f->frame, p, n);
  }
  mq_raft_host_batches_clear(h);
}

/* Appends one operation on node A to ops and does it, as the raft_frame
 * target will when it reads ops; what A sends goes into the air. */
static void a_op(struct mq_raft_host *h, struct mq_buf *ops, uint8_t op, const uint8_t *body,
                 size_t n) {
  size_t at = ops->len;
  mq_buf_put_u8(ops, op);
  if ((op & 3) == FZ_OP_FRAME)
    mq_buf_put_bytes(ops, body, n);
  struct mq_reader rd;
  mq_reader_init(&rd, ops->data + at, ops->len - at);
  static uint64_t reads;
  if (ops->err || !fz_op(&h[FZ_A], &rd, &reads)) {
    fprintf(stderr, "fuzz-corpus: raft operation failed\n");
    exit(1);
  }
  drain_to_air(&h[FZ_A], FZ_A);
}

/* Delivers what is in the air, and what that sends, until it settles. */
static void deliver(struct mq_raft_host *h, struct mq_buf *ops) {
  for (int round = 0; round < 20 && n_air; round++) {
    size_t n = n_air;
    struct flight now[256];
    memcpy(now, air, n * sizeof air[0]);
    n_air = 0;
    for (size_t i = 0; i < n; i++) {
      struct flight *f = &now[i];
      if (f->to == FZ_A) {
        uint8_t op = (uint8_t)(FZ_OP_FRAME | (f->from == FZ_C ? 4 : 0));
        a_op(h, ops, op, f->frame.data + 17, f->frame.len - 17); /* 17: frame header */
      } else {
        mq_raft_host_receive(&h[f->to], f->frame.data, f->frame.len);
        drain_to_air(&h[f->to], f->to);
      }
      mq_buf_close(&f->frame);
    }
  }
}

/* Runs A, B and C: elections, proposals at A and at B, and the snapshots
 * that 8 entries bring. The operations on A so far are a seed at a few
 * points: A just elected or following, with a log, with snapshots. */
static void raft_frames(void) {
  struct mq_raft_host h[3];
  for (int i = FZ_A; i <= FZ_C; i++)
    fz_start(&h[i], i);
  struct mq_buf ops;
  mq_buf_init(&ops);
  for (int step = 1; step <= 60; step++) {
    a_op(h, &ops, FZ_OP_TICK, NULL, 0);
    for (int i = FZ_B; i <= FZ_C; i++) {
      mq_raft_host_tick(&h[i]);
      drain_to_air(&h[i], i);
    }
    if (step % 4 == 0) {
      a_op(h, &ops, FZ_OP_PROPOSE | 0 << 2, NULL, 0);
      a_op(h, &ops, FZ_OP_PROPOSE | 1 << 2, NULL, 0);
      a_op(h, &ops, FZ_OP_PROPOSE | 2 << 2, NULL, 0);
      a_op(h, &ops, FZ_OP_READ | 0 << 2, NULL, 0);
      mq_raft_propose(mq_raft_host_get(&h[FZ_B], 0), "cmd", 3, NULL, NULL);
      drain_to_air(&h[FZ_B], FZ_B);
    }
    deliver(h, &ops);
    if (step == 20 || step == 40 || step == 60) {
      char name[32];
      snprintf(name, sizeof name, "steps-%d", step);
      put("raft_frame", name, -1, ops.data, ops.len);
    }
  }
  struct mq_raft_status st;
  mq_raft_status(mq_raft_host_get(&h[FZ_A], 0), &st);
  if (st.commit < 10 || st.snap_index == 0) {
    fprintf(stderr, "fuzz-corpus: the Raft run did not get far (commit %llu)\n",
            (unsigned long long)st.commit);
    exit(1);
  }
  mq_buf_close(&ops);
  for (int i = FZ_A; i <= FZ_C; i++)
    mq_raft_host_close(&h[i]);
}

/* ---- forwarded requests ------------------------------------------------- */

static void forwarded(struct mq_buf *b) {
  static const char *names[] = {"put", "get", "delete", "scan", "produce", "read"};
  for (int t = MQ_REQ_PUT; t <= MQ_REQ_READ; t++) {
    struct mq_req r;
    mq_req_init(&r, (enum mq_req_type)t);
    r.key = "user:123:k";
    r.key_len = 10;
    if (t == MQ_REQ_PUT || t == MQ_REQ_PRODUCE) {
      r.value = (const uint8_t *)"value";
      r.value_len = 5;
    }
    if (t == MQ_REQ_SCAN) {
      r.prefix = "user:123:";
      r.prefix_len = 9;
      r.start_after = "user:123:a";
      r.start_after_len = 10;
      r.limit = 100;
      r.keys_only = true;
    }
    if (t == MQ_REQ_PRODUCE || t == MQ_REQ_READ) {
      r.topic = "orders";
      r.topic_len = 6;
      r.partition = t == MQ_REQ_READ ? -1 : 3;
      r.offset = 5;
      r.count = 10;
    }
    if (t == MQ_REQ_PUT) {
      r.pre.type = MQ_PRE_VALUE;
      r.pre.value = (const uint8_t *)"old";
      r.pre.value_len = 3;
      r.return_previous = true;
      r.ttl_ms = 1000;
    }
    r.serializable = t == MQ_REQ_GET;
    r.client_id = 99;
    r.seq = 4;
    r.deadline_ms = gen_clock.mono_ms + 5000;
    r.p_shard1 = 4;
    if (t == MQ_REQ_PRODUCE) { /* as Kafka ingestion sends it */
      r.ingest_source = "memquorum-input";
      r.ingest_source_len = 15;
      r.ingest_partition = 2;
      r.ingest_offset = 1042;
      r.ingest_prev = 1017;
    }
    reqcodec_encode_req(b, &r, gen_clock);
    char name[32];
    snprintf(name, sizeof name, "req-%s", names[t]);
    put_buf("reqcodec", name, 0, b);
  }
  {
    struct mq_req r;
    mq_req_init(&r, MQ_REQ_INGEST_PROBE);
    r.partition = 3;
    r.ingest_source = "memquorum-input";
    r.ingest_source_len = 15;
    r.ingest_partition = 2;
    r.deadline_ms = gen_clock.mono_ms + 5000;
    reqcodec_encode_req(b, &r, gen_clock);
    put_buf("reqcodec", "req-ingest-probe", 0, b);
  }

  struct mq_req r;
  mq_req_init(&r, MQ_REQ_PUT);
  r.revision = 12;
  r.shard = 3;
  r.has_kv = true;
  r.kv = (struct mq_kv){"user:1:a", 8, (const uint8_t *)"old", 3, 1, 2, 2, 0, 3};
  reqcodec_encode_result(b, &r);
  put_buf("reqcodec", "result-put", 1, b);
  mq_req_init(&r, MQ_REQ_SCAN);
  struct mq_kv kvs[2] = {{"a", 1, (const uint8_t *)"1", 1, 1, 1, 1, 0, 0},
                         {"b", 1, (const uint8_t *)"2", 1, 2, 2, 1, 1700000000000, 1}};
  r.kvs = kvs;
  r.n_kvs = 2;
  r.more = true;
  reqcodec_encode_result(b, &r);
  put_buf("reqcodec", "result-scan", 1, b);
  mq_req_init(&r, MQ_REQ_READ);
  struct mq_entry ents[2] = {{"k", 1, (const uint8_t *)"v", 1, 1700000000000, 0, 3},
                             {"k2", 2, (const uint8_t *)"v2", 2, 1700000000001, 1, 3}};
  r.entries = ents;
  r.n_entries = 2;
  r.next_offset = 2;
  r.high_watermark = 2;
  reqcodec_encode_result(b, &r);
  put_buf("reqcodec", "result-read", 1, b);
  mq_req_init(&r, MQ_REQ_GET);
  mq_status_set(&r.status, MQ_ENOTLEADER, "shard 3 is led by node-2");
  snprintf(r.p_leader_hint, sizeof r.p_leader_hint, "node-2");
  reqcodec_encode_result(b, &r);
  put_buf("reqcodec", "result-not-leader", 1, b);

  struct mq_event ev;
  memset(&ev, 0, sizeof ev);
  ev.type = MQ_EV_PUT;
  ev.shard = 3;
  ev.revision = 12;
  ev.kv = (struct mq_kv){"user:1:a", 8, (const uint8_t *)"v", 1, 1, 12, 2, 0, 3};
  reqcodec_encode_event(b, &ev);
  memset(&ev, 0, sizeof ev);
  ev.type = MQ_EV_PRODUCE;
  ev.shard = 3;
  ev.revision = 13;
  ev.topic = "orders";
  ev.topic_len = 6;
  ev.entry = (struct mq_entry){"user:1", 6, (const uint8_t *)"o1", 2, 1700000000000, 0, 3};
  reqcodec_encode_event(b, &ev);
  put_buf("reqcodec", "events", 2, b);
}

/* ---- API requests and peer messages (protobuf) ----------------------------- */

/* Writes corpus/<target>/seed-<name>: the lead bytes, then m packed. */
static void put_msg(const char *target, const char *name, uint8_t lead0, int lead1,
                    const ProtobufCMessage *m) {
  size_t n = protobuf_c_message_get_packed_size(m);
  uint8_t *p = malloc(n + 2);
  if (!p) {
    fprintf(stderr, "fuzz-corpus: %s/%s: out of memory\n", target, name);
    exit(1);
  }
  size_t k = 0;
  p[k++] = lead0;
  if (lead1 >= 0)
    p[k++] = (uint8_t)lead1;
  protobuf_c_message_pack(m, p + k);
  put(target, name, -1, p, n + k);
  free(p);
}

/* The method byte of fuzz_api.c: its methods[] order. */
enum {
  API_PUT,
  API_GET,
  API_DELETE,
  API_SCAN,
  API_PRODUCE,
  API_READ,
  API_STATUS,
  API_RECOVER,
  API_HEALTH,
  API_WATCH
};

static void api_requests(void) {
  Memquorum__V1__Precondition pre = MEMQUORUM__V1__PRECONDITION__INIT;
  pre.condition_case = MEMQUORUM__V1__PRECONDITION__CONDITION_VERSION;
  pre.version = 1;
  Memquorum__V1__PutRequest put_rq = MEMQUORUM__V1__PUT_REQUEST__INIT;
  put_rq.key = "user:123:session";
  put_rq.value = (ProtobufCBinaryData){5, (uint8_t *)"hello"};
  put_rq.ttl_ms = 30000;
  put_rq.precondition = &pre;
  put_rq.return_previous = true;
  put_msg("api", "put", API_PUT, 0, &put_rq.base);
  put_msg("api", "put-two-slices", API_PUT, 7, &put_rq.base);

  Memquorum__V1__GetRequest get = MEMQUORUM__V1__GET_REQUEST__INIT;
  get.key = "user:123:session";
  get.consistency = MEMQUORUM__V1__CONSISTENCY__SERIALIZABLE;
  put_msg("api", "get", API_GET, 0, &get.base);

  Memquorum__V1__Precondition if_value = MEMQUORUM__V1__PRECONDITION__INIT;
  if_value.condition_case = MEMQUORUM__V1__PRECONDITION__CONDITION_VALUE;
  if_value.value = (ProtobufCBinaryData){5, (uint8_t *)"hello"};
  Memquorum__V1__DeleteRequest del = MEMQUORUM__V1__DELETE_REQUEST__INIT;
  del.key = "user:123:session";
  del.precondition = &if_value;
  put_msg("api", "delete", API_DELETE, 0, &del.base);

  Memquorum__V1__ScanRequest scan = MEMQUORUM__V1__SCAN_REQUEST__INIT;
  scan.prefix = "user:123:";
  scan.start_after = "user:123:a";
  scan.limit = 10;
  scan.keys_only = true;
  put_msg("api", "scan", API_SCAN, 0, &scan.base);

  Memquorum__V1__Entry e = MEMQUORUM__V1__ENTRY__INIT;
  e.key = "user:7:order";
  e.value = (ProtobufCBinaryData){2, (uint8_t *)"o1"};
  e.timestamp = 1700000000000;
  Memquorum__V1__ProduceRequest prod = MEMQUORUM__V1__PRODUCE_REQUEST__INIT;
  prod.topic = "orders";
  prod.partition = -1;
  prod.entry = &e;
  put_msg("api", "produce", API_PRODUCE, 0, &prod.base);

  Memquorum__V1__ReadRequest rd = MEMQUORUM__V1__READ_REQUEST__INIT;
  rd.topic = "orders";
  rd.partition = 3;
  rd.offset = 0;
  rd.count = 100;
  put_msg("api", "read", API_READ, 0, &rd.base);

  Memquorum__V1__StatusRequest status = MEMQUORUM__V1__STATUS_REQUEST__INIT;
  put_msg("api", "status", API_STATUS, 0, &status.base);
  Memquorum__V1__RecoverRequest rec = MEMQUORUM__V1__RECOVER_REQUEST__INIT;
  rec.shard = 2;
  rec.confirm = true;
  put_msg("api", "recover", API_RECOVER, 0, &rec.base);

  Grpc__Health__V1__HealthCheckRequest hc = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
  hc.service = "memquorum.v1.KV";
  put_msg("api", "health", API_HEALTH, 0, &hc.base);

  Memquorum__V1__WatchRequest__StartRevisionsEntry rev =
      MEMQUORUM__V1__WATCH_REQUEST__START_REVISIONS_ENTRY__INIT;
  rev.key = 7;
  rev.value = 1042;
  Memquorum__V1__WatchRequest__StartRevisionsEntry *revs[] = {&rev};
  Memquorum__V1__WatchRequest watch = MEMQUORUM__V1__WATCH_REQUEST__INIT;
  watch.prefix = "user:1:";
  watch.topic = "orders";
  watch.n_start_revisions = 1;
  watch.start_revisions = revs;
  put_msg("api", "watch", API_WATCH, 0, &watch.base);
}

static void peer_messages(void) {
  Memquorum__Peer__V1__Hello hello = MEMQUORUM__PEER__V1__HELLO__INIT;
  hello.node_id = "n2";
  hello.incarnation = 1733400000123;
  hello.shards_total = 16;
  hello.protocol_version = MQ_PEER_PROTOCOL_VERSION;
  hello.peer_address = "10.0.0.2:7070";
  hello.seed_hash = 0x5eed;

  Memquorum__Peer__V1__PipeMessage pm = MEMQUORUM__PEER__V1__PIPE_MESSAGE__INIT;
  pm.body_case = MEMQUORUM__PEER__V1__PIPE_MESSAGE__BODY_HELLO;
  pm.hello = &hello;
  put_msg("peer", "hello", 0, -1, &pm.base);

  ProtobufCBinaryData frames[] = {
      {3, (uint8_t *)"abc"}, {0, NULL}, {4, (uint8_t *)"\x01\x02\x03\x04"}};
  Memquorum__Peer__V1__PipeMessage fm = MEMQUORUM__PEER__V1__PIPE_MESSAGE__INIT;
  fm.n_frames = 3;
  fm.frames = frames;
  put_msg("peer", "frames", 0, -1, &fm.base);

  Memquorum__Peer__V1__Welcome w = MEMQUORUM__PEER__V1__WELCOME__INIT;
  w.accepted = true;
  w.server = &hello;
  Memquorum__Peer__V1__PipeMessage wm = MEMQUORUM__PEER__V1__PIPE_MESSAGE__INIT;
  wm.body_case = MEMQUORUM__PEER__V1__PIPE_MESSAGE__BODY_WELCOME;
  wm.welcome = &w;
  put_msg("peer", "welcome", 1, -1, &wm.base);

  Memquorum__Peer__V1__CallRequest cr = MEMQUORUM__PEER__V1__CALL_REQUEST__INIT;
  cr.from = &hello;
  cr.body = (ProtobufCBinaryData){4, (uint8_t *)"body"};
  put_msg("peer", "call", 2, -1, &cr.base);
  Memquorum__Peer__V1__CallResponse cs = MEMQUORUM__PEER__V1__CALL_RESPONSE__INIT;
  cs.body = (ProtobufCBinaryData){4, (uint8_t *)"resp"};
  put_msg("peer", "call-response", 3, -1, &cs.base);
}

/* ---- texts -------------------------------------------------------------- */

static void texts(void) {
  put_text("props", "guide",
           "# MemQuorum settings\n"
           "memquorum.node.id=node-1\n"
           "memquorum.node.port = 8080\n"
           "memquorum.peer.port: 7070\n"
           "memquorum.shards.total 16\n"
           "memquorum.replication.factor=3\n"
           "memquorum.peers=n1=10.0.0.1:7070,\\\n"
           "    n2=10.0.0.2:7070\n"
           "! old-style comment\n"
           "nacos.server.addr=nacos:8848\n"
           "memquorum.kafka.enabled=false\n");
  put_text("props", "escapes",
           "\xef\xbb\xbfkey\\ with\\:odd\\=chars = value\\twith\\ttabs\\n\n"
           "unicode=caf\\u00e9 \\u20AC \\uD83D\\uDE00 \xc3\xa9\n"
           "trailing=kept\\ \r\n"
           "empty=\n"
           "last=z\\");
  put_text("props", "errors", "a=\\uD800x\nb=\\u12G4\n=no key\n");

  put_text("subscribe", "prefix", "{\"subscribe\": {\"prefix\": \"user:123:\"}}");
  put_text("subscribe", "all",
           "{\"subscribe\": {\"prefix\": \"user:1:\", \"topics\": [\"orders\", \"t.v1\"], "
           "\"from\": {\"7\": 1042, \"0\": 0}}}");
  put_text("subscribe", "escapes",
           "{\"subscribe\":{\"prefix\":\"caf\\u00e9\\ud83d\\ude00\\n\\\"\\\\\\/\","
           "\"topics\":[\"a\",\"a\"]}}");
  put_text("subscribe", "max-revision",
           "{\"subscribe\": {\"from\": {\"2147483647\": 9223372036854775807}}}");
  put_text("subscribe", "empty", "{\"subscribe\": {}}");

  /* What r-nacos 0.8.8 answers (scripts/services/NACOS-NOTES.md). */
  put_text("nacos", "list",
           "{\"name\":\"DEFAULT_GROUP@@memquorum-cluster\",\"clusters\":\"\",\"cacheMillis\":10000,"
           "\"hosts\":[{\"service\":\"DEFAULT_GROUP@@memquorum-cluster\",\"ip\":\"10.213.0.2\","
           "\"port\":7070,\"clusterName\":\"DEFAULT\",\"weight\":1.0,\"healthy\":true,"
           "\"instanceId\":\"10.213.0.2#7070\",\"metadata\":{\"node_id\":\"n1\","
           "\"api_port\":\"8080\",\"incarnation\":\"7\"},\"marked\":true,\"enabled\":true,"
           "\"serviceName\":\"DEFAULT_GROUP@@memquorum-cluster\",\"ephemeral\":true},"
           "{\"service\":\"DEFAULT_GROUP@@memquorum-cluster\",\"ip\":\"10.213.0.99\",\"port\":7070,"
           "\"clusterName\":\"DEFAULT\",\"weight\":1.0,\"healthy\":true,"
           "\"instanceId\":\"10.213.0.99#7070\",\"metadata\":{},\"marked\":true,"
           "\"enabled\":true,\"serviceName\":\"DEFAULT_GROUP@@memquorum-cluster\","
           "\"ephemeral\":true}],\"lastRefTime\":1796402988724,\"checksum\":\"1796402988724\","
           "\"useSpecifiedURL\":false,\"env\":\"\",\"protectThreshold\":null,"
           "\"reachLocalSiteCallThreshold\":null,\"dom\":\"memquorum-cluster\",\"metadata\":null}");
  put_text("nacos", "list-empty",
           "{\"name\":\"DEFAULT_GROUP@@no-such-service\",\"clusters\":\"\",\"cacheMillis\":10000,"
           "\"hosts\":[],\"lastRefTime\":1796402988719,\"checksum\":\"1796402988719\","
           "\"useSpecifiedURL\":false,\"env\":\"\",\"protectThreshold\":null,"
           "\"reachLocalSiteCallThreshold\":null,\"dom\":\"no-such-service\",\"metadata\":null}");
  put_text("nacos", "list-v3",
           "{\"code\":0,\"message\":\"success\",\"data\":[{\"ip\":\"::1\",\"port\":7071,"
           "\"healthy\":true,\"enabled\":true,\"metadata\":{\"node_id\":\"a-1\","
           "\"incarnation\":\"18446744073709551615\"}}]}");
  put_text("nacos", "beat",
           "{\"lightBeatEnabled\":true,\"clientBeatInterval\":5000,\"code\":10200}");
  put_text("nacos", "beat-20404", "{\"code\":20404,\"clientBeatInterval\":5000}");
  put_text("nacos", "login",
           "{\"accessToken\":\"475df2c74d404ab5b33b55b70714098e32eff5841e3945de8c9ee425f3a4e83c\","
           "\"tokenTtl\":3600,\"globalAdmin\":false,\"username\":\"admin\"}");
  put_text(
      "nacos", "forbidden",
      "{\"timestamp\":\"2026-12-04T16:49:49.292+00:00\",\"status\":403,\"error\":\"Forbidden\","
      "\"message\":\"unknown user!\",\"path\":\"/nacos/v1/ns/instance/list\"}");
  put_text("nacos", "listener", "memquorum.properties%02DEFAULT_GROUP%01\n");
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: fuzz-corpus DIR (tests/fuzz/corpus)\n");
    return 2;
  }
  root = argv[1];
  mkdir_p(root);
  struct mq_buf b;
  mq_buf_init(&b);
  commands(&b);
  snapshots(&b);
  raft_messages(&b);
  raft_frames();
  forwarded(&b);
  api_requests();
  peer_messages();
  texts();
  mq_buf_close(&b);
  printf("fuzz-corpus: seeds written to %s\n", root);
  return 0;
}
