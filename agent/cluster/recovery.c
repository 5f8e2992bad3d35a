/* Rebuilding a shard's group when its majority is provably gone
 * (DESIGN.md section 6; core/recover.c has the proof).
 *
 * Incarnations make "gone" certain: a configuration member whose agent now
 * runs under a newer incarnation lost its memory and will never vote
 * again. A replica that has known no leader for three election timeouts
 * looks at the members its recovery would depend on:
 *   - any of them down (current incarnation, pipe down) or never heard of:
 *     it may come back with the only copy of a write; wait;
 *   - a majority of the latest configuration's voters live and current: a
 *     normal election will do; wait;
 *   - otherwise, if the core proves the survivors hold every committed
 *     entry between them, rebuild the group from this replica: a recovery
 *     election that every survivor must grant, and which only the most
 *     up-to-date of them can win. Attempts are spaced by one to three
 *     election timeouts, at random, so survivors do not duel;
 *   - if not provably lossless, say so once (WARN) and leave it to an
 *     operator: `mqctl recover --shard N` shows what may be lost and, when
 *     confirmed, treats every member that is not live as lost.
 * The leader's side of the contract (core/raft.h): a voter that is not
 * gone is only ever removed from a configuration with more voters than
 * the replication factor (reconcile.c). */
#include "cluster/internal.h"
#include "util/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What the members a recovery from s depends on are, as this agent knows
 * them. gone[] gets the old incarnations (and, with force, every member
 * that is not live); *unknown counts members that are down or never heard
 * of (not counted with force). Returns how many are in gone[]. */
static size_t survey(struct mq_node *n, struct shard *s, bool force, struct mq_raft_member *gone,
                     int *unknown, char *text, size_t cap) {
  struct mq_raft_member ms[MQ_RAFT_MAX_MEMBERS];
  size_t k = mq_raft_recovery_members(s->raft, ms, MQ_RAFT_MAX_MEMBERS), g = 0;
  size_t len = 0;
  *unknown = 0;
  for (size_t i = 0; i < k; i++) {
    struct member *m = member_by_key(n, ms[i].node);
    bool self = mq_raft_member_eq(ms[i], n->self);
    const char *state;
    if (self) {
      state = "this agent";
    } else if (members_is_old(n, ms[i])) {
      state = "gone: its agent restarted with empty memory";
      gone[g++] = ms[i];
    } else if (m && m->up && m->inc == ms[i].inc) {
      state = "live";
    } else {
      state = m ? "down" : "never heard of";
      if (force)
        gone[g++] = ms[i];
      else
        (*unknown)++;
    }
    if (text && len < cap)
      len += (size_t)snprintf(text + len, cap - len, "  %s (incarnation %llu): %s\n",
                              m ? m->id : "?", (unsigned long long)ms[i].inc, state);
  }
  return g;
}

/* A majority of the latest configuration's voters is live and current. */
static bool electable(struct mq_node *n, struct shard *s) {
  struct mq_raft_status rs;
  mq_raft_status(s->raft, &rs);
  int voters = 0, live = 0;
  for (uint32_t i = 0; i < rs.conf.n; i++) {
    if (rs.conf.m[i].role != MQ_RAFT_VOTER)
      continue;
    voters++;
    struct mq_raft_member id = rs.conf.m[i].id;
    struct member *m = member_by_key(n, id.node);
    live += mq_raft_member_eq(id, n->self) || (m && m->up && m->inc == id.inc);
  }
  return live >= voters / 2 + 1;
}

static void retry_later(struct mq_node *n, struct shard *s, int64_t now) {
  int64_t e = n->cfg->election_timeout_ms > 0 ? n->cfg->election_timeout_ms : 1000;
  s->recover_retry_ms = now + e + (int64_t)(n->io->random(n->io) % (uint64_t)(2 * e));
}

static void start(struct mq_node *n, struct shard *s, const struct mq_raft_member *gone, size_t g,
                  const char *why) {
  s->recover_term = mq_raft_term(s->raft) + 1;
  int rc = mq_raft_recover(s->raft, gone, g);
  if (rc) {
    s->recover_term = 0;
    mq_debug("raft", "shard %d: cannot start a recovery: %s", s->id, mq_strerror(rc));
    return;
  }
  mq_info("raft",
          "shard %d: rebuilding the group from its survivors (%s); this replica asks "
          "each survivor for its vote",
          s->id, why);
}

static void tick_shard(struct mq_node *n, struct shard *s, int64_t now) {
  if (s->leader.node || s->role == MQ_RAFT_LEADER) {
    s->leaderless_since_ms = 0;
    s->recover_warned = false;
    return;
  }
  if (!s->leaderless_since_ms) {
    s->leaderless_since_ms = now;
    retry_later(n, s, now);
  }
  int64_t e = n->cfg->election_timeout_ms > 0 ? n->cfg->election_timeout_ms : 1000;
  if (now - s->leaderless_since_ms < 3 * e || now < s->recover_retry_ms ||
      s->role == MQ_RAFT_CANDIDATE)
    return;
  retry_later(n, s, now);
  struct mq_raft_member gone[MQ_RAFT_MAX_MEMBERS];
  int unknown;
  size_t g = survey(n, s, false, gone, &unknown, NULL, 0);
  if (!g || unknown || electable(n, s))
    return;
  if (mq_raft_recovery_lossless(s->raft, gone, g, (uint32_t)n->cfg->replication_factor)) {
    start(n, s, gone, g, "provably lossless: the survivors hold every committed write");
    return;
  }
  if (!s->recover_warned) {
    s->recover_warned = true;
    mq_warn("raft",
            "shard %d: no majority can form (members that restarted were voters) and "
            "the survivors cannot prove they hold every committed write; `mqctl recover "
            "--shard %d` shows what may be lost and rebuilds the group from them",
            s->id, s->id);
  }
}

