/* raft-scenarios: the classic Raft situations, each built step by step on
 * the simulated cluster of fixture.c (whose safety checker also runs after
 * every event), plus the wire codec and the multi-group host.
 *   raft-scenarios [name-substring]
 * Each test fails for one reason and says which, with both operands. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/host.h"
#include "fixture.h"
#include "util/buf.h"
#include "util/err.h"

static int failures;
static const char *current;

#define CHECK(cond)                                                                                \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      printf("  FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);                                     \
      return 1;                                                                                    \
    }                                                                                              \
  } while (0)
#define CHECK_EQ(a, b)                                                                             \
  do {                                                                                             \
    unsigned long long a_ = (unsigned long long)(a), b_ = (unsigned long long)(b);                 \
    if (a_ != b_) {                                                                                \
      printf("  FAIL %s:%d: %s == %s (%llu vs %llu)\n", __FILE__, __LINE__, #a, #b, a_, b_);       \
      return 1;                                                                                    \
    }                                                                                              \
  } while (0)
#define SAFE(f)                                                                                    \
  do {                                                                                             \
    if ((f)->failed) {                                                                             \
      printf("  FAIL %s:%d: checker: %s\n", __FILE__, __LINE__, (f)->why);                         \
      fx_print_trace(f);                                                                           \
      return 1;                                                                                    \
    }                                                                                              \
  } while (0)

/* ---- helpers ------------------------------------------------------------ */

static struct mq_raft_options opts(void) {
  struct mq_raft_options o;
  mq_raft_options_default(&o);
  return o;
}

static struct mq_raft_status stat_of(struct fx *f, int i) {
  struct mq_raft_status st;
  mq_raft_status(f->nodes[i].r, &st);
  return st;
}

static void tick_node(struct fx *f, int i, int n) {
  for (int k = 0; k < n && f->nodes[i].alive; k++) {
    mq_raft_tick(f->nodes[i].r);
    fx_process(f, i);
  }
}

/* Lets every check-quorum lease run out, with nothing delivered. */
static void expire_leases(struct fx *f, int except) {
  for (int j = 0; j < f->n; j++)
    if (j != except) tick_node(f, j, (int)f->opt.election_ticks);
  fx_drop_all(f);
}

/* Makes node i campaign until it leads (or gives up). */
static bool elect(struct fx *f, int i) {
  for (int attempt = 0; attempt < 4; attempt++) {
    expire_leases(f, i);
    mq_raft_campaign(f->nodes[i].r);
    fx_deliver_all(f);
    if (fx_role(f, i) == MQ_RAFT_LEADER) return true;
  }
  return false;
}

static bool has_leader(struct fx *f, void *arg) {
  (void)arg;
  return fx_leader(f) >= 0;
}

/* Campaigns and stops delivering the moment node i wins: its no-op is
 * still only in its own log. */
static bool win_quietly(struct fx *f, int i) {
  for (int attempt = 0; attempt < 4 && fx_role(f, i) != MQ_RAFT_LEADER; attempt++) {
    expire_leases(f, i);
    mq_raft_campaign(f->nodes[i].r);
    fx_process(f, i);
    while (fx_role(f, i) != MQ_RAFT_LEADER && fx_deliver_one(f)) {
    }
  }
  return fx_role(f, i) == MQ_RAFT_LEADER;
}

static int propose_n(struct fx *f, int i, int n) {
  int ok = 0;
  for (int k = 0; k < n; k++) ok += fx_propose(f, i, NULL) == 0;
  return ok;
}

static bool all_applied(struct fx *f, uint64_t idx) {
  for (int i = 0; i < f->n; i++)
    if (f->nodes[i].alive && f->nodes[i].applied < idx) return false;
  return true;
}

static void connect_only(struct fx *f, const int *group, int n) {
  for (int a = 0; a < f->n; a++)
    for (int b = 0; b < f->n; b++) f->cut[a][b] = true;
  for (int x = 0; x < n; x++)
    for (int y = 0; y < n; y++) f->cut[group[x]][group[y]] = false;
}

static int voters_of(struct fx *f, int i) {
  struct mq_raft_conf c = stat_of(f, i).conf;
  int v = 0;
  for (uint32_t k = 0; k < c.n; k++) v += c.m[k].role == MQ_RAFT_VOTER;
  return v;
}

/* With node `out` cut off from the other two, does leader i still commit? */
static bool commits_without(struct fx *f, int i, int out) {
  fx_isolate(f, out);
  int other = 3 - i - out;
  f->cut[i][other] = f->cut[other][i] = false;
  uint64_t idx;
  if (fx_propose(f, i, &idx)) return false;
  fx_deliver_all(f);
  return fx_commit(f, i) >= idx;
}

/* Counts queued messages of a type from a to b. */
static int queued(struct fx *f, int a, int b, uint32_t type) {
  int n = 0;
  for (size_t k = 0; k < f->nq; k++)
    if (f->q[k].from == a && f->q[k].to == b && f->q[k].bytes[0] == type) n++;
  return n;
}

/* ---- elections ---------------------------------------------------------- */

static int t_initial_election(void) {
  struct fx f;
  fx_init(&f, 1, 3, 0, NULL);
  CHECK(elect(&f, 0));
  struct mq_raft_status st = stat_of(&f, 0);
  CHECK_EQ(st.term, 2);
  CHECK_EQ(fx_role(&f, 1), MQ_RAFT_FOLLOWER);
  CHECK_EQ(fx_role(&f, 2), MQ_RAFT_FOLLOWER);
  CHECK(all_applied(&f, 2)); /* configuration entry and the leader's no-op */
  CHECK_EQ(mq_raft_entry_at(f.nodes[1].r, 2)->type, MQ_RAFT_ENTRY_NOOP);
  SAFE(&f);
  fx_close(&f);
  return 0;
}

static int t_election_by_timeout(void) {
  struct fx f;
  fx_init(&f, 2, 5, 0, NULL);
  CHECK(fx_run_until(&f, 100, has_leader, NULL));
  CHECK(fx_leader(&f) >= 0);
  SAFE(&f);
  fx_close(&f);
  return 0;
}

static int t_replicate_and_batch(void) {
  struct fx f;
  fx_init(&f, 3, 3, 0, NULL);
  CHECK(elect(&f, 0));
  /* proposal batching: 50 proposals between two ready batches leave in one
   * append per follower */
  for (int k = 0; k < 50; k++)
    CHECK_EQ(mq_raft_propose(f.nodes[0].r, "0123456789abcdef", 16, NULL, NULL), 0);
  fx_process(&f, 0);
  CHECK_EQ(queued(&f, 0, 1, MQ_RAFT_MSG_APP), 1);
  CHECK_EQ(queued(&f, 0, 2, MQ_RAFT_MSG_APP), 1);
  fx_deliver_all(&f);
  CHECK(all_applied(&f, 52));
  CHECK_EQ(f.nodes[1].hash, f.nodes[0].hash);
  CHECK_EQ(fx_propose(&f, 1, NULL), MQ_ENOTLEADER);
  SAFE(&f);
  fx_close(&f);
  return 0;
}

/* lazy_commit: the append that would only carry a new commit index waits
 * for mq_raft_flush_commit() (or the next heartbeat); without it, it goes
 * out with the leader's next ready batch. */
static int t_lazy_commit(void) {
  for (int lazy = 0; lazy <= 1; lazy++) {
    struct fx f;
    struct mq_raft_options o = opts();
    o.lazy_commit = lazy;
    fx_init(&f, 4, 3, 0, &o);
    CHECK(elect(&f, 0));
    fx_deliver_all(&f);
    uint64_t idx;
    CHECK_EQ(mq_raft_propose(f.nodes[0].r, "x", 1, NULL, &idx), 0);
    fx_process(&f, 0);
    fx_deliver_all(&f); /* the appends, their answers, and what follows */
    CHECK_EQ(fx_commit(&f, 0), idx);
    CHECK_EQ(fx_commit(&f, 1) == idx, !lazy);
    CHECK_EQ(queued(&f, 0, 1, MQ_RAFT_MSG_APP), 0);
    /* a follower that was already told is not told again */
    mq_raft_flush_commit(f.nodes[0].r);
    fx_process(&f, 0);
    CHECK_EQ(queued(&f, 0, 1, MQ_RAFT_MSG_APP), lazy);
    CHECK_EQ(queued(&f, 0, 2, MQ_RAFT_MSG_APP), lazy);
    fx_deliver_all(&f);
    CHECK(all_applied(&f, idx));
    mq_raft_flush_commit(f.nodes[0].r);
    fx_process(&f, 0);
    CHECK_EQ(queued(&f, 0, 1, MQ_RAFT_MSG_APP), 0);
    SAFE(&f);
    fx_close(&f);
  }
  return 0;
}

