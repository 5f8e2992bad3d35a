/* Moving each shard's Raft configuration toward its placement, one step at
 * a time, from the shard's leader (DESIGN.md section 6).
 *
 * A step is one membership change the Raft core accepts (one in flight,
 * only after the leader committed in its term), in this order:
 *   1. a member under an old incarnation (an agent that lost its memory and
 *      came back) is removed. It will never vote again, so removing it never
 *      makes a majority harder to reach, and doing it first means no
 *      configuration ever counts the old and the new incarnation as voters
 *      together: four voters of which two are gone would need every other
 *      one to commit, and one more failure would wedge the shard for good;
 *   2. a wanted agent (placement) that is up and not in the configuration
 *      under its current incarnation joins as a learner;
 *   3. a learner that caught up is promoted (the core refuses a learner
 *      behind the commit index; we simply try again next round);
 *   4. only when every wanted agent is a voter: a member placement no
 *      longer wants is removed — a voter only while the configuration has
 *      more voters than the replication factor, the rule a recovery's proof
 *      of losslessness relies on (core/raft.h); if that is this leader, it
 *      hands leadership over first.
 * A member that is merely down is not provably gone: it stays until
 * --replace-dead-after leaves it out of placement, and its replacement is
 * promoted before it is removed.
 *
 * Draining (graceful shutdown): while the agent waits for leaving to be
 * safe, steps go on as usual (its shards may need their new replicas
 * promoted); then it hands every led shard to another voter.
 *
 * Leadership also follows the requests: a leader counts where the requests
 * it runs come from (entered here, or forwarded by which agent), and at the
 * end of each --leader-follow-window hands leadership to the voter that
 * forwarded at least three quarters of them, if there were enough to mean
 * something. An application that talks to its own agent then writes without
 * a forwarding hop; traffic spread over agents moves nothing. A shard moved
 * for load stays put for three windows, so leadership cannot swing. */
#include "cluster/internal.h"
#include "util/log.h"

#include <stdlib.h>
#include <string.h>

#define RECONCILE_EVERY_MS 300
/* Below this many requests per second a shard's traffic says nothing. */
#define FOLLOW_MIN_PER_S 20
/* Learners catching up on one agent at once, from the shards led here: an
 * agent that joins receives its share a few snapshots at a time (a
 * promotion frees its slot within the same round). */
#define MOVES_PER_TARGET 4
/* Leader balancing: how often, and how long a leader keeps a shard before
 * it may be handed over for balance. */
#define BALANCE_EVERY_MS 1000
#define BALANCE_MIN_LED_MS 2000

static const char *op_name(int op) {
  return op == MQ_RAFT_ADD_LEARNER ? "add learner" : op == MQ_RAFT_PROMOTE ? "promote" : "remove";
}

static int change(struct mq_node *n, struct shard *s, int op, struct mq_raft_member m,
                  const char *who) {
  uint64_t index;
  int rc = mq_raft_change_membership(s->raft, op, m, &index);
  if (rc == 0) {
    mq_info("raft", "shard %d: %s %s (incarnation %llu) at index %llu", s->id, op_name(op), who,
            (unsigned long long)m.inc, (unsigned long long)index);
    _Atomic uint64_t *count = op == MQ_RAFT_ADD_LEARNER ? &n->m_moves_started
                              : op == MQ_RAFT_PROMOTE   ? &n->m_moves_finished
                                                        : &n->m_replicas_removed;
    atomic_fetch_add_explicit(count, 1, memory_order_relaxed);
  } else if (rc != MQ_EPRECOND) {
    mq_debug("raft", "shard %d: %s %s: %s", s->id, op_name(op), who, mq_strerror(rc));
  }
  return rc;
}

/* id is this agent, or a member that is up under that incarnation. */
static bool voter_live(struct mq_node *n, struct mq_raft_member id) {
  if (mq_raft_member_eq(id, n->self))
    return true;
  struct member *m = member_by_key(n, id.node);
  return m && m->up && m->inc == id.inc;
}

/* Promoting a learner makes one more voter, and a single-step change
 * passes through RF + 1 voters with a majority of RF / 2 + 2. That is
 * safe only if every voter placement still wants is up: a promotion while
 * one of them is down leaves no failure to spare. A voter that is down and
 * no longer wanted is the one being replaced, and the promotion is its
 * replacement. */
