/* Per-shard health as this agent sees it, readiness, and whether this
 * agent may leave yet.
 *
 * Readiness (README "Readiness"; DESIGN.md section 6). An agent restarted
 * with empty memory comes back under a new incarnation and the cluster
 * repairs around it: each shard's leader removes the old incarnation, adds
 * the new one as a learner and promotes it once it has caught up. A
 * StatefulSet rolling update takes the next pod down as soon as this one
 * reports ready, so readiness must not come before that repair is done:
 *   the start gate (passed once per process): every shard placement gives
 *     this agent is held here as a caught-up voter, and no shard it hosts
 *     counts a dead member or an old incarnation as a voter — taking one
 *     more agent away then costs no shard its majority;
 *   always: the cluster is formed, the agent is not shutting down, and
 *     every shard it hosts has a leader and has applied what it knows is
 *     committed, as a member of the group.
 * After the gate, a peer's failure does not make this agent unready: the
 * app next to it is served as long as a majority is, so its pod stays in
 * its Service; the failed pod's own readiness holds a rollout back.
 *
 * Leaving (SIGTERM): a shard is at risk when, without this agent, fewer
 * than a majority of its voters would be live, current and not leaving
 * themselves. Shards whose every other replica is down or leaving too (the
 * whole cluster stops) are not waited for: waiting cannot help them. */
#include "cluster/internal.h"
#include "util/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Appends "; "-separated text to why. */
static void say(char *why, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void say(char *why, size_t cap, const char *fmt, ...) {
  size_t len = strlen(why);
  if (len + 3 >= cap)
    return;
  if (len) {
    memcpy(why + len, "; ", 3);
    len += 2;
  }
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why + len, cap - len, fmt, ap);
  va_end(ap);
}

static const char *name_of(struct mq_node *n, struct mq_raft_member id) {
  struct member *m = member_by_key(n, id.node);
  return m ? m->id : "an unknown agent";
}

unsigned health_of(struct mq_node *n, struct shard *s, char *why, size_t cap) {
  struct mq_raft_status rs;
  mq_raft_status(s->raft, &rs);
  unsigned f = 0;
  why[0] = '\0';
  if (!rs.leader.node && rs.role != MQ_RAFT_LEADER) {
    f |= SH_NO_LEADER;
    say(why, cap, "no leader");
  }
  if (mq_raft_conf_find(&rs.conf, n->self) < 0) {
    f |= SH_NOT_MEMBER;
    say(why, cap, "this agent is not a member yet");
  }
  size_t voters = 0;
  for (uint32_t i = 0; i < rs.conf.n; i++) {
    struct mq_raft_member id = rs.conf.m[i].id;
    bool old = members_is_old(n, id);
    if (rs.conf.m[i].role == MQ_RAFT_LEARNER) {
      f |= SH_LEARNER;
      say(why, cap, old ? "learner %s is an old incarnation" : "learner %s is catching up",
          name_of(n, id));
      continue;
    }
    voters++;
    struct member *m = member_by_key(n, id.node);
    if (old) {
      f |= SH_OLD_VOTER;
      say(why, cap, "an old incarnation of %s is still a voter", name_of(n, id));
    } else if (!mq_raft_member_eq(id, n->self) && (!m || !m->up)) {
      f |= SH_VOTER_DOWN;
      say(why, cap, "voter %s is down", name_of(n, id));
    }
  }
  struct member *want[8];
  size_t k = members_placement(n, s->id, want, 8);
  if (voters < k) {
    f |= SH_FEW_VOTERS;
    say(why, cap, "%zu of %zu replicas are voters", voters, k);
  }
  if (s->applied < rs.commit) {
    f |= SH_BEHIND;
    say(why, cap, "this replica applied %llu of %llu committed entries",
        (unsigned long long)s->applied, (unsigned long long)rs.commit);
  }
  if (!f)
    snprintf(why, cap, "ok");
  return f;
}

static bool placed_here(struct mq_node *n, int32_t shard) {
  struct member *want[8];
  size_t k = members_placement(n, shard, want, 8);
  for (size_t j = 0; j < k; j++)
    if (want[j]->self)
      return true;
  return false;
}

static bool learner_here(struct mq_node *n, struct shard *s) {
  struct mq_raft_status rs;
  mq_raft_status(s->raft, &rs);
  int at = mq_raft_conf_find(&rs.conf, n->self);
  return at >= 0 && rs.conf.m[at].role == MQ_RAFT_LEARNER;
}