void recovery_tick(struct mq_node *n) {
  int64_t now = node_now(n);
  for (int i = 0; i < n->n_shards; i++)
    if (n->shards[i].raft)
      tick_shard(n, &n->shards[i], now);
}

void recovery_on_role(struct mq_node *n, struct shard *s, int role, uint64_t term) {
  if (!s->recover_term)
    return;
  if (role == MQ_RAFT_LEADER && term == s->recover_term) {
    s->recover_term = 0;
    atomic_fetch_add_explicit(&n->m_recoveries, 1, memory_order_relaxed);
    mq_info("raft", "shard %d: recovered: this replica leads term %llu of the rebuilt group", s->id,
            (unsigned long long)term);
  }
  /* Past the recovery's term, or back to follower in it: the attempt is over. */
  if (term > s->recover_term || (term == s->recover_term && role == MQ_RAFT_FOLLOWER))
    s->recover_term = 0;
}

void exec_recover(struct mq_node *n, struct mq_req *r) {
  int32_t sh = r->partition;
  struct shard *s = &n->shards[sh];
  if (!s->raft) {
    struct member *want[8];
    size_t k = members_placement(n, sh, want, 8);
    char list[512] = "";
    for (size_t j = 0, len = 0; j < k && len < sizeof list; j++)
      len += (size_t)snprintf(list + len, sizeof list - len, "%s%s", j ? ", " : "", want[j]->id);
    mq_status_set(&r->status, MQ_EPRECOND,
                  "this agent holds no replica of shard %d; run the command against one that "
                  "does (placement: %s)",
                  sh, list);
    return;
  }
  if (s->leader.node || s->role == MQ_RAFT_LEADER) {
    mq_status_set(&r->status, MQ_EPRECOND, "shard %d has a leader (%s): nothing to recover", sh,
                  s->role == MQ_RAFT_LEADER          ? n->cfg->node_id
                  : member_by_key(n, s->leader.node) ? member_by_key(n, s->leader.node)->id
                                                     : "?");
    return;
  }
  struct mq_recover_report *rep = calloc(1, sizeof *rep);
  if (!rep) {
    mq_status_set(&r->status, MQ_ENOMEM, "out of memory");
    return;
  }
  struct mq_raft_status rs;
  mq_raft_status(s->raft, &rs);
  struct mq_raft_member gone[MQ_RAFT_MAX_MEMBERS];
  int unknown;
  char members[1024];
  size_t g = survey(n, s, false, gone, &unknown, members, sizeof members);
  rep->lossless = !unknown && g &&
                  mq_raft_recovery_lossless(s->raft, gone, g, (uint32_t)n->cfg->replication_factor);
  int len = snprintf(rep->text, sizeof rep->text,
                     "shard %d has no leader. This replica (%s) holds log entries up to index "
                     "%llu (term %llu) and knows entries up to %llu committed.\nMembers the "
                     "group depends on:\n%s",
                     sh, n->cfg->node_id, (unsigned long long)rs.last_index,
                     (unsigned long long)mq_raft_term_at(s->raft, rs.last_index),
                     (unsigned long long)rs.commit, members);
  if (len > 0 && (size_t)len < sizeof rep->text) {
    if (rep->lossless)
      snprintf(rep->text + len, sizeof rep->text - (size_t)len,
               "The survivors provably hold every committed write: nothing is lost, and the "
               "agents do this by themselves.\n");
    else
      snprintf(rep->text + len, sizeof rep->text - (size_t)len,
               "Rebuilding counts every member that is not live as lost. The most recent log "
               "among the live members wins, but writes committed after index %llu that only "
               "the lost members held may be gone for good. A member counted as lost that "
               "comes back must be restarted (empty memory) to rejoin.\n",
               (unsigned long long)rs.commit);
  }
  if (r->confirm) {
    g = survey(n, s, true, gone, &unknown, NULL, 0);
    s->recover_term = mq_raft_term(s->raft) + 1;
    int rc = mq_raft_recover(s->raft, gone, g);
    if (rc) {
      s->recover_term = 0;
      free(rep);
      mq_status_set(&r->status, rc, "shard %d: cannot start the recovery here: %s", sh,
                    rc == MQ_EPRECOND ? "this replica voted for a recovery from a newer "
                                        "configuration; run the command against another replica"
                                      : mq_strerror(rc));
      return;
    }
    rep->started = true;
    mq_warn("raft",
            "shard %d: rebuilding the group from its live members on an operator's "
            "order (mqctl recover)%s",
            sh, rep->lossless ? "" : "; writes may be lost");
  }
  r->recover = rep;
}