static bool promotion_safe(struct mq_node *n, const struct mq_raft_conf *c,
                           struct member *const *want, size_t k) {
  for (uint32_t i = 0; i < c->n; i++) {
    if (c->m[i].role != MQ_RAFT_VOTER || voter_live(n, c->m[i].id))
      continue;
    for (size_t j = 0; j < k; j++)
      if (want[j]->key == c->m[i].id.node)
        return false;
  }
  return true;
}

/* Another voter of s, up under the incarnation the configuration has and
 * not shutting down itself (two agents draining at once would otherwise
 * hand their shards back and forth until they give up). */
static bool pick_successor(struct mq_node *n, const struct mq_raft_conf *c,
                           struct mq_raft_member *out) {
  for (uint32_t i = 0; i < c->n; i++) {
    if (c->m[i].role != MQ_RAFT_VOTER || mq_raft_member_eq(c->m[i].id, n->self))
      continue;
    struct member *m = member_by_key(n, c->m[i].id.node);
    if (m && m->up && !m->leaving && m->inc == c->m[i].id.inc) {
      *out = c->m[i].id;
      return true;
    }
  }
  return false;
}

static void transfer_to(struct mq_node *n, struct shard *s, struct mq_raft_member to) {
  if (mq_raft_transfer_leadership(s->raft, to) == 0) {
    atomic_fetch_add_explicit(&n->m_handoffs, 1, memory_order_relaxed);
    mq_info("raft", "shard %d: handing leadership to %s", s->id, member_by_key(n, to.node)->id);
  }
}

static void hand_over(struct mq_node *n, struct shard *s, const struct mq_raft_conf *c) {
  struct mq_raft_member to;
  if (pick_successor(n, c, &to))
    transfer_to(n, s, to);
}

/* learners[i]: learners of shards led here that are agent n->members[i]. */
static void reconcile_shard(struct mq_node *n, struct shard *s, int *learners) {
  struct mq_raft_status rs;
  mq_raft_status(s->raft, &rs);
  /* 1. old incarnations leave first */
  for (uint32_t i = 0; i < rs.conf.n; i++) {
    struct mq_raft_member id = rs.conf.m[i].id;
    if (members_is_old(n, id)) {
      change(n, s, MQ_RAFT_REMOVE, id, member_by_key(n, id.node)->id);
      return;
    }
  }
  /* 2. and 3. wanted agents join as learners, then become voters; at most
   * one voter more than the replication factor at any time (placement can
   * change in the middle of a move: promoting then would make RF + 2
   * voters, two of which may be on their way out) */
  struct member *want[8];
  size_t k = members_placement_live(n, s->id, want, 8);
  uint32_t rf = (uint32_t)n->cfg->replication_factor, voters_now = 0;
  for (uint32_t i = 0; i < rs.conf.n; i++)
    voters_now += rs.conf.m[i].role == MQ_RAFT_VOTER;
  bool all_voters = true, excess = false;
  for (size_t j = 0; j < k; j++) {
    struct member *m = want[j];
    if (!m->inc || (!m->self && !m->up)) {
      all_voters = false;
      continue;
    }
    struct mq_raft_member id = {m->key, m->inc};
    int at = mq_raft_conf_find(&rs.conf, id);
    if (at < 0) {
      all_voters = false;
      if (learners && learners[m - n->members] >= MOVES_PER_TARGET)
        continue; /* it is receiving enough replicas already */
      if (change(n, s, MQ_RAFT_ADD_LEARNER, id, m->id) == 0 && learners)
        learners[m - n->members]++;
      return;
    }
    if (rs.conf.m[at].role == MQ_RAFT_LEARNER) {
      if (voters_now > rf) {
        all_voters = false;
        excess = true; /* first remove one placement no longer wants */
        break;
      }
      if (promotion_safe(n, &rs.conf, want, k) && change(n, s, MQ_RAFT_PROMOTE, id, m->id) == 0 &&
          learners && learners[m - n->members] > 0)
        learners[m - n->members]--;
      return;
    }
  }
  if (!all_voters && !excess && !MQ_CLUSTER_BUG(4))
    return;
  /* 4. members placement no longer wants */
  for (uint32_t i = 0; i < rs.conf.n; i++) {
    struct mq_raft_member id = rs.conf.m[i].id;
    bool wanted = false;
    for (size_t j = 0; j < k; j++)
      wanted |= want[j]->key == id.node;
    if (wanted)
      continue;
    if (rs.conf.m[i].role == MQ_RAFT_VOTER && voters_now <= rf && !MQ_CLUSTER_BUG(4))
      continue;
    if (mq_raft_member_eq(id, n->self)) {
      hand_over(n, s, &rs.conf);
      return;
    }
    struct member *m = member_by_key(n, id.node);
    change(n, s, MQ_RAFT_REMOVE, id, m ? m->id : "an unknown agent");
    return;
  }
}