static int t_prevote_no_term_inflation(void) {
  struct fx f;
  fx_init(&f, 4, 3, 0, NULL);
  CHECK(elect(&f, 0));
  uint64_t term = fx_term(&f, 0);
  fx_isolate(&f, 2);
  for (int t = 0; t < 200; t++) {
    fx_tick(&f);
    fx_deliver_all(&f);
  }
  CHECK_EQ(fx_term(&f, 2), term); /* pre-vote failed every time: no new term */
  CHECK(fx_role(&f, 2) != MQ_RAFT_LEADER);
  fx_heal(&f);
  for (int t = 0; t < 5; t++) {
    fx_tick(&f);
    fx_deliver_all(&f);
  }
  CHECK_EQ(fx_leader(&f), 0); /* rejoining did not disturb the leader */
  CHECK_EQ(fx_term(&f, 0), term);
  SAFE(&f);
  fx_close(&f);
  return 0;
}

static int t_check_quorum_step_down(void) {
  struct fx f;
  fx_init(&f, 5, 3, 0, NULL);
  CHECK(elect(&f, 0));
  fx_isolate(&f, 0);
  for (int t = 0; t < 2 * (int)f.opt.election_ticks + 1; t++) {
    fx_tick(&f);
    fx_deliver_all(&f);
  }
  CHECK(fx_role(&f, 0) != MQ_RAFT_LEADER); /* lost its quorum: stepped down */
  CHECK_EQ(fx_propose(&f, 0, NULL), MQ_ENOTLEADER);
  SAFE(&f);
  fx_close(&f);
  return 0;
}

static int t_partitioned_old_leader(void) {
  struct fx f;
  fx_init(&f, 6, 5, 0, NULL);
  CHECK(elect(&f, 0));
  fx_isolate(&f, 0);
  CHECK_EQ(propose_n(&f, 0, 5), 5); /* accepted, can never commit */
  uint64_t old_commit = fx_commit(&f, 0);
  int maj[] = {1, 2, 3, 4};
  connect_only(&f, maj, 4);
  CHECK(elect(&f, 1));
  CHECK_EQ(propose_n(&f, 1, 3), 3);
  fx_deliver_all(&f);
  CHECK_EQ(fx_commit(&f, 0), old_commit);
  fx_heal(&f);
  for (int t = 0; t < 3; t++) {
    fx_tick(&f);
    fx_deliver_all(&f);
  }
  CHECK_EQ(fx_role(&f, 0), MQ_RAFT_FOLLOWER);
  CHECK(all_applied(&f, fx_commit(&f, 1)));
  for (int i = 0; i < 5; i++) CHECK_EQ(f.nodes[i].hash, f.nodes[1].hash);
  SAFE(&f);
  fx_close(&f);
  return 0;
}

/* Figure 7: followers with missing and with extra, conflicting entries are
 * all brought to the leader's log; fast backtracking skips whole terms. */
static int t_figure7_conflicting_logs(void) {
  struct fx f;
  fx_init(&f, 7, 5, 0, NULL);
  CHECK(elect(&f, 0));
  CHECK_EQ(propose_n(&f, 0, 3), 3);
  fx_deliver_all(&f);
  fx_isolate(&f, 4); /* n5 will miss entries */
  CHECK_EQ(propose_n(&f, 0, 4), 4);
  fx_deliver_all(&f);
  int a[] = {0, 3}; /* n1 and n4 get 30 entries the others never see */
  connect_only(&f, a, 2);
  CHECK_EQ(propose_n(&f, 0, 30), 30);
  fx_deliver_all(&f);
  int b[] = {1, 2, 4};
  connect_only(&f, b, 3);
  CHECK(elect(&f, 1));
  CHECK_EQ(propose_n(&f, 1, 10), 10);
  fx_deliver_all(&f);
  fx_heal(&f);
  size_t before = f.n_delivered;
  for (int t = 0; t < 5; t++) {
    fx_tick(&f);
    fx_deliver_all(&f);
  }
  uint64_t c = fx_commit(&f, 1);
  CHECK(all_applied(&f, c));
  for (int i = 0; i < 5; i++) {
    CHECK_EQ(stat_of(&f, i).last_index, stat_of(&f, 1).last_index);
    CHECK_EQ(f.nodes[i].hash, f.nodes[1].hash);
  }
  CHECK(f.n_delivered - before < 200); /* not one round trip per entry */
  SAFE(&f);
  fx_close(&f);
  return 0;
}

/* Figure 8: an entry of an earlier term stored on a majority is not
 * committed by counting replicas; a later leader may still replace it. */
static int t_figure8(void) {
  struct mq_raft_options o = opts();
  o.max_msg_bytes = 16; /* one entry per append */
  struct fx f;
  fx_init(&f, 8, 5, 0, &o);
  CHECK(elect(&f, 0));
  uint64_t k = stat_of(&f, 0).last_index + 1;
  int s12[] = {0, 1};
  connect_only(&f, s12, 2);
  CHECK_EQ(fx_propose(&f, 0, NULL), 0); /* X at k, term 2, on n1 and n2 */
  fx_deliver_all(&f);
  CHECK_EQ(mq_raft_term_at(f.nodes[1].r, k), 2);
  int s345[] = {2, 3, 4};
  connect_only(&f, s345, 3);
  expire_leases(&f, 4);
  CHECK(win_quietly(&f, 4));
  CHECK_EQ(fx_role(&f, 4), MQ_RAFT_LEADER); /* n5 leads term 3 ... */
  fx_drop_all(&f);                          /* ... but Y at k stays on n5 */
  CHECK_EQ(mq_raft_term_at(f.nodes[4].r, k), 3);
  int s123[] = {0, 1, 2};
  connect_only(&f, s123, 3);
  CHECK(win_quietly(&f, 0)); /* n1 leads term 4 with X */
  CHECK_EQ(fx_term(&f, 0), 4);
  /* replicate X to n3 but keep the term-4 no-op from it */
  fx_process(&f, 0);
  while (stat_of(&f, 2).last_index < k && fx_deliver_one(&f)) {
  }
  CHECK_EQ(mq_raft_term_at(f.nodes[2].r, k), 2);
  f.cut[0][2] = true;
  fx_deliver_all(&f);
  CHECK_EQ(mq_raft_term_at(f.nodes[1].r, k + 1), 4); /* n2 has the no-op */
  CHECK(fx_commit(&f, 0) < k); /* on n1, n2, n3: a majority, still not committed */
  int s2345[] = {1, 2, 3, 4};
  connect_only(&f, s2345, 4);
  fx_isolate(&f, 0);
  bool led = false;
  for (int i = 0; i < 6 && !led; i++) led = elect(&f, 4);
  CHECK(led); /* n5 wins with Y (term 3) */
  fx_deliver_all(&f);
  fx_heal(&f);
  for (int t = 0; t < 5; t++) {
    fx_tick(&f);
    fx_deliver_all(&f);
  }
  for (int i = 0; i < 5; i++) CHECK_EQ(mq_raft_term_at(f.nodes[i].r, k), 3);
  SAFE(&f);
  fx_close(&f);
  return 0;
}

/* ---- leadership transfer ------------------------------------------------ */

static int t_leader_transfer(void) {
  struct fx f;
  fx_init(&f, 9, 3, 0, NULL);
  CHECK(elect(&f, 0));
  uint64_t term = fx_term(&f, 0);
  f.cut[0][2] = true; /* n3 lags behind */
  CHECK_EQ(propose_n(&f, 0, 5), 5);
  fx_deliver_all(&f);
  f.cut[0][2] = false;
  CHECK_EQ(mq_raft_transfer_leadership(f.nodes[0].r, f.nodes[2].id), 0);
  CHECK_EQ(fx_propose(&f, 0, NULL), MQ_EUNAVAIL); /* no proposals meanwhile */
  fx_tick(&f); /* the heartbeat answer shows n3 behind: catch it up first */
  fx_deliver_all(&f);
  CHECK_EQ(fx_leader(&f), 2);
  CHECK_EQ(fx_term(&f, 2), term + 1);
  CHECK_EQ(fx_role(&f, 0), MQ_RAFT_FOLLOWER);
  CHECK_EQ(mq_raft_transfer_leadership(f.nodes[0].r, f.nodes[1].id), MQ_ENOTLEADER);
  SAFE(&f);
  fx_close(&f);
  return 0;
}

