/* The node of raft_node.h. */
#include "fuzz/raft_node.h"

#include "fuzz/fuzz.h"
#include "util/err.h"

#include <string.h>

static const char *const names[] = {"fuzz-a", "fuzz-b", "fuzz-c"};

struct mq_raft_member fz_member(int who) {
  return (struct mq_raft_member){mq_raft_node_key(names[who]), 1};
}

static struct mq_raft_conf conf_of(int group) {
  struct mq_raft_conf c = {0};
  int n = group == 1 ? 1 : 3;
  for (int i = 0; i < n; i++) {
    c.m[c.n].id = fz_member(i);
    c.m[c.n++].role = group == 2 && i == FZ_C ? MQ_RAFT_LEARNER : MQ_RAFT_VOTER;
  }
  return c;
}

void fz_start(struct mq_raft_host *h, int who) {
  mq_raft_host_init(h, fz_member(who).node);
  for (int g = 0; g < FZ_GROUPS; g++) {
    if (g == 1 && who != FZ_A)
      continue;
    struct mq_raft_options o;
    mq_raft_options_default(&o);
    o.group = (uint64_t)g;
    o.self = fz_member(who);
    o.seed = 1000u * (unsigned)g + (unsigned)who + 1;
    o.snapshot_entries = 8;
    o.snapshot_chunk = 64;
    struct mq_raft_conf c = conf_of(g);
    FUZZ_CHECK(mq_raft_host_add(h, &o, &c, NULL) == 0);
  }
}

void fz_drain(struct mq_raft_host *h) {
  for (size_t i = 0; i < mq_raft_host_count(h); i++) {
    struct mq_raft *r = mq_raft_host_at(h, i);
    while (mq_raft_has_ready(r)) {
      struct mq_raft_ready rd;
      mq_raft_ready(r, &rd);
      FUZZ_CHECK(mq_raft_host_send(h, &rd) == 0);
      mq_raft_advance(r, &rd);
      char state[32];
      if (rd.snapshot_at) {
        /* the "state machine" is the index it has applied */
        int n = snprintf(state, sizeof state, "state@%llu", (unsigned long long)rd.snapshot_at);
        FUZZ_CHECK(mq_raft_compact(r, rd.snapshot_at, state, (size_t)n) == 0);
      }
      if (rd.compact_at)
        FUZZ_CHECK(mq_raft_compact(r, rd.compact_at, NULL, 0) == 0);
    }
    struct mq_raft_status st;
    mq_raft_status(r, &st);
    FUZZ_CHECK(st.applied <= st.commit && st.commit <= st.last_index);
    FUZZ_CHECK(st.snap_index <= st.applied);
  }
}

void fz_frame(struct mq_buf *b, int from, int to, const uint8_t *body, size_t n) {
  mq_buf_put_u8(b, 1); /* FRAME_VERSION of core/host.c */
  mq_buf_put_u64(b, fz_member(from).node);
  mq_buf_put_u64(b, fz_member(to).node);
  mq_buf_put(b, body, n);
}

bool fz_op(struct mq_raft_host *h, struct mq_reader *rd, uint64_t *reads) {
  if (mq_reader_left(rd) == 0)
    return false;
  uint8_t op = mq_get_u8(rd);
  struct mq_raft *r = mq_raft_host_get(h, (uint64_t)((op >> 2) % FZ_GROUPS));
  int rc;
  switch (op & 3) {
  case FZ_OP_FRAME: {
    size_t n;
    const uint8_t *body = mq_get_bytes(rd, &n, 1u << 20);
    if (rd->err)
      return false;
    struct mq_buf frame;
    mq_buf_init(&frame);
    fz_frame(&frame, op & 4 ? FZ_C : FZ_B, FZ_A, body, n);
    rc = mq_raft_host_receive(h, frame.data, frame.len);
    FUZZ_CHECK(rc == 0 || rc == MQ_ECORRUPT || rc == MQ_ENOMEM);
    mq_buf_close(&frame);
    break;
  }
  case FZ_OP_TICK:
    for (int i = 0; i <= op >> 2; i++)
      mq_raft_host_tick(h);
    break;
  case FZ_OP_PROPOSE:
    rc = mq_raft_propose(r, "cmd", 3, NULL, NULL);
    FUZZ_CHECK(rc == 0 || rc == MQ_ENOTLEADER || rc == MQ_EUNAVAIL || rc == MQ_ENOSPACE);
    break;
  default:
    rc = mq_raft_read_index(r, ++*reads);
    FUZZ_CHECK(rc == 0 || rc == MQ_ENOTLEADER || rc == MQ_EUNAVAIL);
    break;
  }
  fz_drain(h);
  return true;
}