/* Starts a new window of counts for the current leadership. */
static void load_reset(struct shard *s, int64_t now) {
  int64_t moved = s->load.moved_ms;
  memset(&s->load, 0, sizeof s->load);
  s->load.term = s->term;
  s->load.since_ms = now;
  s->load.moved_ms = moved;
}

void reconcile_note_load(struct mq_node *n, struct shard *s, const struct mq_req *r) {
  struct shard_load *l = &s->load;
  if (l->term != s->term || !l->since_ms)
    load_reset(s, n->now_ms);
  if (!r->p_origin) {
    l->local++;
    return;
  }
  for (int i = 0; i < MQ_SHARD_LOAD_SOURCES; i++) {
    if (l->key[i] == r->p_origin || !l->key[i]) {
      l->key[i] = r->p_origin;
      l->count[i]++;
      return;
    }
  }
  l->other++;
}

/* At the end of a window: hands s to the voter that sent most of its
 * requests, when that is most of them. */
static void follow_load(struct mq_node *n, struct shard *s, int64_t now) {
  int64_t window = n->cfg->leader_follow_ms;
  struct shard_load *l = &s->load;
  if (window <= 0 || l->term != s->term || now - l->since_ms < window)
    return;
  uint64_t total = (uint64_t)l->local + l->other, best = 0, best_key = 0, local = l->local;
  for (int i = 0; i < MQ_SHARD_LOAD_SOURCES; i++) {
    total += l->count[i];
    if (l->count[i] > best) {
      best = l->count[i];
      best_key = l->key[i];
    }
  }
  load_reset(s, now);
  bool busy = total * 1000 >= (uint64_t)FOLLOW_MIN_PER_S * (uint64_t)window;
  if (busy && local * 4 >= total * 3)
    s->pinned_until_ms = now + 3 * window; /* its requests come from here */
  if (!best_key || !busy || best * 4 < total * 3 || (l->moved_ms && now - l->moved_ms < 3 * window))
    return;
  struct member *m = member_by_key(n, best_key);
  if (!m || m->self || !m->up || m->leaving)
    return;
  struct mq_raft_status rs;
  mq_raft_status(s->raft, &rs);
  struct mq_raft_member to = {best_key, m->inc};
  int at = mq_raft_conf_find(&rs.conf, to);
  if (at < 0 || rs.conf.m[at].role != MQ_RAFT_VOTER)
    return; /* not a voter (under its current incarnation) */
  if (mq_raft_transfer_leadership(s->raft, to) != 0)
    return;
  l->moved_ms = now;
  atomic_fetch_add_explicit(&n->m_handoffs, 1, memory_order_relaxed);
  mq_info("raft",
          "shard %d: handing leadership to %s, which forwarded %llu of the %llu "
          "requests led here in the last %lld ms",
          s->id, m->id, (unsigned long long)best, (unsigned long long)total, (long long)window);
}

/* While draining: hands every led shard to a successor (again each
 * RECONCILE_EVERY_MS until it goes) and publishes how many led shards still
 * have one, so that the drain stops waiting when none has. */
static void drain_tick(struct mq_node *n, int64_t now) {
  int left = 0;
  for (int i = 0; i < n->n_shards; i++) {
    struct shard *s = &n->shards[i];
    if (!replica_is_leader(s))
      continue;
    bool due = now - s->last_reconcile_ms >= RECONCILE_EVERY_MS;
    if (due)
      s->last_reconcile_ms = now;
    struct mq_raft_status rs;
    struct mq_raft_member to;
    mq_raft_status(s->raft, &rs);
    if (!pick_successor(n, &rs.conf, &to))
      continue;
    left++;
    if (due)
      transfer_to(n, s, to);
  }
  atomic_store(&n->drain_left, left);
}

/* A member that can take a leadership now. */
static bool can_lead(const struct member *m) {
  return m->self || (m->up && m->inc && !m->leaving && !m->foreign);
}

/* Who leads each shard, as far as this agent knows, counted per member. */
static void count_leads(struct mq_node *n, int *leads) {
  for (int i = 0; i < n->n_shards; i++) {
    struct shard *s = &n->shards[i];
    struct member *l = NULL;
    if (replica_is_leader(s))
      l = &n->members[0];
    else if (s->raft && s->leader.node)
      l = member_by_key(n, s->leader.node);
    else if (s->hint_leader[0])
      l = member_by_id(n, s->hint_leader);
    if (l)
      leads[l - n->members]++;
  }
}

