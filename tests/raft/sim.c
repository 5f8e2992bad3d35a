/* raft-sim: the deterministic Raft simulator. One seed drives everything:
 * cluster size and options, network faults (loss, delay, duplication,
 * reordering, isolation of one node, splits, one-way cuts), crashes with
 * amnesia and restarts under a new incarnation, membership changes (the
 * replacement of crashed members, removal of the leader itself, leadership
 * transfer), client proposals and ReadIndex reads. The checker in
 * fixture.c runs after every event. After the last step the faults heal and
 * a leader must appear and every live replica converge within a bound.
 *
 * Half the seeds also lose majorities for good: there, a member is only
 * removed once its node restarted (its old incarnation is then provably
 * gone), gone members are removed before anything else (as the agent's
 * reconciliation does), nodes crash whenever every group view stays either
 * electable or losslessly recoverable — also right after a membership
 * change, the worst moment — and a group left without a possible majority
 * is rebuilt from its survivors with mq_raft_recover() when
 * mq_raft_recovery_lossless() allows it. The checker must then still find
 * every committed entry, one leader per term, and convergence after
 * healing.
 *
 *   raft-sim --seeds 1-2000 [--steps N] [--jobs J] [--keep-going] [--verbose]
 *
 * Seeds run in J forked workers (default: one per CPU); a worker stops at
 * its first failing seed, and --jobs 1 reports the lowest failing seed.
 * Exits 0 only if every seed passes; on failure prints the seed, the broken
 * invariant and the last events. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fixture.h"
#include "util/err.h"

#define DEFAULT_STEPS 6000
/* After healing: ticks within which one leader must lead every live node
 * and all of them must have applied the same, complete log. */
#define CONVERGE_TICKS 300

struct totals {
  uint64_t elections, applied, reads, installs, changes, crashes, recoveries, recovered,
      recovery_seeds;
  int max_converge; /* most ticks any seed needed to converge after healing */
};

static bool chance(struct fx *f, unsigned one_in) { return fx_rand(f) % one_in == 0; }

static bool member_live(const struct fx *f, struct mq_raft_member m) {
  if (m.node < 1 || m.node > (uint64_t)f->n) return false;
  const struct fx_node *n = &f->nodes[m.node - 1];
  return n->alive && n->id.inc == m.inc;
}

/* Crashing is allowed only while no configuration anywhere holds a lost
 * member and each has at least three voters: at most one member's memory
 * is ever lost at a time, which a quorum survives. */
static bool may_crash(const struct fx *f) {
  for (int i = 0; i < f->n; i++) {
    if (!f->nodes[i].alive) return false;
    struct mq_raft_status st;
    mq_raft_status(f->nodes[i].r, &st);
    int voters = 0;
    for (uint32_t k = 0; k < st.conf.n; k++) {
      if (!member_live(f, st.conf.m[k].id)) return false;
      voters += st.conf.m[k].role == MQ_RAFT_VOTER;
    }
    if (st.conf.n && voters < 3) return false;
  }
  return true;
}

/* A member is gone once its node runs under a newer incarnation (what an
 * agent learns from the restarted node's handshake); a node that is down
 * and not yet back is not known to be gone. */
static bool member_gone(const struct fx *f, struct mq_raft_member m) {
  return m.node >= 1 && m.node <= (uint64_t)f->n && f->nodes[m.node - 1].id.inc != m.inc;
}

/* The plan of a seed that loses majorities (see the top of this file). */
struct run {
  bool recovery;
  uint32_t keep; /* never remove a live voter from this many voters or fewer */
  uint64_t leaderless_since[FX_MAX_NODES]; /* 0: knows a leader */
  uint64_t rec_term[FX_MAX_NODES];         /* term of the last recovery attempt */
  uint64_t kill_leader_at;
};

/* The gone members among those a recovery by node i depends on, as the
 * host computes them, with node `victim` (or -1) counted as gone too.
 * Returns how many, or -1 when one of them is down but not gone (it may
 * hold the only copy of an entry: nobody recovers without it) — unless
 * `down_gone` says to count down nodes as gone (they will come back as new
 * incarnations). */