static int t_transfer_times_out(void) {
  struct fx f;
  fx_init(&f, 10, 3, 0, NULL);
  CHECK(elect(&f, 0));
  fx_isolate(&f, 2);
  f.cut[0][1] = f.cut[1][0] = false;
  CHECK_EQ(mq_raft_transfer_leadership(f.nodes[0].r, f.nodes[2].id), 0);
  for (int t = 0; t < (int)f.opt.election_ticks; t++) {
    fx_tick(&f);
    fx_deliver_all(&f);
  }
  CHECK_EQ(fx_leader(&f), 0);
  CHECK_EQ(fx_propose(&f, 0, NULL), 0); /* transfer abandoned */
  SAFE(&f);
  fx_close(&f);
  return 0;
}

/* ---- ReadIndex ---------------------------------------------------------- */

static int t_read_index(void) {
  struct fx f;
  fx_init(&f, 11, 3, 0, NULL);
  CHECK_EQ(mq_raft_read_index(f.nodes[0].r, 1), MQ_ENOTLEADER);
  CHECK(elect(&f, 0));
  CHECK_EQ(propose_n(&f, 0, 3), 3);
  uint64_t id;
  CHECK_EQ(fx_read(&f, 0, &id), 0);
  fx_deliver_all(&f);
  CHECK(fx_read_done(&f, id, NULL));
  CHECK_EQ(fx_read(&f, 1, &id), MQ_ENOTLEADER);
  SAFE(&f);
  fx_close(&f);
  return 0;
}

static int t_read_index_waits_for_term_commit(void) {
  struct fx f;
  fx_init(&f, 12, 3, 0, NULL);
  CHECK(win_quietly(&f, 0));
  CHECK_EQ(fx_role(&f, 0), MQ_RAFT_LEADER);
  CHECK_EQ(mq_raft_read_index(f.nodes[0].r, 7), MQ_EUNAVAIL); /* no-op not committed */
  fx_deliver_all(&f);
  CHECK_EQ(mq_raft_read_index(f.nodes[0].r, 7), 0);
  SAFE(&f);
  fx_close(&f);
  return 0;
}

static int t_read_index_across_leader_change(void) {
  struct fx f;
  fx_init(&f, 13, 3, 0, NULL);
  CHECK(elect(&f, 0));
  fx_isolate(&f, 0);
  uint64_t stale;
  CHECK_EQ(fx_read(&f, 0, &stale), 0); /* the old leader cannot confirm it */
  int s23[] = {1, 2};
  connect_only(&f, s23, 2);
  CHECK(elect(&f, 1));
  CHECK_EQ(propose_n(&f, 1, 4), 4);
  fx_deliver_all(&f);
  uint64_t fresh;
  CHECK_EQ(fx_read(&f, 1, &fresh), 0);
  fx_deliver_all(&f);
  CHECK(fx_read_done(&f, fresh, NULL)); /* and it saw the 4 writes (checker) */
  fx_heal(&f);
  for (int t = 0; t < 3; t++) {
    fx_tick(&f);
    fx_deliver_all(&f);
  }
  CHECK_EQ(fx_role(&f, 0), MQ_RAFT_FOLLOWER);
  CHECK(f.n_reads_ok >= 1);
  SAFE(&f); /* the stale read was dropped, never served */
  fx_close(&f);
  return 0;
}

/* ---- membership and incarnations ---------------------------------------- */

static int t_membership_rules(void) {
  struct fx f;
  fx_init(&f, 14, 3, 1, NULL);
  CHECK(win_quietly(&f, 0));
  /* not yet committed in its term */
  CHECK_EQ(fx_change(&f, 0, MQ_RAFT_ADD_LEARNER, f.nodes[3].id), MQ_EPRECOND);
  fx_deliver_all(&f);
  f.cut[0][1] = f.cut[0][2] = true;
  CHECK_EQ(fx_change(&f, 0, MQ_RAFT_ADD_LEARNER, f.nodes[3].id), 0);
  CHECK_EQ(fx_change(&f, 0, MQ_RAFT_REMOVE, f.nodes[2].id), MQ_EPRECOND); /* one at a time */
  fx_heal(&f);
  fx_tick(&f);
  fx_deliver_all(&f);
  CHECK_EQ(fx_change(&f, 0, MQ_RAFT_ADD_LEARNER, f.nodes[3].id), MQ_EINVAL);
  CHECK_EQ(fx_change(&f, 1, MQ_RAFT_REMOVE, f.nodes[2].id), MQ_ENOTLEADER);
  SAFE(&f);
  fx_close(&f);
  return 0;
}

static int t_learner_catch_up(void) {
  struct mq_raft_options o = opts();
  o.snapshot_entries = 20;
  struct fx f;
  fx_init(&f, 15, 3, 1, &o);
  CHECK(elect(&f, 0));
  CHECK_EQ(propose_n(&f, 0, 100), 100);
  fx_deliver_all(&f);
  f.cut[0][3] = true;
  CHECK_EQ(fx_change(&f, 0, MQ_RAFT_ADD_LEARNER, f.nodes[3].id), 0);
  fx_deliver_all(&f);
  CHECK_EQ(fx_change(&f, 0, MQ_RAFT_PROMOTE, f.nodes[3].id), MQ_EPRECOND); /* behind */
  /* a learner does not count: the three voters still commit on their own */
  CHECK_EQ(propose_n(&f, 0, 5), 5);
  fx_deliver_all(&f);
  CHECK_EQ(fx_commit(&f, 0), stat_of(&f, 0).last_index);
  f.cut[0][3] = false;
  fx_tick(&f);
  fx_deliver_all(&f);
  CHECK(all_applied(&f, fx_commit(&f, 0)));
  CHECK_EQ(f.nodes[3].hash, f.nodes[0].hash);
  CHECK(f.n_snap_installs >= 1); /* caught up from a snapshot */
  CHECK_EQ(fx_change(&f, 0, MQ_RAFT_PROMOTE, f.nodes[3].id), 0);
  fx_deliver_all(&f);
  CHECK_EQ(voters_of(&f, 0), 4);
  SAFE(&f);
  fx_close(&f);
  return 0;
}

static int t_remove_leader(void) {
  struct fx f;
  fx_init(&f, 16, 3, 0, NULL);
  CHECK(elect(&f, 0));
  CHECK_EQ(fx_change(&f, 0, MQ_RAFT_REMOVE, f.nodes[0].id), 0);
  fx_deliver_all(&f);
  fx_tick(&f);
  fx_deliver_all(&f);
  CHECK_EQ(fx_role(&f, 0), MQ_RAFT_FOLLOWER); /* stepped down once committed */
  CHECK_EQ(stat_of(&f, 1).conf.n, 2);
  CHECK(fx_run_until(&f, 100, has_leader, NULL));
  int l = fx_leader(&f);
  CHECK(l == 1 || l == 2);
  for (int t = 0; t < 100; t++) { /* the removed node never campaigns */
    fx_tick(&f);
    fx_deliver_all(&f);
  }
  CHECK_EQ(fx_role(&f, 0), MQ_RAFT_FOLLOWER);
  CHECK_EQ(fx_leader(&f), l);
  SAFE(&f);
  fx_close(&f);
  return 0;
}

/* Runs until node i learns it was removed (within 100 ticks). */
static bool learns_removal(struct fx *f, int i) {
  for (int t = 0; t < 100 && !stat_of(f, i).removed; t++) {
    fx_tick(f);
    fx_deliver_all(f);
  }
  return stat_of(f, i).removed;
}

/* A member that missed its own removal and hears from none of the voters
 * of its last configuration (gone, or replaced by new incarnations that
 * drop its messages) still learns of it, from a learner of that
 * configuration that has become a voter since: pre-votes ask learners
 * too. Otherwise it campaigns unanswered for ever and keeps a replica its
 * group does not include. */
static int t_removed_member_hears_from_learner(void) {
  struct fx f;
  fx_init(&f, 22, 3, 1, NULL);
  CHECK(elect(&f, 0));
  CHECK_EQ(fx_change(&f, 0, MQ_RAFT_ADD_LEARNER, f.nodes[3].id), 0);
  fx_deliver_all(&f);
  CHECK_EQ(stat_of(&f, 2).conf.n, 4); /* n2 knows n3 as a learner */
  for (int j = 0; j < 2; j++) f.cut[2][j] = f.cut[j][2] = true;
  CHECK_EQ(fx_change(&f, 0, MQ_RAFT_PROMOTE, f.nodes[3].id), 0);
  fx_deliver_all(&f);
  CHECK_EQ(fx_change(&f, 0, MQ_RAFT_REMOVE, f.nodes[2].id), 0);
  fx_deliver_all(&f);
  fx_tick(&f);
  fx_deliver_all(&f);
  CHECK_EQ(voters_of(&f, 3), 3);
  CHECK(!stat_of(&f, 2).removed);
  CHECK(learns_removal(&f, 2));
  CHECK_EQ(fx_leader(&f), 0); /* nothing it sent disturbed the group */
  SAFE(&f);
  fx_close(&f);
  return 0;
}

