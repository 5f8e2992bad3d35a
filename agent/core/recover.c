/* Rebuilding a group whose quorum is provably gone.
 *
 * MemQuorum keeps Raft logs in memory only, so a member that restarts comes
 * back under a new incarnation and its old identity never votes again
 * (raft.h). When enough old identities are voters of a group, no majority
 * can ever form and the group would wait forever. Raft itself has no way
 * out; this file adds one, in two parts:
 *
 *   mq_raft_recovery_lossless() decides whether the survivors hold every
 *   committed entry between them. The candidate's log holds every entry up
 *   to the commit index it knows. Later ones were committed under the
 *   configuration in effect there (P), or under a configuration appended
 *   after it — in the candidate's log (up to its latest, C), or one change
 *   beyond a committed one, unseen by any survivor. An entry committed under
 *   a configuration sits on a majority of its voters, so it is on a
 *   survivor if every majority has one: the test runs for P, for every
 *   configuration between P and C, and for each single change the leader
 *   of any of them may have committed next (the core allows one at a time:
 *   promote a learner, remove a member); a configuration two changes beyond
 *   a committed one would need the first committed, by a majority holding
 *   a survivor, which then holds it. What the host's own policy rules out is
 *   passed in: it never removes a voter that is not gone from a
 *   configuration of `keep_voters` voters or fewer. The test of P is left
 *   out where no leader after the one that wrote C can lack C
 *   (first_test_moot).
 *
 *   mq_raft_recover() runs a recovery election: a pre-vote round, then a new
 *   term, and the votes of every survivor of those configurations, learners
 *   included. Each grants only to a candidate whose log is at least as up to
 *   date as its own (§5.4.1) and only once per term, so the winner holds the
 *   most recent log of all survivors, and two recoveries cannot both win a
 *   term. The most up-to-date log holds every committed entry any survivor
 *   holds: a log whose last entry has term U was written by the leader of U,
 *   which held every entry committed before U (leader completeness), and
 *   log matching carries that to the whole prefix. As leader the winner
 *   appends its configuration without the gone members and continues as
 *   usual. A survivor that voted for it will not recover on its own from an
 *   older configuration (it has not seen what the winner committed). */
#include <string.h>

#include "core/core.h"
#include "util/err.h"

/* The configurations a recovery depends on: the one in effect at the
 * commit index this member knows, then each later one in its log. */
#define CHAIN_MAX 8

static int chain(const struct mq_raft *r, struct mq_raft_conf *out) {
  int n = 0;
  raft_conf_at(r, r->commit, &out[n++]);
  uint64_t last = rlog_last(&r->log);
  for (uint64_t i = r->commit + 1; i <= last; i++) {
    const struct mq_raft_entry *e = rlog_at(&r->log, i);
    if (e->type != MQ_RAFT_ENTRY_CONF) continue;
    if (n == CHAIN_MAX) return -1;
    if (mq_raft_conf_decode(&out[n], e->data, e->len)) return -1;
    n++;
  }
  return n;
}

static bool is_gone(struct mq_raft_member m, const struct mq_raft_member *gone,
                    size_t n) {
  for (size_t i = 0; i < n; i++)
    if (mq_raft_member_eq(m, gone[i])) return true;
  return false;
}

/* Every majority of `voters` voters, `g` of them gone, holds a survivor. */
static bool majorities_survive(uint32_t voters, uint32_t g) {
  return voters > 0 && g < voters / 2 + 1;
}

/* The test for one configuration c and the single changes its leader may
 * have committed next without any survivor knowing (see the top). */