static int gone_members(const struct fx *f, int i, int victim, bool down_gone,
                        struct mq_raft_member *gone) {
  struct mq_raft_member ms[MQ_RAFT_MAX_MEMBERS];
  size_t n = mq_raft_recovery_members(f->nodes[i].r, ms, MQ_RAFT_MAX_MEMBERS);
  int k = 0;
  for (size_t j = 0; j < n; j++) {
    const struct fx_node *node = &f->nodes[ms[j].node - 1];
    bool g = member_gone(f, ms[j]) || (int)ms[j].node - 1 == victim;
    if (!g && !node->alive) {
      if (!down_gone) return -1;
      g = true;
    }
    if (g) gone[k++] = ms[j];
  }
  return k;
}

/* A majority of c's voters neither gone nor down? */
static bool electable(const struct fx *f, const struct mq_raft_conf *c,
                      const struct mq_raft_member *gone, int n_gone) {
  uint32_t v = 0, live = 0;
  for (uint32_t k = 0; k < c->n; k++) {
    if (c->m[k].role != MQ_RAFT_VOTER) continue;
    v++;
    bool g = false;
    for (int j = 0; j < n_gone; j++) g |= mq_raft_member_eq(gone[j], c->m[k].id);
    live += !g && f->nodes[c->m[k].id.node - 1].alive;
  }
  return live >= v / 2 + 1;
}

/* Recovery seeds: may `victim` crash now? Yes while every live node's view
 * of its group stays electable or losslessly recoverable once the victim
 * and every node that is down count as gone. */
static bool may_crash_rec(const struct fx *f, const struct run *run, int victim) {
  int others = 0;
  for (int i = 0; i < f->n; i++) {
    if (!f->nodes[i].alive || i == victim) continue;
    others++;
    struct mq_raft_status st;
    mq_raft_status(f->nodes[i].r, &st);
    struct mq_raft_member gone[MQ_RAFT_MAX_MEMBERS];
    int g = gone_members(f, i, victim, true, gone);
    if (!electable(f, &st.conf, gone, g) &&
        !mq_raft_recovery_lossless(f->nodes[i].r, gone, (size_t)g, run->keep))
      return false;
  }
  return others > 0;
}

/* Recovery seeds: a node that has known no leader for a while rebuilds its
 * group if no majority can form and no committed entry can be lost. */
static void recovery_step(struct fx *f, struct run *run, struct totals *t) {
  for (int i = 0; i < f->n; i++) {
    if (!f->nodes[i].alive) continue;
    struct mq_raft_status st;
    mq_raft_status(f->nodes[i].r, &st);
    if (st.leader.node || st.role == MQ_RAFT_LEADER) {
      run->leaderless_since[i] = 0;
      continue;
    }
    if (!run->leaderless_since[i]) run->leaderless_since[i] = f->now;
    if (f->now - run->leaderless_since[i] < 3 * f->opt.election_ticks || !chance(f, 8) ||
        st.role == MQ_RAFT_CANDIDATE)
      continue;
    struct mq_raft_member gone[MQ_RAFT_MAX_MEMBERS];
    int g = gone_members(f, i, -1, false, gone);
    if (g <= 0 || electable(f, &st.conf, gone, g) ||
        !mq_raft_recovery_lossless(f->nodes[i].r, gone, (size_t)g, run->keep))
      continue;
    if (mq_raft_recover(f->nodes[i].r, gone, (size_t)g) == 0) {
      run->rec_term[i] = st.term + 1;
      fx_note(f, "n%d.%llu recovers its group (last %llu term %llu)", i + 1,
              (unsigned long long)st.self.inc, (unsigned long long)st.last_index,
              (unsigned long long)mq_raft_term_at(f->nodes[i].r, st.last_index));
      t->recoveries++;
      fx_process(f, i);
    }
  }
}

/* Recovery seeds: gone members leave first, then live nodes join as
 * learners, then caught-up learners are promoted — the agent's order, so a
 * configuration never holds an old and a new incarnation as voters. */
static int membership_step_rec(struct fx *f, struct run *run, struct totals *t) {
  int l = fx_leader(f);
  if (l < 0) return 0;
  struct mq_raft_status st;
  mq_raft_status(f->nodes[l].r, &st);
  for (uint32_t k = 0; k < st.conf.n; k++)
    if (member_gone(f, st.conf.m[k].id))
      if (fx_change(f, l, MQ_RAFT_REMOVE, st.conf.m[k].id) == 0) {
        if (chance(f, 3)) run->kill_leader_at = f->now + fx_rand(f) % 8;
        return t->changes++, 1;
      }
  for (int i = 0; i < f->n; i++)
    if (f->nodes[i].alive && mq_raft_conf_find(&st.conf, f->nodes[i].id) < 0)
      if (fx_change(f, l, MQ_RAFT_ADD_LEARNER, f->nodes[i].id) == 0) return t->changes++, 1;
  for (uint32_t k = 0; k < st.conf.n; k++)
    if (st.conf.m[k].role == MQ_RAFT_LEARNER && member_live(f, st.conf.m[k].id))
      if (fx_change(f, l, MQ_RAFT_PROMOTE, st.conf.m[k].id) == 0) {
        if (chance(f, 4)) run->kill_leader_at = f->now + fx_rand(f) % 8;
        return t->changes++, 1;
      }
  return 0;
}