static int t_restart_new_incarnation_behind_snapshot(void) {
  struct mq_raft_options o = opts();
  o.snapshot_entries = 10;
  o.snapshot_chunk = 7; /* many chunks */
  struct fx f;
  fx_init(&f, 17, 3, 0, &o);
  CHECK(elect(&f, 0));
  CHECK_EQ(propose_n(&f, 0, 40), 40);
  fx_deliver_all(&f);
  fx_crash(&f, 2);
  CHECK_EQ(propose_n(&f, 0, 40), 40);
  fx_deliver_all(&f);
  fx_restart(&f, 2);
  struct mq_raft_member old = {3, 1}, fresh = f.nodes[2].id;
  CHECK_EQ(fresh.inc, 2);
  /* the old identity is still a voter; the new one is nobody yet */
  struct mq_raft_status st0 = stat_of(&f, 0);
  CHECK(mq_raft_conf_find(&st0.conf, old) >= 0);
  fx_tick(&f);
  fx_deliver_all(&f);
  CHECK_EQ(stat_of(&f, 2).last_index, 0); /* messages for n3.1 are not n3.2's */
  CHECK_EQ(fx_change(&f, 0, MQ_RAFT_ADD_LEARNER, fresh), 0);
  fx_deliver_all(&f);
  fx_tick(&f);
  fx_deliver_all(&f);
  CHECK(f.n_snap_installs >= 1);
  CHECK_EQ(f.nodes[2].hash, f.nodes[0].hash);
  CHECK_EQ(fx_change(&f, 0, MQ_RAFT_PROMOTE, fresh), 0);
  fx_deliver_all(&f);
  CHECK_EQ(fx_change(&f, 0, MQ_RAFT_REMOVE, old), 0);
  fx_deliver_all(&f);
  fx_tick(&f);
  fx_deliver_all(&f);
  struct mq_raft_conf c = stat_of(&f, 1).conf;
  CHECK_EQ(c.n, 3);
  CHECK(mq_raft_conf_find(&c, old) < 0);
  /* now n3.2 counts: with n2 gone, n1 and n3.2 still commit */
  CHECK(commits_without(&f, 0, 1));
  SAFE(&f);
  fx_close(&f);
  return 0;
}

static int t_old_incarnation_never_votes(void) {
  struct fx f;
  fx_init(&f, 18, 3, 0, NULL);
  CHECK(elect(&f, 0));
  fx_crash(&f, 2);
  fx_restart(&f, 2); /* n3.2: n3.1 stays in the configuration, lost */
  fx_isolate(&f, 0);
  f.cut[1][2] = f.cut[2][1] = false;
  for (int t = 0; t < 300; t++) {
    fx_tick(&f);
    fx_deliver_all(&f);
  }
  /* n2 cannot win: n3.2 is not a member and n3.1 is gone */
  CHECK(fx_role(&f, 1) != MQ_RAFT_LEADER);
  CHECK(fx_role(&f, 2) != MQ_RAFT_LEADER);
  SAFE(&f);
  fx_close(&f);
  return 0;
}

/* ---- replacement of a restarted member, and recovery ------------------- */

/* Proposes a membership change at leader i and delivers until it commits. */
static int change_commit(struct fx *f, int i, int op, struct mq_raft_member m) {
  uint64_t idx = 0;
  int rc = mq_raft_change_membership(f->nodes[i].r, op, m, &idx);
  if (rc) return rc;
  fx_process(f, i);
  for (int t = 0; t < 20 && fx_commit(f, i) < idx; t++) {
    fx_deliver_all(f);
    fx_tick(f);
  }
  fx_deliver_all(f);
  return fx_commit(f, i) >= idx ? 0 : MQ_ETIMEDOUT;
}

/* The gone members among those a recovery by node i depends on: members
 * whose node now runs under another incarnation (the scenarios restart
 * crashed nodes before they recover). */
static size_t gone_for(struct fx *f, int i, struct mq_raft_member *gone) {
  struct mq_raft_member ms[MQ_RAFT_MAX_MEMBERS];
  size_t n = mq_raft_recovery_members(f->nodes[i].r, ms, MQ_RAFT_MAX_MEMBERS), k = 0;
  for (size_t j = 0; j < n; j++)
    if (f->nodes[ms[j].node - 1].id.inc != ms[j].inc) gone[k++] = ms[j];
  return k;
}

/* Node i recovers its group and everything is delivered; true if it won
 * (it may have stepped down since, as a winner that is not a voter does). */
static bool recover_from(struct fx *f, int i) {
  struct mq_raft_member gone[MQ_RAFT_MAX_MEMBERS];
  size_t g = gone_for(f, i, gone);
  expire_leases(f, i);
  uint64_t term = fx_term(f, i), elections = f->n_elections;
  if (mq_raft_recover(f->nodes[i].r, gone, g)) return false;
  fx_process(f, i);
  fx_deliver_all(f);
  return f->n_elections > elections && fx_term(f, i) == term + 1;
}

static int voters_with(struct fx *f, int i, uint64_t node) {
  struct mq_raft_conf c = stat_of(f, i).conf;
  int v = 0;
  for (uint32_t k = 0; k < c.n; k++) v += c.m[k].role == MQ_RAFT_VOTER && c.m[k].id.node == node;
  return v;
}

/* Ticks and delivers until node i's learner j has caught up, then promotes it. */
static int promote_caught_up(struct fx *f, int i, int j) {
  for (int t = 0; t < 20 && f->nodes[j].applied < fx_commit(f, i); t++) {
    fx_tick(f);
    fx_deliver_all(f);
  }
  return change_commit(f, i, MQ_RAFT_PROMOTE, f->nodes[j].id);
}

/* n3 misses its removal; then every other member of its last configuration
 * (n1, n2) restarts in turn and is replaced by its new incarnation. Vote
 * requests n3 sends to n1.1 and n2.1 reach n1.2 and n2.2, which are
 * not those members: they answer with the configuration that excludes n3,
 * or nobody ever would and n3 would keep a replica its group dropped. */
static int t_removed_member_hears_from_new_incarnations(void) {
  struct fx f;
  fx_init(&f, 23, 3, 1, NULL);
  CHECK(elect(&f, 0));
  CHECK_EQ(propose_n(&f, 0, 5), 5);
  fx_deliver_all(&f);
  fx_isolate(&f, 2);
  CHECK_EQ(change_commit(&f, 0, MQ_RAFT_ADD_LEARNER, f.nodes[3].id), 0);
  CHECK_EQ(promote_caught_up(&f, 0, 3), 0);
  CHECK_EQ(change_commit(&f, 0, MQ_RAFT_REMOVE, f.nodes[2].id), 0);
  for (int i = 0; i < 2; i++) {
    struct mq_raft_member old = f.nodes[i].id;
    fx_crash(&f, i);
    fx_restart(&f, i);
    CHECK(elect(&f, 3));
    CHECK_EQ(change_commit(&f, 3, MQ_RAFT_REMOVE, old), 0);
    CHECK_EQ(change_commit(&f, 3, MQ_RAFT_ADD_LEARNER, f.nodes[i].id), 0);
    CHECK_EQ(promote_caught_up(&f, 3, i), 0);
  }
  CHECK_EQ(voters_of(&f, 3), 3);
  CHECK_EQ(stat_of(&f, 2).conf.n, 3); /* n3 still knows n1.1, n2.1, n3 */
  CHECK(!stat_of(&f, 2).removed);
  fx_heal(&f);
  CHECK(learns_removal(&f, 2));
  CHECK_EQ(fx_leader(&f), 3); /* nothing it sent disturbed the group */
  SAFE(&f);
  fx_close(&f);
  return 0;
}

/* Three nodes, n1 leading with 20 entries; n3 restarts as n3.2 and n1
 * removes n3.1 and adds n3.2 as a learner (the agent's order), so far. */
static bool begin_replacement(struct fx *f, uint64_t seed) {
  fx_init(f, seed, 3, 0, NULL);
  if (!elect(f, 0) || propose_n(f, 0, 20) != 20) return false;
  fx_deliver_all(f);
  fx_crash(f, 2);
  fx_restart(f, 2);
  return change_commit(f, 0, MQ_RAFT_REMOVE, (struct mq_raft_member){3, 1}) == 0 &&
         change_commit(f, 0, MQ_RAFT_ADD_LEARNER, f->nodes[2].id) == 0;
}

/* n3 restarts: the leader removes n3.1 before it adds and promotes n3.2,
 * so no configuration ever counts both (and none counts four voters of
 * which two could be gone). */