/* Evens out leadership: when this agent leads more than its fair share
 * (shards over the agents that can lead), it hands one shard a round to a
 * live voter that leads at least two fewer. Shards whose requests come
 * from here (leadership followed them) stay. */
static void balance_leaders(struct mq_node *n, int64_t now, int *leads) {
  if (now - n->last_balance_ms < BALANCE_EVERY_MS)
    return;
  n->last_balance_ms = now;
  int able = 0;
  for (int i = 0; i < n->n_members; i++)
    able += can_lead(&n->members[i]);
  count_leads(n, leads);
  int mine = leads[0], fair = (n->n_shards + able - 1) / (able ? able : 1);
  if (mine <= fair)
    return;
  int64_t min_led = BALANCE_MIN_LED_MS;
  if (2 * n->cfg->leader_follow_ms > min_led)
    min_led = 2 * n->cfg->leader_follow_ms;
  for (int i = 0; i < n->n_shards; i++) {
    struct shard *s = &n->shards[i];
    if (!replica_is_leader(s) || now < s->pinned_until_ms || !s->led_since_ms ||
        now - s->led_since_ms < min_led)
      continue;
    struct mq_raft_status rs;
    mq_raft_status(s->raft, &rs);
    struct member *best = NULL;
    struct mq_raft_member to = {0, 0};
    for (uint32_t j = 0; j < rs.conf.n; j++) {
      struct mq_raft_member id = rs.conf.m[j].id;
      struct member *m = member_by_key(n, id.node);
      if (rs.conf.m[j].role != MQ_RAFT_VOTER || !m || m->self || !can_lead(m) || m->inc != id.inc)
        continue;
      int theirs = leads[m - n->members];
      if (theirs + 2 <= mine && (!best || theirs < leads[best - n->members])) {
        best = m;
        to = id;
      }
    }
    if (!best || mq_raft_transfer_leadership(s->raft, to) != 0)
      continue;
    atomic_fetch_add_explicit(&n->m_handoffs, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&n->m_balance_moves, 1, memory_order_relaxed);
    mq_info("raft",
            "shard %d: handing leadership to %s to even out leadership (%d shards led here, %d "
            "there, a fair share is %d)",
            s->id, best->id, mine, leads[best - n->members], fair);
    return;
  }
}

void reconcile_tick(struct mq_node *n) {
  int64_t now = node_now(n);
  if (atomic_load(&n->handing_off)) {
    drain_tick(n, now);
    return;
  }
  bool draining = atomic_load(&n->draining);
  if (draining)
    health_update_drain(n);
  /* learners per agent over the shards led here (reconcile_shard) */
  int *per_member = calloc((size_t)n->n_members, sizeof *per_member);
  uint64_t learners = 0;
  for (int i = 0; i < n->n_shards; i++) {
    struct shard *s = &n->shards[i];
    if (!replica_is_leader(s))
      continue;
    struct mq_raft_status rs;
    mq_raft_status(s->raft, &rs);
    for (uint32_t j = 0; j < rs.conf.n; j++) {
      if (rs.conf.m[j].role != MQ_RAFT_LEARNER)
        continue;
      learners++;
      struct member *m = member_by_key(n, rs.conf.m[j].id.node);
      if (m && per_member)
        per_member[m - n->members]++;
    }
  }
  atomic_store_explicit(&n->m_moves_in_progress, learners, memory_order_relaxed);
  for (int i = 0; i < n->n_shards; i++) {
    struct shard *s = &n->shards[i];
    if (!replica_is_leader(s))
      continue;
    if (!draining)
      follow_load(n, s, now);
    if (now - s->last_reconcile_ms < RECONCILE_EVERY_MS)
      continue;
    s->last_reconcile_ms = now;
    reconcile_shard(n, s, per_member);
  }
  if (!draining && per_member) {
    memset(per_member, 0, (size_t)n->n_members * sizeof *per_member);
    balance_leaders(n, now, per_member);
  }
  free(per_member);
}

void reconcile_drain(struct mq_node *n) {
  atomic_store(&n->ready, false);
  members_announce(n); /* so that nobody hands its shards to this agent */
  health_update_drain(n);
}

void reconcile_hand_off(struct mq_node *n) {
  for (int i = 0; i < n->n_shards; i++)
    n->shards[i].last_reconcile_ms = 0; /* hand every led shard over now */
  reconcile_tick(n);
}