/* The control plane: replace lost members (learner, promote, remove the
 * old identity) and bring back members that were removed. */
static int membership_step(struct fx *f, struct run *run, struct totals *t) {
  if (run->recovery) return membership_step_rec(f, run, t);
  int l = fx_leader(f);
  if (l < 0) return 0;
  struct mq_raft_status st;
  mq_raft_status(f->nodes[l].r, &st);
  for (uint32_t k = 0; k < st.conf.n; k++)
    if (st.conf.m[k].role == MQ_RAFT_LEARNER && member_live(f, st.conf.m[k].id))
      if (fx_change(f, l, MQ_RAFT_PROMOTE, st.conf.m[k].id) == 0) return t->changes++, 1;
  for (int i = 0; i < f->n; i++)
    if (f->nodes[i].alive && mq_raft_conf_find(&st.conf, f->nodes[i].id) < 0)
      if (fx_change(f, l, MQ_RAFT_ADD_LEARNER, f->nodes[i].id) == 0) return t->changes++, 1;
  for (uint32_t k = 0; k < st.conf.n; k++)
    if (!member_live(f, st.conf.m[k].id))
      if (fx_change(f, l, MQ_RAFT_REMOVE, st.conf.m[k].id) == 0) return t->changes++, 1;
  return 0;
}

static void chaos(struct fx *f) {
  unsigned kind = (unsigned)(fx_rand(f) % 100);
  int a = (int)(fx_rand(f) % (uint64_t)f->n), b = (int)(fx_rand(f) % (uint64_t)f->n);
  if (kind < 35) {
    fx_heal(f);
    f->loss_pm = f->dup_pm = 0;
  } else if (kind < 55) {
    fx_isolate(f, a);
  } else if (kind < 70) { /* split into two sides */
    uint64_t side = fx_rand(f);
    for (int i = 0; i < f->n; i++)
      for (int j = 0; j < f->n; j++) f->cut[i][j] = ((side >> i) & 1) != ((side >> j) & 1);
    fx_note(f, "split %llx", (unsigned long long)(side & 0x7f));
  } else if (kind < 85) {
    if (a != b) {
      f->cut[a][b] = true;
      fx_note(f, "cut n%d -> n%d (one way)", a + 1, b + 1);
    }
  } else {
    f->loss_pm = (unsigned)(fx_rand(f) % 300);
    f->dup_pm = (unsigned)(fx_rand(f) % 100);
    f->max_delay = (unsigned)(fx_rand(f) % 5);
    fx_note(f, "flaky: loss %u%% dup %u%% delay <= %u", f->loss_pm / 10, f->dup_pm / 10,
            f->max_delay);
  }
}

/* May the leader remove member m? Recovery seeds keep the policy that
 * mq_raft_recovery_lossless() relies on. */
static bool may_remove(const struct fx *f, const struct run *run, const struct mq_raft_conf *c,
                       uint32_t k) {
  if (!run->recovery || c->m[k].role != MQ_RAFT_VOTER || member_gone(f, c->m[k].id)) return true;
  uint32_t v = 0;
  for (uint32_t i = 0; i < c->n; i++) v += c->m[i].role == MQ_RAFT_VOTER;
  return v > run->keep;
}