static int t_replacement_removes_old_first(void) {
  struct mq_raft_options o = opts();
  o.snapshot_entries = 10;
  struct fx f;
  fx_init(&f, 31, 3, 0, &o);
  CHECK(elect(&f, 0));
  CHECK_EQ(propose_n(&f, 0, 30), 30);
  fx_deliver_all(&f);
  fx_crash(&f, 2);
  fx_restart(&f, 2);
  struct mq_raft_member old = {3, 1}, fresh = f.nodes[2].id;
  CHECK_EQ(change_commit(&f, 0, MQ_RAFT_REMOVE, old), 0);
  CHECK_EQ(voters_of(&f, 0), 2);
  CHECK_EQ(change_commit(&f, 0, MQ_RAFT_ADD_LEARNER, fresh), 0);
  CHECK_EQ(voters_with(&f, 0, 3), 0);
  for (int t = 0; t < 5; t++) {
    fx_tick(&f);
    fx_deliver_all(&f);
  }
  CHECK_EQ(f.nodes[2].hash, f.nodes[0].hash); /* caught up (by snapshot) */
  CHECK_EQ(change_commit(&f, 0, MQ_RAFT_PROMOTE, fresh), 0);
  CHECK_EQ(voters_of(&f, 0), 3);
  CHECK_EQ(voters_with(&f, 0, 3), 1);
  /* n1 and n3.2 commit without n2 */
  CHECK(commits_without(&f, 0, 1));
  SAFE(&f);
  fx_close(&f);
  return 0;
}

/* The worst moment of the agent's order: n1 (the leader) dies after it
 * removed n3.1 and before it promoted the caught-up n3.2. n2 alone is a
 * voter left, of {n1.1, n2}: no election can succeed, but every entry
 * committed there is on n2, so n2 rebuilds the group without loss. */
static int t_leader_dies_between_remove_and_promote(void) {
  struct fx f;
  CHECK(begin_replacement(&f, 32));
  struct mq_raft_member n3 = f.nodes[2].id;
  CHECK_EQ(propose_n(&f, 0, 10), 10);
  fx_deliver_all(&f);
  uint64_t committed = fx_commit(&f, 0);
  fx_crash(&f, 0);
  fx_restart(&f, 0); /* n1.2: n1.1 is gone */
  for (int t = 0; t < 100; t++) {
    fx_tick(&f);
    fx_deliver_all(&f);
  }
  CHECK_EQ(fx_leader(&f), -1); /* stuck without recovery */
  struct mq_raft_member gone[MQ_RAFT_MAX_MEMBERS];
  size_t g = gone_for(&f, 1, gone);
  CHECK_EQ(g, 1);
  CHECK(mq_raft_recovery_lossless(f.nodes[1].r, gone, g, 3));
  CHECK(recover_from(&f, 1));
  CHECK_EQ(fx_leader(&f), 1);
  CHECK(fx_commit(&f, 1) > committed); /* its term's entries commit: n2 alone votes */
  /* the replacement goes on: n1.2 joins, both are promoted */
  CHECK_EQ(change_commit(&f, 1, MQ_RAFT_PROMOTE, n3), 0);
  CHECK_EQ(change_commit(&f, 1, MQ_RAFT_ADD_LEARNER, f.nodes[0].id), 0);
  fx_tick(&f);
  fx_deliver_all(&f);
  CHECK_EQ(change_commit(&f, 1, MQ_RAFT_PROMOTE, f.nodes[0].id), 0);
  CHECK_EQ(voters_of(&f, 1), 3);
  CHECK_EQ(propose_n(&f, 1, 5), 5);
  fx_deliver_all(&f);
  CHECK_EQ(f.nodes[0].hash, f.nodes[1].hash);
  CHECK_EQ(f.nodes[2].hash, f.nodes[1].hash);
  SAFE(&f);
  fx_close(&f);
  return 0;
}

/* n1 (the leader) removes n3.1 and commits the removal with n2's
 * acknowledgement, then dies before n2 hears of the commit: n2 holds the
 * removal as its latest configuration, uncommitted, with n1.1 and n3.1 both
 * gone. The configuration at n2's commit index counts two of three voters
 * gone, yet no leader after n1's term can lack the removal (first_test_moot
 * in core/recover.c), so n2 proves it holds every committed entry. */
/* n1 (the leader) removes m and commits the removal, and n2 holds it but
 * never hears of the commit (everything in flight is dropped). */
static bool removal_commit_unheard(struct fx *f, struct mq_raft_member m, uint64_t *removal) {
  if (mq_raft_change_membership(f->nodes[0].r, MQ_RAFT_REMOVE, m, removal)) return false;
  fx_process(f, 0);
  while (fx_commit(f, 0) < *removal && fx_deliver_one(f)) {
  }
  fx_drop_all(f);
  return fx_commit(f, 0) >= *removal && fx_commit(f, 1) < *removal &&
         stat_of(f, 1).last_index >= *removal;
}

static bool dies_before_survivor_learns_removal(struct fx *f, uint64_t seed, uint64_t *removal) {
  fx_init(f, seed, 3, 0, NULL);
  if (!elect(f, 0) || propose_n(f, 0, 20) != 20) return false;
  fx_deliver_all(f);
  fx_crash(f, 2);
  fx_restart(f, 2);
  if (!removal_commit_unheard(f, (struct mq_raft_member){3, 1}, removal)) return false;
  fx_crash(f, 0);
  fx_restart(f, 0); /* n1.2: n1.1 is gone */
  for (int t = 0; t < 100; t++) {
    fx_tick(f);
    fx_deliver_all(f);
  }
  return fx_leader(f) == -1; /* stuck without recovery */
}

static int t_leader_dies_before_survivor_learns_removal(void) {
  struct fx f;
  uint64_t removal;
  CHECK(dies_before_survivor_learns_removal(&f, 35, &removal));
  struct mq_raft_member gone[MQ_RAFT_MAX_MEMBERS];
  size_t g = gone_for(&f, 1, gone);
  CHECK_EQ(g, 2); /* n1.1, and n3.1 of the configuration at n2's commit index */
  CHECK(mq_raft_recovery_lossless(f.nodes[1].r, gone, g, 3));
  CHECK(recover_from(&f, 1));
  CHECK_EQ(fx_leader(&f), 1);
  CHECK(fx_commit(&f, 1) > removal);
  CHECK_EQ(propose_n(&f, 1, 5), 5);
  fx_deliver_all(&f);
  SAFE(&f);
  fx_close(&f);
  return 0;
}

/* The same with five voters: n1 removes n5.1 and dies as the removal
 * commits, and n3 restarts too. n2 holds the removal, uncommitted, but a
 * majority of the five that does not hold n2 need not hold n1 either: a
 * leader that never saw the removal may have committed with n3.1, n4 and
 * n5.1 as far as n2 can tell. Only an operator may rebuild the group. */
static int t_five_voters_wait_for_an_operator(void) {
  struct fx f;
  fx_init(&f, 36, 5, 0, NULL);
  CHECK(elect(&f, 0));
  CHECK_EQ(propose_n(&f, 0, 20), 20);
  fx_deliver_all(&f);
  fx_crash(&f, 4);
  fx_restart(&f, 4);
  uint64_t removal;
  CHECK(removal_commit_unheard(&f, (struct mq_raft_member){5, 1}, &removal));
  fx_crash(&f, 0);
  fx_restart(&f, 0);
  fx_crash(&f, 2);
  fx_restart(&f, 2);
  for (int t = 0; t < 100; t++) {
    fx_tick(&f);
    fx_deliver_all(&f);
  }
  CHECK_EQ(fx_leader(&f), -1);
  struct mq_raft_member gone[MQ_RAFT_MAX_MEMBERS];
  size_t g = gone_for(&f, 1, gone);
  CHECK_EQ(g, 3); /* n1.1, n3.1, n5.1 */
  /* with five replicas' policy (no live voter removed from five or fewer),
   * the removal's configuration alone would pass */
  CHECK(!mq_raft_recovery_lossless(f.nodes[1].r, gone, g, 5));
  SAFE(&f);
  fx_close(&f);
  return 0;
}

/* The order the agent used before: promote n3.2, then remove n3.1. The
 * leader dying between the two leaves {n1.1, n2, n3.1, n3.2} with two
 * voters gone: no majority, ever, and no proof that n2 and n3.2 hold every
 * committed entry (the leader may have removed a live voter and committed
 * with n3.1 before it died, as far as they can tell). Only an operator's
 * explicit recovery gets the group going again. */