static bool conf_lossless(const struct mq_raft_conf *c,
                          const struct mq_raft_member *gone, size_t n_gone,
                          uint32_t keep_voters) {
  bool g[MQ_RAFT_MAX_MEMBERS];
  uint32_t v = 0, gv = 0;
  for (uint32_t i = 0; i < c->n; i++) {
    g[i] = is_gone(c->m[i].id, gone, n_gone);
    if (c->m[i].role != MQ_RAFT_VOTER) continue;
    v++;
    gv += g[i];
  }
  if (!majorities_survive(v, gv)) return false;
  for (uint32_t i = 0; i < c->n; i++) {
    if (c->m[i].role == MQ_RAFT_LEARNER) {
      if (!majorities_survive(v + 1, gv + g[i])) return false; /* promoted */
    } else if (v > 1) {                                        /* removed */
      if (g[i] ? !majorities_survive(v - 1, gv - 1)
               : v > keep_voters && !majorities_survive(v - 1, gv))
        return false;
    }
  }
  return true;
}

/* May the test of P (confs[0], in effect at the commit index we know) be
 * left out? It guards against leaders that never saw our log: another
 * leader, with P, may have committed entries we lack with a majority of P
 * that does not include us. That cannot have happened when the first
 * configuration entry after our commit index, C1, has the term T of the
 * leader we last followed (L, which wrote C1), L and we are voters of P,
 * and P has at most three voters. Then no leader of a term after T lacks
 * C1. Take the first: it was elected by a majority of its configuration,
 * which is P or one change from it (it holds every committed entry, and
 * changes go one at a time), and with at most three voters in P every such
 * majority holds us or L. We held C1 before we could vote in a later term
 * (we took it in T), and L before it could (it wrote it in T), and nothing
 * but a later leader could take it from either log; each grants only to a
 * log at least as up to date, whose last term is then T: a prefix of L's
 * log at least as long, which holds C1. By induction so does every later
 * leader (a log with an entry of a term after T holds C1, got from a
 * leader holding it). So entries after C1 were committed under C1 or a
 * configuration after it, which the remaining tests cover, and committed
 * entries before C1 are in L's log, hence in ours. This is the moment a
 * leader dies right after its removal of a gone member committed, before
 * the survivor heard of the commit. */
static bool first_test_moot(const struct mq_raft *r,
                            const struct mq_raft_conf *p) {
  uint64_t last = rlog_last(&r->log), c1 = 0;
  for (uint64_t i = r->commit + 1; i <= last && !c1; i++)
    if (rlog_at(&r->log, i)->type == MQ_RAFT_ENTRY_CONF) c1 = i;
  if (!c1 || rlog_term(&r->log, c1) != r->heard_term) return false;
  struct mq_raft_member l = r->heard;
  if (!l.node || mq_raft_member_eq(l, r->o.self)) return false;
  uint32_t v = 0;
  bool self = false, leader = false;
  for (uint32_t i = 0; i < p->n; i++) {
    if (p->m[i].role != MQ_RAFT_VOTER) continue;
    v++;
    self |= mq_raft_member_eq(p->m[i].id, r->o.self);
    leader |= mq_raft_member_eq(p->m[i].id, l);
  }
  return v <= 3 && self && leader;
}

/* Adds c's members to set (no duplicates); false when it would overflow. */
static bool add_members(struct mq_raft_conf *set,
                        const struct mq_raft_conf *c) {
  for (uint32_t i = 0; i < c->n; i++) {
    if (mq_raft_conf_find(set, c->m[i].id) >= 0) continue;
    if (set->n == MQ_RAFT_MAX_MEMBERS) return false;
    set->m[set->n].id = c->m[i].id;
    set->m[set->n++].role = c->m[i].role;
  }
  return true;
}

size_t mq_raft_recovery_members(const struct mq_raft *r,
                                struct mq_raft_member *out, size_t max) {
  struct mq_raft_conf confs[CHAIN_MAX], all;
  memset(&all, 0, sizeof all);
  int n = chain(r, confs);
  for (int i = 0; i < n; i++) add_members(&all, &confs[i]);
  size_t k = 0;
  for (uint32_t i = 0; i < all.n && k < max; i++) out[k++] = all.m[i].id;
  return k;
}