static void client(struct fx *f, struct run *run, struct totals *t) {
  int l = fx_leader(f);
  int any = (int)(fx_rand(f) % (uint64_t)f->n);
  if (chance(f, 2)) {
    int k = 1 + (int)(fx_rand(f) % 3);
    for (int i = 0; i < k; i++) fx_propose(f, chance(f, 4) || l < 0 ? any : l, NULL);
  }
  if (chance(f, 4)) fx_read(f, chance(f, 4) || l < 0 ? any : l, NULL);
  if (l >= 0 && chance(f, 300)) { /* leadership transfer to a random voter */
    struct mq_raft_status st;
    mq_raft_status(f->nodes[l].r, &st);
    if (st.conf.n) {
      uint32_t k = (uint32_t)(fx_rand(f) % st.conf.n);
      if (mq_raft_transfer_leadership(f->nodes[l].r, st.conf.m[k].id) == 0)
        fx_note(f, "n%d transfers leadership to n%llu", l + 1,
                (unsigned long long)st.conf.m[k].id.node);
    }
  }
  if (l >= 0 && chance(f, 500) && may_crash(f)) { /* the leader removes itself */
    struct mq_raft_status st;
    mq_raft_status(f->nodes[l].r, &st);
    int k = mq_raft_conf_find(&st.conf, f->nodes[l].id);
    if (k >= 0 && may_remove(f, run, &st.conf, (uint32_t)k))
      fx_change(f, l, MQ_RAFT_REMOVE, f->nodes[l].id);
  }
  if (l >= 0 && chance(f, 200) && may_crash(f)) { /* churn: remove any member */
    struct mq_raft_status st;
    mq_raft_status(f->nodes[l].r, &st);
    uint32_t k = st.conf.n ? (uint32_t)(fx_rand(f) % st.conf.n) : 0;
    if (st.conf.n && may_remove(f, run, &st.conf, k))
      fx_change(f, l, MQ_RAFT_REMOVE, st.conf.m[k].id);
  }
  (void)t;
}

static bool converged(struct fx *f, void *arg) {
  (void)arg;
  int l = fx_leader(f);
  if (l < 0) return false;
  struct mq_raft_status st;
  mq_raft_status(f->nodes[l].r, &st);
  if (mq_raft_term_at(f->nodes[l].r, st.commit) != st.term || st.commit != st.last_index)
    return false;
  for (uint32_t k = 0; k < st.conf.n; k++)
    if (!member_live(f, st.conf.m[k].id) || st.conf.m[k].role != MQ_RAFT_VOTER) return false;
  for (int i = 0; i < f->n; i++) {
    const struct fx_node *n = &f->nodes[i];
    if (!n->alive) return false;
    if (mq_raft_conf_find(&st.conf, n->id) < 0) return false;
    struct mq_raft_status s2;
    mq_raft_status(n->r, &s2);
    if (n->applied != st.commit || s2.commit != st.commit || n->hash != f->nodes[l].hash ||
        !mq_raft_member_eq(s2.leader, st.self))
      return false;
  }
  return true;
}

/* Cut off new leaders at once or soon after they win, often: short reigns
 * leave the partly replicated logs of the Raft paper's figures 7 and 8. */
struct harass {
  int node;
  uint64_t at, heal_at;
  bool churn, off; /* off: only count (after healing) */
  struct totals *t;
  struct run *run;
};

static void on_leader(struct fx *f, int i, void *arg) {
  struct harass *h = arg;
  if (h->run->rec_term[i] && fx_term(f, i) == h->run->rec_term[i]) {
    h->run->rec_term[i] = 0;
    h->t->recovered++; /* a recovery election won */
  }
  if (h->off) return;
  /* a new leader is asked for the next membership change at once, before
   * it has committed anything: it must refuse until it has */
  if (h->churn) membership_step(f, h->run, h->t);
  uint64_t dice = fx_rand(f) % 6;
  if (dice < 2) {
    fx_isolate(f, i);
    h->heal_at = f->now + 10 + fx_rand(f) % 40;
  } else if (dice < 4) {
    h->node = i;
    h->at = f->now + 1 + fx_rand(f) % 3;
  }
}