static int t_leader_dies_between_promote_and_remove(void) {
  struct fx f;
  fx_init(&f, 33, 3, 0, NULL);
  CHECK(elect(&f, 0));
  CHECK_EQ(propose_n(&f, 0, 20), 20);
  fx_deliver_all(&f);
  fx_crash(&f, 2);
  fx_restart(&f, 2);
  struct mq_raft_member n3 = f.nodes[2].id;
  CHECK_EQ(change_commit(&f, 0, MQ_RAFT_ADD_LEARNER, n3), 0);
  fx_tick(&f);
  fx_deliver_all(&f);
  CHECK_EQ(change_commit(&f, 0, MQ_RAFT_PROMOTE, n3), 0);
  CHECK_EQ(voters_of(&f, 0), 4);
  fx_crash(&f, 0);
  fx_restart(&f, 0);
  for (int t = 0; t < 300; t++) {
    fx_tick(&f);
    fx_deliver_all(&f);
  }
  CHECK_EQ(fx_leader(&f), -1); /* the wedge of a rolling restart */
  struct mq_raft_member gone[MQ_RAFT_MAX_MEMBERS];
  size_t g = gone_for(&f, 1, gone);
  CHECK_EQ(g, 2);
  CHECK(!mq_raft_recovery_lossless(f.nodes[1].r, gone, g, 3));
  int best = stat_of(&f, 2).last_index > stat_of(&f, 1).last_index ? 2 : 1;
  CHECK(recover_from(&f, best)); /* what `mqctl recover` orders */
  CHECK_EQ(propose_n(&f, fx_leader(&f), 3), 3);
  fx_deliver_all(&f);
  CHECK_EQ(f.nodes[1].hash, f.nodes[2].hash);
  SAFE(&f);
  fx_close(&f);
  return 0;
}

/* While n3.2 is replacing n3.1, n2 restarts too. n1 still leads {n1, n2.1}
 * (plus the learner n3.2) but can commit nothing; once it steps down it
 * rebuilds the group from itself and n3.2, then n2.2 joins. */
static int t_second_restart_during_replacement(void) {
  struct fx f;
  CHECK(begin_replacement(&f, 34));
  struct mq_raft_member n3 = f.nodes[2].id;
  fx_crash(&f, 1);
  fx_restart(&f, 1); /* n2.2 */
  uint64_t idx;
  CHECK_EQ(fx_propose(&f, 0, &idx), 0);
  for (int t = 0; t < 100; t++) {
    fx_tick(&f);
    fx_deliver_all(&f);
  }
  CHECK(fx_commit(&f, 0) < idx);           /* nothing commits */
  CHECK(fx_role(&f, 0) != MQ_RAFT_LEADER); /* check-quorum stepped it down */
  struct mq_raft_member gone[MQ_RAFT_MAX_MEMBERS];
  size_t g = gone_for(&f, 0, gone);
  CHECK_EQ(g, 1);
  CHECK(mq_raft_recovery_lossless(f.nodes[0].r, gone, g, 3));
  CHECK(recover_from(&f, 0));
  CHECK_EQ(fx_leader(&f), 0);
  CHECK(fx_commit(&f, 0) >= idx); /* the write made while stuck commits now */
  CHECK_EQ(change_commit(&f, 0, MQ_RAFT_PROMOTE, n3), 0);
  CHECK_EQ(change_commit(&f, 0, MQ_RAFT_ADD_LEARNER, f.nodes[1].id), 0);
  fx_tick(&f);
  fx_deliver_all(&f);
  CHECK_EQ(change_commit(&f, 0, MQ_RAFT_PROMOTE, f.nodes[1].id), 0);
  CHECK_EQ(voters_of(&f, 0), 3);
  CHECK_EQ(f.nodes[1].hash, f.nodes[0].hash);
  CHECK_EQ(f.nodes[2].hash, f.nodes[0].hash);
  SAFE(&f);
  fx_close(&f);
  return 0;
}

/* n3 restarts again while its new incarnation is still a learner: the
 * learner n3.2 is gone too, removed like any old incarnation, and n3.3
 * takes its place. No majority is at risk at any time. */
static int t_restart_during_replacement(void) {
  struct mq_raft_options o = opts();
  o.snapshot_entries = 10;
  o.snapshot_chunk = 7;
  struct fx f;
  fx_init(&f, 35, 3, 0, &o);
  CHECK(elect(&f, 0));
  CHECK_EQ(propose_n(&f, 0, 40), 40);
  fx_deliver_all(&f);
  fx_crash(&f, 2);
  fx_restart(&f, 2);
  struct mq_raft_member n3a = f.nodes[2].id;
  CHECK_EQ(change_commit(&f, 0, MQ_RAFT_REMOVE, (struct mq_raft_member){3, 1}), 0);
  CHECK_EQ(mq_raft_change_membership(f.nodes[0].r, MQ_RAFT_ADD_LEARNER, n3a, NULL), 0);
  fx_process(&f, 0);
  for (int k = 0; k < 6 && fx_deliver_one(&f); k++) {
  } /* part of the snapshot */
  fx_crash(&f, 2);
  fx_restart(&f, 2);
  struct mq_raft_member n3b = f.nodes[2].id;
  fx_deliver_all(&f);
  CHECK_EQ(change_commit(&f, 0, MQ_RAFT_REMOVE, n3a), 0);
  CHECK_EQ(change_commit(&f, 0, MQ_RAFT_ADD_LEARNER, n3b), 0);
  for (int t = 0; t < 5; t++) {
    fx_tick(&f);
    fx_deliver_all(&f);
  }
  CHECK_EQ(change_commit(&f, 0, MQ_RAFT_PROMOTE, n3b), 0);
  CHECK_EQ(voters_of(&f, 0), 3);
  CHECK_EQ(f.nodes[2].hash, f.nodes[0].hash);
  SAFE(&f);
  fx_close(&f);
  return 0;
}

/* Recovery needs the vote of every survivor, learners included, and goes
 * to the most recent log: n2 cannot recover over the learner n3.2, which
 * holds entries n2 lacks; n3.2 can, leads as a learner until the new
 * configuration commits, then steps down for n2. */
static int t_recovery_needs_every_survivor(void) {
  struct fx f;
  CHECK(begin_replacement(&f, 36));
  fx_tick(&f);
  fx_deliver_all(&f);
  f.cut[0][1] = true; /* n2 misses the next appends, n3.2 gets them */
  CHECK_EQ(propose_n(&f, 0, 4), 4);
  fx_deliver_all(&f);
  uint64_t n3_last = stat_of(&f, 2).last_index;
  CHECK(n3_last > stat_of(&f, 1).last_index);
  fx_crash(&f, 0);
  fx_restart(&f, 0);
  fx_heal(&f);
  CHECK(!recover_from(&f, 1)); /* n3.2 refuses: its log is more recent */
  CHECK(recover_from(&f, 2));
  for (int t = 0; t < 60 && fx_leader(&f) != 1; t++) {
    fx_tick(&f);
    fx_deliver_all(&f);
  }
  CHECK_EQ(fx_leader(&f), 1);                 /* n3.2 stepped down, n2 leads alone */
  CHECK(stat_of(&f, 1).last_index > n3_last); /* with n3.2's entries */
  SAFE(&f);
  fx_close(&f);
  return 0;
}

static int t_incarnation_next(void) {
  CHECK_EQ(mq_raft_incarnation_next(0, 0), 1);
  CHECK_EQ(mq_raft_incarnation_next(7, 0), 8);
  CHECK_EQ(mq_raft_incarnation_next(7, 1000), 1000);
  CHECK(mq_raft_node_key("node-1") != mq_raft_node_key("node-2"));
  CHECK_EQ(mq_raft_node_key("node-1"), mq_raft_node_key("node-1"));
  return 0;
}

/* ---- snapshots, faults, flow control ------------------------------------ */

/* Elects n1 and commits 60 entries n3 does not hear, so that the log
 * compacts past it, then heals: n3 can catch up only from a snapshot. */
static int left_behind_snapshot(struct fx *f) {
  CHECK(elect(f, 0));
  fx_isolate(f, 2);
  f->cut[0][1] = f->cut[1][0] = false;
  CHECK_EQ(propose_n(f, 0, 60), 60);
  fx_deliver_all(f);
  fx_heal(f);
  return 0;
}

static int t_snapshot_chunks_under_loss(void) {
  struct mq_raft_options o = opts();
  o.snapshot_entries = 5;
  o.snapshot_chunk = 9;
  struct fx f;
  fx_init(&f, 19, 3, 0, &o);
  CHECK(left_behind_snapshot(&f) == 0);
  f.loss_pm = 300;
  f.dup_pm = 200;
  f.max_delay = 3;
  for (int t = 0; t < 200; t++) {
    fx_tick(&f);
    fx_deliver_due(&f);
  }
  f.loss_pm = f.dup_pm = 0;
  for (int t = 0; t < 50; t++) {
    fx_tick(&f);
    fx_deliver_due(&f);
  }
  CHECK(f.n_snap_installs >= 1);
  CHECK_EQ(f.nodes[2].applied, f.nodes[0].applied);
  CHECK_EQ(f.nodes[2].hash, f.nodes[0].hash);
  SAFE(&f);
  fx_close(&f);
  return 0;
}