/* Readiness now, and why not (into why). */
/* Past the gate, a shard that lost its leader less than two election
 * timeouts ago is electing one (a failover takes a few heartbeats): every
 * agent that hosts the dead leader's shards would otherwise drop out of
 * its Service at once for that moment. Longer, and it counts. */
static bool electing(struct mq_node *n, const struct shard *s) {
  int64_t e = n->cfg->election_timeout_ms > 0 ? n->cfg->election_timeout_ms : 1000;
  return !s->leaderless_since_ms || node_now(n) - s->leaderless_since_ms < 2 * e;
}

static bool assess_ready(struct mq_node *n, char *why, size_t cap) {
  if (atomic_load(&n->stopping) || atomic_load(&n->draining)) {
    snprintf(why, cap, "shutting down");
    return false;
  }
  if (!n->formed) {
    snprintf(why, cap, "the cluster has not formed yet (waiting for peers)");
    return false;
  }
  char h[256];
  for (int i = 0; i < n->n_shards; i++) {
    struct shard *s = &n->shards[i];
    bool mine = placed_here(n, i);
    if (!mine && !s->raft)
      continue;
    if (!s->raft) {
      snprintf(why, cap, "shard %d: placement gives it to this agent; not joined yet", i);
      return false;
    }
    unsigned bad = SH_NO_LEADER | SH_BEHIND | SH_NOT_MEMBER;
    if (!n->ready_once) {
      bad |= SH_OLD_VOTER | SH_VOTER_DOWN;
      if (mine && learner_here(n, s)) {
        snprintf(why, cap, "shard %d: this agent is a learner, catching up", i);
        return false;
      }
    }
    unsigned got = health_of(n, s, h, sizeof h);
    if ((got & SH_NO_LEADER) && n->ready_once && electing(n, s))
      got &= ~SH_NO_LEADER;
    if (got & bad) {
      snprintf(why, cap, "shard %d: %.200s", i, h);
      return false;
    }
  }
  why[0] = '\0';
  return true;
}

void health_update_ready(struct mq_node *n) {
  char why[256];
  bool ready = assess_ready(n, why, sizeof why);
  if (ready && !n->ready_once) {
    n->ready_once = true;
    mq_info("core", "readiness gate passed: this agent is a caught-up voter of every shard "
                    "placement gives it, and no shard it hosts counts a dead member or an old "
                    "incarnation as a voter");
  }
  pthread_mutex_lock(&n->ready_lock);
  snprintf(n->not_ready_why, sizeof n->not_ready_why, "%s", why);
  pthread_mutex_unlock(&n->ready_lock);
  bool was = atomic_exchange(&n->ready, ready);
  if (was != ready) {
    if (ready)
      mq_info("core", "readiness: ready");
    else
      mq_info("core", "readiness: not ready (%s)", why);
  }
}

void health_update_drain(struct mq_node *n) {
  char why[512] = "";
  int risk = 0;
  for (int i = 0; i < n->n_shards; i++) {
    struct shard *s = &n->shards[i];
    if (!s->raft)
      continue;
    struct mq_raft_status rs;
    mq_raft_status(s->raft, &rs);
    int at = mq_raft_conf_find(&rs.conf, n->self);
    if (at < 0 || rs.conf.m[at].role != MQ_RAFT_VOTER)
      continue; /* a learner's departure costs no majority */
    int voters = 0, live = 0, others = 0;
    for (uint32_t j = 0; j < rs.conf.n; j++) {
      bool voter = rs.conf.m[j].role == MQ_RAFT_VOTER;
      voters += voter;
      if ((int)j == at)
        continue;
      struct member *m = member_by_key(n, rs.conf.m[j].id.node);
      bool alive = m && !members_is_old(n, rs.conf.m[j].id) && m->up && !m->leaving;
      live += voter && alive;
      others += alive;
    }
    if (live >= voters / 2 + 1 || others == 0)
      continue;
    risk++;
    char h[256];
    health_of(n, s, h, sizeof h);
    say(why, sizeof why, "shard %d: %d of %d voters would be left (%.160s)", i, live, voters, h);
  }
  pthread_mutex_lock(&n->ready_lock);
  snprintf(n->drain_risk_why, sizeof n->drain_risk_why, "%s", why);
  pthread_mutex_unlock(&n->ready_lock);
  atomic_store(&n->drain_risk, risk);
}