static int run_seed(uint64_t seed, long steps, bool verbose, struct totals *t) {
  struct fx f;
  struct mq_raft_options o;
  mq_raft_options_default(&o);
  uint64_t r = seed;
  (void)r;
  fx_init(&f, seed, 3, 0, NULL); /* only to draw the plan from the seed */
  uint64_t p1 = fx_rand(&f), p2 = fx_rand(&f), p3 = fx_rand(&f), p4 = fx_rand(&f);
  fx_close(&f);
  int voters = p1 % 3 == 0 ? 5 : 3;
  struct run run = {.recovery = (p1 >> 16) % 2 == 0, .keep = (uint32_t)voters - 1};
  if (run.recovery) t->recovery_seeds++;
  o.election_ticks = 10;
  o.heartbeat_ticks = 1;
  o.snapshot_entries = 2 + p2 % 24;
  o.lazy_snapshots = (p3 >> 24) % 2 == 0; /* half the seeds compact without bytes */
  o.lazy_commit = (p3 >> 32) % 2 == 0;    /* half tell commits only on a tick */
  o.snapshot_chunk = (uint32_t)(8 + p3 % 56);
  o.max_inflight = (uint32_t)(1 + p4 % 16);
  o.max_msg_bytes = 16 + (p4 >> 8) % (p4 % 2 ? 200 : 48);
  o.max_inflight_bytes = 64 + (p3 >> 8) % 2048;
  o.max_uncommitted = 64;
  fx_init(&f, seed, voters, 0, &o);
  f.verbose = verbose;
  f.on_leader = NULL;
  f.max_delay = (unsigned)(p2 >> 8) % 3;
  long step = 0;
  struct harass h = {-1, 0, 0, (p1 >> 8) % 2 == 0, false, t, &run};
  f.on_leader = on_leader;
  f.on_leader_arg = &h;
  for (; step < steps && !f.failed; step++) {
    fx_tick(&f);
    fx_deliver_due(&f);
    if (chance(&f, 150)) chaos(&f);
    uint64_t harass_at = h.at, heal_at = h.heal_at;
    int harass = h.node;
    if (harass >= 0 && f.now >= harass_at) {
      fx_isolate(&f, harass);
      h.node = -1;
      h.heal_at = f.now + 10 + fx_rand(&f) % 40;
    }
    if (heal_at && f.now >= heal_at) {
      fx_heal(&f);
      h.heal_at = 0;
    }
    int victim = -1;
    if (chance(&f, 700)) {
      int i = (int)(fx_rand(&f) % (uint64_t)f.n);
      if (f.nodes[i].alive && (run.recovery ? may_crash_rec(&f, &run, i) : may_crash(&f)))
        victim = i;
    }
    if (run.kill_leader_at && f.now >= run.kill_leader_at) {
      run.kill_leader_at = 0;
      int l = fx_leader(&f);
      if (l >= 0 && may_crash_rec(&f, &run, l)) victim = l;
    }
    if (victim >= 0) {
      fx_crash(&f, victim);
      f.nodes[victim].down_until = f.now + 5 + fx_rand(&f) % 60;
      t->crashes++;
    }
    client(&f, &run, t);
    membership_step(&f, &run, t);
    if (run.recovery) recovery_step(&f, &run, t);
  }
  bool ok = !f.failed;
  if (ok) {
    /* heal everything; a leader must appear and all replicas converge */
    h.off = true;
    fx_heal(&f);
    f.loss_pm = f.dup_pm = 0;
    f.max_delay = 1;
    for (int i = 0; i < f.n; i++)
      if (!f.nodes[i].alive) f.nodes[i].down_until = f.now + 1;
    fx_note(&f, "heal all faults; waiting for convergence");
    bool conv = false;
    for (int k = 0; k < CONVERGE_TICKS && !f.failed && !conv; k++) {
      fx_tick(&f);
      fx_deliver_due(&f);
      membership_step(&f, &run, t);
      if (run.recovery) recovery_step(&f, &run, t);
      int l = fx_leader(&f);
      if (l >= 0 && k % 20 == 0) fx_propose(&f, l, NULL);
      fx_deliver_due(&f);
      conv = converged(&f, NULL);
      if (conv && k + 1 > t->max_converge) t->max_converge = k + 1;
    }
    if (!f.failed && !conv)
      fx_fail(&f, "liveness: no leader with all live replicas converged within %d ticks of healing",
              CONVERGE_TICKS);
    ok = !f.failed;
  }
  if (!ok) {
    printf("FAIL seed=%llu step=%ld invariant: %s\n  last events:\n", (unsigned long long)seed,
           step, f.why);
    fx_print_trace(&f);
    for (int i = 0; i < f.n; i++) {
      if (!f.nodes[i].alive) {
        printf("  n%d: down\n", i + 1);
        continue;
      }
      struct mq_raft_status st;
      mq_raft_status(f.nodes[i].r, &st);
      printf("  n%d.%llu: %s term %llu vote n%llu.%llu commit %llu applied %llu log %llu..%llu "
             "(last term %llu) conf@%llu:",
             i + 1, (unsigned long long)st.self.inc, fx_role_name(st.role),
             (unsigned long long)st.term, (unsigned long long)st.vote.node,
             (unsigned long long)st.vote.inc, (unsigned long long)st.commit,
             (unsigned long long)st.applied, (unsigned long long)st.first_index,
             (unsigned long long)st.last_index,
             (unsigned long long)mq_raft_term_at(f.nodes[i].r, st.last_index),
             (unsigned long long)st.conf_index);
      for (uint32_t k = 0; k < st.conf.n; k++)
        printf(" n%llu.%llu%s", (unsigned long long)st.conf.m[k].id.node,
               (unsigned long long)st.conf.m[k].id.inc,
               st.conf.m[k].role == MQ_RAFT_LEARNER ? "(learner)" : "");
      printf("\n");
    }
    fflush(stdout);
  }
  t->elections += f.n_elections;
  t->applied += f.n_applied;
  t->reads += f.n_reads_ok;
  t->installs += f.n_snap_installs;
  fx_close(&f);
  return ok ? 0 : 1;
}