/* A chunk resent on a heartbeat (in case the first was lost) is answered
 * too; answers may only move the window of chunks in flight, or every
 * resend would stay in flight for good and the snapshot would move many
 * times over. Answers here take several heartbeats (in order, as on a
 * peer stream); a chunk is resent only after two without an answer. */
static int t_snapshot_sent_about_once(void) {
  struct mq_raft_options o = opts();
  o.snapshot_entries = 5;
  o.snapshot_chunk = 2;
  o.heartbeat_ticks = 1;
  struct fx f;
  fx_init(&f, 23, 3, 0, &o);
  CHECK(left_behind_snapshot(&f) == 0);
  f.snap_bytes_sent = 0;
  f.max_delay = 4;
  f.fifo = true;
  for (int t = 0; t < 400 && !f.n_snap_installs; t++) {
    fx_tick(&f);
    fx_deliver_due(&f);
  }
  CHECK(f.n_snap_installs >= 1);
  fprintf(stderr, "  snapshot of %llu bytes: %llu chunk bytes sent\n",
          (unsigned long long)f.snap_total, (unsigned long long)f.snap_bytes_sent);
  CHECK(f.snap_total > 0 && f.snap_bytes_sent <= 3 * f.snap_total);
  SAFE(&f);
  fx_close(&f);
  return 0;
}

/* Writes go on while a follower takes the snapshot in chunks: the log
 * compacts every few entries, and compacting replaces the snapshot being
 * sent, so the leader holds compaction until the transfer ends. Without
 * that the transfer starts over each time and never lands. */
static int t_snapshot_lands_under_writes(void) {
  struct mq_raft_options o = opts();
  o.snapshot_entries = 8;
  o.lazy_snapshots = true;
  o.snapshot_chunk = 2;
  o.heartbeat_ticks = 1;
  struct fx f;
  fx_init(&f, 29, 3, 0, &o);
  CHECK(left_behind_snapshot(&f) == 0);
  f.snap_bytes_sent = 0;
  f.max_delay = 2;
  f.fifo = true;
  for (int t = 0; t < 300 && !f.n_snap_installs; t++) {
    CHECK_EQ(propose_n(&f, 0, 1), 1);
    fx_tick(&f);
    fx_deliver_due(&f);
  }
  fprintf(stderr, "  under writes: %llu installs, %llu chunk bytes sent for %llu\n",
          (unsigned long long)f.n_snap_installs, (unsigned long long)f.snap_bytes_sent,
          (unsigned long long)f.snap_total);
  CHECK(f.n_snap_installs >= 1);
  CHECK(f.snap_bytes_sent <= 5 * f.snap_total);
  SAFE(&f);
  fx_close(&f);
  return 0;
}

/* Chunks in flight: on a link where every message takes a few ticks, a
 * window of four chunks lands the snapshot in a fraction of the ticks one
 * chunk per round trip takes, and sends no more bytes for it. */
static int snapshot_ticks(uint32_t window, uint64_t *ticks, uint64_t *bytes) {
  struct mq_raft_options o = opts();
  o.snapshot_entries = 5;
  o.snapshot_chunk = 2;
  o.snapshot_window = window;
  o.election_ticks = 40; /* round trips of several ticks elect no one */
  o.heartbeat_ticks = 4;
  struct fx f;
  fx_init(&f, 31, 3, 0, &o);
  CHECK(left_behind_snapshot(&f) == 0);
  f.snap_bytes_sent = 0;
  f.fifo = true;
  f.max_delay = 3;
  uint64_t t = 0;
  for (; t < 2000 && !f.n_snap_installs; t++) {
    fx_tick(&f);
    fx_deliver_due(&f);
  }
  CHECK(f.n_snap_installs >= 1);
  CHECK(f.snap_total > 0 && f.snap_bytes_sent <= 2 * f.snap_total);
  *ticks = t;
  *bytes = f.snap_bytes_sent;
  fprintf(stderr, "  window %u: %llu ticks, %llu chunk bytes for %llu\n", window,
          (unsigned long long)t, (unsigned long long)f.snap_bytes_sent,
          (unsigned long long)f.snap_total);
  SAFE(&f);
  fx_close(&f);
  return 0;
}

static int t_snapshot_window_saves_round_trips(void) {
  uint64_t t1, b1, t4, b4;
  CHECK(snapshot_ticks(1, &t1, &b1) == 0);
  CHECK(snapshot_ticks(4, &t4, &b4) == 0);
  CHECK(t4 * 2 < t1);
  return 0;
}

static int t_flow_control(void) {
  struct mq_raft_options o = opts();
  o.max_inflight = 3;
  o.max_msg_bytes = 40; /* one 16-byte entry (plus header) per append */
  struct fx f;
  fx_init(&f, 20, 3, 0, &o);
  CHECK(elect(&f, 0));
  f.cut[2][0] = true; /* n3 hears, but its answers are lost */
  CHECK_EQ(propose_n(&f, 0, 1), 1);
  fx_deliver_all(&f); /* n3 now replicating with a full pipe ahead */
  CHECK_EQ(propose_n(&f, 0, 20), 20);
  fx_process(&f, 0);
  CHECK(queued(&f, 0, 2, MQ_RAFT_MSG_APP) <= 3);
  CHECK(queued(&f, 0, 1, MQ_RAFT_MSG_APP) <= 3);
  fx_deliver_all(&f);
  f.cut[2][0] = false;
  for (int t = 0; t < 30; t++) {
    fx_tick(&f);
    fx_deliver_all(&f);
  }
  CHECK(all_applied(&f, fx_commit(&f, 0)));
  CHECK_EQ(fx_commit(&f, 0), stat_of(&f, 0).last_index);
  SAFE(&f);
  fx_close(&f);
  return 0;
}

static int t_chaos_converges(void) {
  struct mq_raft_options o = opts();
  o.snapshot_entries = 7;
  struct fx f;
  fx_init(&f, 21, 5, 0, &o);
  f.loss_pm = 200;
  f.dup_pm = 100;
  f.max_delay = 4;
  for (int t = 0; t < 1500; t++) {
    fx_tick(&f);
    fx_deliver_due(&f);
    int l = fx_leader(&f);
    if (l >= 0) fx_propose(&f, l, NULL);
    if (t % 100 == 0) fx_isolate(&f, (int)(fx_rand(&f) % 5));
    if (t % 100 == 50) fx_heal(&f);
  }
  fx_heal(&f);
  f.loss_pm = f.dup_pm = 0;
  for (int t = 0; t < 100; t++) {
    fx_tick(&f);
    fx_deliver_due(&f);
  }
  int l = fx_leader(&f);
  CHECK(l >= 0);
  CHECK(all_applied(&f, fx_commit(&f, l)));
  for (int i = 0; i < 5; i++) CHECK_EQ(f.nodes[i].hash, f.nodes[l].hash);
  SAFE(&f);
  fx_close(&f);
  return 0;
}

/* ---- codec and host ----------------------------------------------------- */