bool mq_raft_recovery_lossless(const struct mq_raft *r,
                               const struct mq_raft_member *gone, size_t n_gone,
                               uint32_t keep_voters) {
#if MQ_BUG(6)
  (void)r, (void)gone, (void)n_gone, (void)keep_voters;
  return true; /* planted: rebuild from whatever is left */
#else
  if (is_gone(r->o.self, gone, n_gone)) return false;
  struct mq_raft_conf confs[CHAIN_MAX];
  int n = chain(r, confs);
  if (n < 0) return false;
  for (int i = first_test_moot(r, &confs[0]) ? 1 : 0; i < n; i++)
    if (!conf_lossless(&confs[i], gone, n_gone, keep_voters)) return false;
  return true;
#endif
}

int mq_raft_recover(struct mq_raft *r, const struct mq_raft_member *gone,
                    size_t n_gone) {
  if (r->role == MQ_RAFT_LEADER) return MQ_EPRECOND;
  if (is_gone(r->o.self, gone, n_gone)) return MQ_EINVAL;
  if (r->conf_index < r->rec_fence) return MQ_EPRECOND;
  struct mq_raft_conf confs[CHAIN_MAX], all, voters, next;
  int n = chain(r, confs);
  if (n < 0) return MQ_ENOSPACE;
  memset(&all, 0, sizeof all);
  for (int i = 0; i < n; i++)
    if (!add_members(&all, &confs[i])) return MQ_ENOSPACE;
  /* Who must grant: every survivor of those configurations. */
  memset(&voters, 0, sizeof voters);
  for (uint32_t i = 0; i < all.n; i++)
    if (!is_gone(all.m[i].id, gone, n_gone)) voters.m[voters.n++] = all.m[i];
  /* What to lead: the latest configuration without the gone members, as
   * every survivor holding it would compute it. A survivor that is a
   * learner stays one; this member, if its removal was pending, stays out
   * (it may hold the newest log, which is why it may campaign too, see
   * promotable() in raft.c) and leads as a non-member until it commits. */
  memset(&next, 0, sizeof next);
  uint32_t nv = 0;
  for (uint32_t i = 0; i < r->conf.n; i++) {
    if (is_gone(r->conf.m[i].id, gone, n_gone)) continue;
    nv += r->conf.m[i].role == MQ_RAFT_VOTER;
    next.m[next.n++] = r->conf.m[i];
  }
  if (!nv) return MQ_EINVAL;
  r->rec_next = next;
  r->rec_voters = voters;
  r->recovering = true;
  raft_campaign(r, CAMP_RECOVER);
  return 0;
}

/* A (pre-)vote answer during recovery (m NULL: count our own). Any
 * refusal ends the attempt: a survivor has a more recent log, or still
 * hears a leader. All pre-votes granted: the real election; all votes
 * granted: leadership. */
void raft_recover_poll(struct mq_raft *r, const struct mq_raft_msg *m) {
  if (m) {
    int slot = mq_raft_conf_find(&r->rec_voters, m->from);
    if (slot < 0) return;
    if (m->flags & MQ_RAFT_FLAG_REJECT) {
      static const struct mq_raft_member none;
      raft_become_follower(r, r->term, none);
      return;
    }
    r->rec_granted |= 1u << slot;
  }
  uint32_t all = r->rec_voters.n >= 32 ? ~0u : (1u << r->rec_voters.n) - 1;
  if (r->rec_granted != all) return;
  if (r->role == MQ_RAFT_PRECANDIDATE)
    raft_campaign_recover(r, false);
  else
    raft_become_leader(r);
}

/* Called by raft_become_leader() after its no-op: the new configuration. */
void raft_recover_won(struct mq_raft *r) {
  struct mq_buf b;
  mq_buf_init(&b);
  mq_raft_conf_encode(&b, &r->rec_next);
  if (!b.err) raft_append_entry(r, r->term, MQ_RAFT_ENTRY_CONF, b.data, b.len);
  mq_buf_close(&b);
}