static bool keep_going;

static int worker(uint64_t lo, uint64_t hi, unsigned job, unsigned jobs, long steps, bool verbose,
                  struct totals *t) {
  int failed = 0;
  for (uint64_t s = lo + job; s <= hi; s += jobs) {
    if (run_seed(s, steps, verbose, t)) {
      failed++;
      if (!keep_going) return 1;
    }
  }
  if (failed) printf("%d seeds failed\n", failed);
  return failed ? 1 : 0;
}

int main(int argc, char **argv) {
  uint64_t lo = 1, hi = 100;
  long steps = DEFAULT_STEPS;
  long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
  unsigned jobs = ncpu > 0 ? (unsigned)ncpu : 1; /* seeds run in parallel */
  bool verbose = false;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--seeds") && i + 1 < argc) {
      unsigned long long a, b;
      int k = sscanf(argv[++i], "%llu-%llu", &a, &b);
      if (k == 1) b = a;
      if (k < 1 || a > b) {
        fprintf(stderr, "bad --seeds %s\n", argv[i]);
        return 2;
      }
      lo = a;
      hi = b;
    } else if (!strcmp(argv[i], "--steps") && i + 1 < argc) {
      steps = atol(argv[++i]);
    } else if (!strcmp(argv[i], "--jobs") && i + 1 < argc) {
      jobs = (unsigned)atoi(argv[++i]);
      if (!jobs) jobs = 1;
    } else if (!strcmp(argv[i], "--keep-going")) {
      keep_going = true;
    } else if (!strcmp(argv[i], "--verbose")) {
      verbose = true;
    } else {
      fprintf(stderr, "usage: %s --seeds A-B [--steps N] [--jobs J] [--keep-going] [--verbose]\n",
              argv[0]);
      return 2;
    }
  }
  struct totals t = {0};
  if (jobs == 1) {
    int rc = worker(lo, hi, 0, 1, steps, verbose, &t);
    if (!rc)
      printf("raft-sim: seeds %llu-%llu passed (%ld steps each): %llu elections, "
             "%llu entries applied, %llu reads, %llu snapshot installs, %llu membership "
             "changes, %llu crashes, %llu recovery elections started and %llu won (in %llu "
             "seeds that lose majorities); "
             "converged at most %d ticks after healing (bound %d)\n",
             (unsigned long long)lo, (unsigned long long)hi, steps, (unsigned long long)t.elections,
             (unsigned long long)t.applied, (unsigned long long)t.reads,
             (unsigned long long)t.installs, (unsigned long long)t.changes,
             (unsigned long long)t.crashes, (unsigned long long)t.recoveries,
             (unsigned long long)t.recovered, (unsigned long long)t.recovery_seeds, t.max_converge,
             CONVERGE_TICKS);
    return rc;
  }
  fflush(stdout);
  pid_t pids[64];
  if (jobs > 64) jobs = 64;
  for (unsigned j = 0; j < jobs; j++) {
    pids[j] = fork();
    if (pids[j] < 0) {
      perror("fork");
      return 2;
    }
    if (pids[j] == 0) _exit(worker(lo, hi, j, jobs, steps, verbose, &t));
  }
  int failed = 0;
  for (unsigned done = 0; done < jobs; done++) {
    int status;
    pid_t p = wait(&status);
    if (p < 0) break;
    for (unsigned j = 0; j < jobs; j++)
      if (pids[j] == p) pids[j] = 0;
    if (!WIFEXITED(status) || WEXITSTATUS(status)) {
      failed = 1;
      for (unsigned j = 0; j < jobs; j++) /* stop our other workers */
        if (pids[j] > 0) kill(pids[j], SIGTERM);
    }
  }
  if (!failed)
    printf("raft-sim: seeds %llu-%llu passed (%ld steps each, %u jobs)\n", (unsigned long long)lo,
           (unsigned long long)hi, steps, jobs);
  return failed;
}