static int t_codec_roundtrip_and_garbage(void) {
  uint8_t d1[3] = {1, 2, 3};
  struct mq_raft_entry e[2] = {{5, 11, MQ_RAFT_ENTRY_NORMAL, 3, d1},
                               {6, 12, MQ_RAFT_ENTRY_NOOP, 0, NULL}};
  struct mq_raft_msg m = {0};
  m.group = 9;
  m.type = MQ_RAFT_MSG_APP;
  m.from = (struct mq_raft_member){0xabcdef, 3};
  m.to = (struct mq_raft_member){0x123456, 4};
  m.term = 6;
  m.index = 10;
  m.log_term = 5;
  m.commit = 9;
  m.entries = e;
  m.n_entries = 2;
  struct mq_buf b;
  mq_buf_init(&b);
  mq_raft_msg_encode(&b, &m);
  struct mq_reader rd;
  mq_reader_init(&rd, b.data, b.len);
  struct mq_raft_msg out;
  struct mq_raft_entry *ents = NULL;
  size_t cap = 0;
  CHECK_EQ(mq_raft_msg_decode(&rd, &out, &ents, &cap), 0);
  CHECK_EQ(out.n_entries, 2);
  CHECK_EQ(out.entries[1].index, 12);
  CHECK_EQ(out.entries[0].len, 3);
  CHECK(!memcmp(out.entries[0].data, d1, 3));
  CHECK_EQ(out.from.node, 0xabcdef);
  CHECK_EQ(out.to.inc, 4);
  /* every truncation and random bytes: an error, never a crash */
  for (size_t n = 0; n < b.len; n++) {
    mq_reader_init(&rd, b.data, n);
    CHECK(mq_raft_msg_decode(&rd, &out, &ents, &cap) != 0);
  }
  struct fx f;
  fx_init(&f, 22, 1, 0, NULL);
  struct mq_raft_host h;
  mq_raft_host_init(&h, 1);
  uint8_t junk[256];
  for (int k = 0; k < 20000; k++) {
    size_t n = (size_t)(fx_rand(&f) % sizeof(junk));
    for (size_t x = 0; x < n; x++) junk[x] = (uint8_t)fx_rand(&f);
    if (n > 0 && k % 2) junk[0] = 1;
    mq_reader_init(&rd, junk, n);
    (void)mq_raft_msg_decode(&rd, &out, &ents, &cap);
    (void)mq_raft_host_receive(&h, junk, n);
    if (n > 17) { /* and well-formed headers with hostile fields, stepped */
      mq_reader_init(&rd, junk, n);
      if (mq_raft_msg_decode(&rd, &out, &ents, &cap) == 0) {
        out.to = f.nodes[0].id;
        out.group = 1;
        (void)mq_raft_step(f.nodes[0].r, &out);
        fx_process(&f, 0);
      }
    }
  }
  mq_raft_host_close(&h);
  fx_close(&f);
  free(ents);
  mq_buf_close(&b);
  return 0;
}

static int t_host_multi_group(void) {
  enum {
    N = 3,
    G = 4
  };
  struct mq_raft_host h[N];
  struct mq_raft_conf c = {0};
  for (int i = 0; i < N; i++) {
    c.m[i].id = (struct mq_raft_member){(uint64_t)i + 1, 1};
    c.m[i].role = MQ_RAFT_VOTER;
  }
  c.n = N;
  for (int i = 0; i < N; i++) {
    mq_raft_host_init(&h[i], (uint64_t)i + 1);
    for (int g = 0; g < G; g++) {
      struct mq_raft_options o = opts();
      o.group = (uint64_t)g + 100;
      o.self = c.m[i].id;
      o.seed = (uint64_t)(i * 10 + g + 1);
      CHECK_EQ(mq_raft_host_add(&h[i], &o, &c, NULL), 0);
    }
  }
  CHECK_EQ(mq_raft_host_add(&h[0],
                            &(struct mq_raft_options){.group = 100,
                                                      .self = c.m[0].id,
                                                      .election_ticks = 10,
                                                      .heartbeat_ticks = 1,
                                                      .max_inflight = 4,
                                                      .snapshot_chunk = 8,
                                                      .max_msg_bytes = 64},
                            &c, NULL),
           MQ_EEXIST);
  uint64_t applied[N][G] = {{0}};
  int max_frames = 0;
  for (int loop = 0; loop < 400; loop++) {
    for (int i = 0; i < N; i++) mq_raft_host_tick(&h[i]);
    for (int round = 0; round < 4; round++) {
      for (int i = 0; i < N; i++) {
        for (size_t g = 0; g < mq_raft_host_count(&h[i]); g++) {
          struct mq_raft *r = mq_raft_host_at(&h[i], g);
          struct mq_raft_status st;
          mq_raft_status(r, &st);
          if (st.role == MQ_RAFT_LEADER && loop > 100 && loop % 10 == 0 && round == 0)
            mq_raft_propose(r, "sixteen bytes!!", 16, NULL, NULL);
          while (mq_raft_has_ready(r)) {
            struct mq_raft_ready rd;
            mq_raft_ready(r, &rd);
            CHECK_EQ(mq_raft_host_send(&h[i], &rd), 0);
            if (rd.n_committed) applied[i][g] = rd.committed[rd.n_committed - 1].index;
            mq_raft_advance(r, &rd);
          }
        }
        int frames = (int)mq_raft_host_batches(&h[i]);
        if (frames > max_frames) max_frames = frames;
        for (int k = 0; k < frames; k++) {
          uint64_t node;
          const uint8_t *p;
          size_t len;
          mq_raft_host_batch(&h[i], (size_t)k, &node, &p, &len);
          CHECK(node >= 1 && node <= N && node != (uint64_t)i + 1);
          CHECK_EQ(mq_raft_host_receive(&h[node - 1], p, len), 0);
        }
        mq_raft_host_batches_clear(&h[i]);
      }
    }
  }
  CHECK(max_frames <= N - 1); /* one frame per peer per loop, all groups in it */
  for (int g = 0; g < G; g++) {
    int leaders = 0;
    for (int i = 0; i < N; i++) {
      struct mq_raft_status st;
      mq_raft_status(mq_raft_host_at(&h[i], (size_t)g), &st);
      leaders += st.role == MQ_RAFT_LEADER;
      CHECK(applied[i][g] > 10);
      CHECK_EQ(applied[i][g], applied[0][g]);
    }
    CHECK_EQ(leaders, 1);
  }
  uint64_t key;
  CHECK_EQ(mq_raft_host_name_node(&h[0], "node-1", &key), 0);
  CHECK_EQ(key, mq_raft_node_key("node-1"));
  CHECK(!strcmp(mq_raft_host_node_name(&h[0], key), "node-1"));
  CHECK_EQ(mq_raft_host_remove(&h[0], 100), 0);
  CHECK_EQ(mq_raft_host_remove(&h[0], 100), MQ_ENOTFOUND);
  for (int i = 0; i < N; i++) mq_raft_host_close(&h[i]);
  return 0;
}

/* ---- runner ------------------------------------------------------------- */

static const struct {
  const char *name;
  int (*fn)(void);
} tests[] = {
    {"initial_election", t_initial_election},
    {"election_by_timeout", t_election_by_timeout},
    {"replicate_and_batch", t_replicate_and_batch},
    {"lazy_commit", t_lazy_commit},
    {"prevote_no_term_inflation", t_prevote_no_term_inflation},
    {"check_quorum_step_down", t_check_quorum_step_down},
    {"partitioned_old_leader", t_partitioned_old_leader},
    {"figure7_conflicting_logs", t_figure7_conflicting_logs},
    {"figure8", t_figure8},
    {"leader_transfer", t_leader_transfer},
    {"transfer_times_out", t_transfer_times_out},
    {"read_index", t_read_index},
    {"read_index_waits_for_term_commit", t_read_index_waits_for_term_commit},
    {"read_index_across_leader_change", t_read_index_across_leader_change},
    {"membership_rules", t_membership_rules},
    {"learner_catch_up", t_learner_catch_up},
    {"remove_leader", t_remove_leader},
    {"removed_member_hears_from_learner", t_removed_member_hears_from_learner},
    {"restart_new_incarnation_behind_snapshot", t_restart_new_incarnation_behind_snapshot},
    {"old_incarnation_never_votes", t_old_incarnation_never_votes},
    {"removed_member_hears_from_new_incarnations", t_removed_member_hears_from_new_incarnations},
    {"replacement_removes_old_first", t_replacement_removes_old_first},
    {"leader_dies_between_remove_and_promote", t_leader_dies_between_remove_and_promote},
    {"leader_dies_before_survivor_learns_removal", t_leader_dies_before_survivor_learns_removal},
    {"five_voters_wait_for_an_operator", t_five_voters_wait_for_an_operator},
    {"leader_dies_between_promote_and_remove", t_leader_dies_between_promote_and_remove},
    {"second_restart_during_replacement", t_second_restart_during_replacement},
    {"restart_during_replacement", t_restart_during_replacement},
    {"recovery_needs_every_survivor", t_recovery_needs_every_survivor},
    {"incarnation_next", t_incarnation_next},
    {"snapshot_chunks_under_loss", t_snapshot_chunks_under_loss},
    {"snapshot_sent_about_once", t_snapshot_sent_about_once},
    {"snapshot_lands_under_writes", t_snapshot_lands_under_writes},
    {"snapshot_window_saves_round_trips", t_snapshot_window_saves_round_trips},
    {"flow_control", t_flow_control},
    {"chaos_converges", t_chaos_converges},
    {"codec_roundtrip_and_garbage", t_codec_roundtrip_and_garbage},
    {"host_multi_group", t_host_multi_group},
};

int main(int argc, char **argv) {
  int run = 0;
  for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
    if (argc > 1 && !strstr(tests[i].name, argv[1])) continue;
    current = tests[i].name;
    run++;
    int rc = tests[i].fn();
    printf("%s %s\n", rc ? "FAIL" : "ok  ", tests[i].name);
    failures += rc != 0;
  }
  printf("%d/%d scenario tests passed\n", run - failures, run);
  return failures ? 1 : 0;
}
