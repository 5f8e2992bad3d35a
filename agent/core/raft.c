/* One Raft group: lifecycle, roles and elections, the inputs a host calls
 * (propose, read_index, transfer, membership, compact) and the ready/advance
 * batch. Leader-side replication is in repl.c, follower-side log handling in
 * follow.c, the log itself in log.c. */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "util/err.h"

static const struct mq_raft_member no_member;

static uint64_t rnd(struct mq_raft *r) { /* splitmix64 */
  uint64_t z = (r->rng += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static void reset_timeout(struct mq_raft *r) {
  r->elapsed = 0;
  r->timeout = r->o.election_ticks + (uint32_t)(rnd(r) % r->o.election_ticks);
}

void mq_raft_options_default(struct mq_raft_options *o) {
  memset(o, 0, sizeof(*o));
  o->election_ticks = 10;
  o->heartbeat_ticks = 1;
  o->max_inflight = 64;
  o->max_inflight_bytes = 8u << 20;
  o->max_msg_bytes = 1u << 20;
  o->snapshot_chunk = 256u << 10;
  o->snapshot_window = 4;
  o->max_snapshot_bytes = 1u << 30;
  o->max_uncommitted = 65536;
}

/* ---- helpers shared with repl.c and follow.c ---------------------------- */

void raft_send_msg(struct mq_raft *r, const struct mq_raft_msg *m) {
  if (r->n_out == r->cap_out) {
    size_t cap = r->cap_out ? r->cap_out * 2 : 16;
    struct omsg *o = realloc(r->out, cap * sizeof(*o));
    if (!o) return; /* dropped: indistinguishable from network loss */
    r->out = o;
    r->cap_out = cap;
  }
  struct omsg *o = &r->out[r->n_out++];
  o->m = *m;
  o->m.group = r->o.group;
  o->m.from = r->o.self;
  if (!o->m.term) o->m.term = r->term;
}

/* Appends and snapshot chunks refer to the log by index; once this member
 * stops leading, those indices may name other entries, so they go. */
void raft_drop_out_msgs(struct mq_raft *r) {
  size_t k = 0;
  for (size_t i = 0; i < r->n_out; i++) {
    uint32_t t = r->out[i].m.type;
    if (t == MQ_RAFT_MSG_APP || t == MQ_RAFT_MSG_SNAP) continue;
    r->out[k++] = r->out[i];
  }
  r->n_out = k;
}

bool raft_is_voter(const struct mq_raft *r, struct mq_raft_member m) {
  int i = mq_raft_conf_find(&r->conf, m);
  return i >= 0 && r->conf.m[i].role == MQ_RAFT_VOTER;
}

int raft_quorum(const struct mq_raft *r) {
  int v = 0;
  for (uint32_t i = 0; i < r->conf.n; i++)
    v += r->conf.m[i].role == MQ_RAFT_VOTER;
  return v / 2 + 1;
}

void raft_commit_to(struct mq_raft *r, uint64_t c) {
  uint64_t last = rlog_last(&r->log);
  if (c > last) c = last;
  if (c > r->commit) r->commit = c;
}

void raft_set_conf(struct mq_raft *r, const struct mq_raft_conf *c,
                   uint64_t index) {
  struct mq_raft_conf old = r->conf;
  r->conf = *c;
  r->conf_index = index;
  r->conf_term = rlog_term(&r->log, index);
  if (mq_raft_conf_find(c, r->o.self) >= 0)
    r->removed = false; /* added again */
  if (r->role == MQ_RAFT_LEADER) raft_leader_conf_changed(r, &old);
}

int raft_conf_at(const struct mq_raft *r, uint64_t index,
                 struct mq_raft_conf *c) {
  uint64_t last = rlog_last(&r->log);
  if (index > last) index = last;
  for (uint64_t i = index; i > r->log.snap_index; i--) {
    const struct mq_raft_entry *e = rlog_at(&r->log, i);
    if (e->type == MQ_RAFT_ENTRY_CONF) {
      int rc = mq_raft_conf_decode(c, e->data, e->len);
      assert(rc == 0); /* validated when it entered the log */
      (void)rc;
      return 0;
    }
  }
  *c = r->snap_conf;
  return 0;
}

void raft_reload_conf(struct mq_raft *r) {
  uint64_t last = rlog_last(&r->log);
  for (uint64_t i = last; i > r->log.snap_index; i--) {
    const struct mq_raft_entry *e = rlog_at(&r->log, i);
    if (e->type == MQ_RAFT_ENTRY_CONF) {
      struct mq_raft_conf c;
      int rc = mq_raft_conf_decode(&c, e->data, e->len);
      assert(rc == 0);
      (void)rc;
      raft_set_conf(r, &c, i);
      return;
    }
  }
  raft_set_conf(r, &r->snap_conf, r->log.snap_index);
}

int raft_append_entry(struct mq_raft *r, uint64_t term, uint32_t type,
                      const void *data, size_t len) {
  struct mq_raft_conf c;
  if (type == MQ_RAFT_ENTRY_CONF && mq_raft_conf_decode(&c, data, len))
    return MQ_ECORRUPT;
  int rc = rlog_append(&r->log, term, type, data, len);
  if (rc) return rc;
  /* A configuration takes effect as soon as it is in the log (diss. §4.1). */
  if (type == MQ_RAFT_ENTRY_CONF) raft_set_conf(r, &c, rlog_last(&r->log));
  return 0;
}

/* ---- roles ---------------------------------------------------------------
 * The role decides which tick and step functions run (set here, only). */

static void tick_election(struct mq_raft *r);
static int step_follower(struct mq_raft *r, const struct mq_raft_msg *m);
static int step_candidate(struct mq_raft *r, const struct mq_raft_msg *m);

void raft_become_follower(struct mq_raft *r, uint64_t term,
                          struct mq_raft_member leader) {
  assert(term >= r->term);
  if (term != r->term) {
    r->term = term;
    r->voted = false;
    r->vote = no_member;
  }
  if (r->role == MQ_RAFT_LEADER) raft_drop_out_msgs(r);
  r->role = MQ_RAFT_FOLLOWER;
  r->tick = tick_election;
  r->step = step_follower;
  r->leader = leader;
  r->transferring = false;
  r->recovering = false;
  r->n_reads = 0;
  reset_timeout(r);
}

void raft_become_leader(struct mq_raft *r) {
  assert(r->role == MQ_RAFT_CANDIDATE);
  r->role = MQ_RAFT_LEADER;
  r->tick = raft_leader_tick;
  r->step = raft_leader_step;
  r->leader = r->o.self;
  r->transferring = false;
  r->n_reads = 0;
  r->elapsed = 0;
  r->hb_elapsed = 0;
  raft_leader_reset(r);
  /* §5.4.2 / §8: a no-op of the new term lets earlier entries commit and
   * lets ReadIndex know the commit index is current. */
  if (raft_append_entry(r, r->term, MQ_RAFT_ENTRY_NOOP, NULL, 0) == 0) {
    if (r->recovering) raft_recover_won(r);
    raft_leader_flush(r);
  }
  r->recovering = false;
}

static void poll(struct mq_raft *r, int slot, bool granted);

/* May this member stand for election? Voters may. So may a learner, and a
 * member not in its latest configuration while that is uncommitted (its
 * own removal, or a recovery it led as a non-member): either may be the
 * only one holding the newest entries (a leader's last appends), and a
 * voter that has seen fewer would refuse everyone else (diss. §4.2.2 lets
 * a leader manage a configuration it is not part of). Its own vote does
 * not count; if it wins, it commits its term's no-op and, not being a
 * voter, steps down (raft_maybe_commit), leaving an up-to-date quorum. */
static bool promotable(const struct mq_raft *r) {
  if (mq_raft_conf_find(&r->conf, r->o.self) >= 0) return true;
  return r->conf_index > r->commit && r->conf_index != 0;
}

/* A (pre-)candidate of a new round: with pre, for the next term without
 * moving to it (diss. §9.6); else in a new term, with our own vote. */
static void become_candidate(struct mq_raft *r, bool pre) {
  if (pre) {
    r->role = MQ_RAFT_PRECANDIDATE;
  } else {
    r->term++;
    r->voted = true;
    r->vote = r->o.self;
    r->role = MQ_RAFT_CANDIDATE;
  }
  r->tick = tick_election;
  r->step = step_candidate;
  r->leader = no_member;
  r->granted = r->rejected = 0;
  reset_timeout(r);
}

static void ask_vote(struct mq_raft *r, struct mq_raft_member to, bool pre,
                     uint32_t flags, uint64_t hint) {
  struct mq_raft_msg m = {0};
  m.type = pre ? MQ_RAFT_MSG_PREVOTE : MQ_RAFT_MSG_VOTE;
  m.to = to;
  m.term = pre ? r->term + 1 : r->term;
  m.index = rlog_last(&r->log);
  m.log_term = rlog_last_term(&r->log);
  m.flags = flags;
  m.hint = hint;
  raft_send_msg(r, &m);
}

/* Recovery (recover.c): a request to every member of rec_voters, learners
 * too, first for a pre-vote (so that a survivor with a more recent log
 * refuses before anybody's term moves), then, once all granted, for a vote
 * in a new term; raft_recover_poll() counts the answers. */
void raft_campaign_recover(struct mq_raft *r, bool pre) {
  become_candidate(r, pre);
  int self = mq_raft_conf_find(&r->rec_voters, r->o.self);
  r->rec_granted = self >= 0 ? 1u << self : 0;
  for (uint32_t i = 0; i < r->rec_voters.n; i++)
    if (!mq_raft_member_eq(r->rec_voters.m[i].id, r->o.self))
      ask_vote(r, r->rec_voters.m[i].id, pre, MQ_RAFT_FLAG_RECOVER,
               r->conf_index);
  raft_recover_poll(r, NULL); /* a lone survivor wins at once */
}

void raft_campaign(struct mq_raft *r, int kind) {
  if (kind == CAMP_RECOVER) {
    raft_campaign_recover(r, true);
    return;
  }
  if (!promotable(r)) return;
  bool pre = kind == CAMP_PRE;
  become_candidate(r, pre);
  int self = mq_raft_conf_find(&r->conf, r->o.self);
  if (self >= 0) poll(r, self, true);
  if (r->role != (pre ? MQ_RAFT_PRECANDIDATE : MQ_RAFT_CANDIDATE)) return;
  /* Learners are asked for pre-votes too: their answers never count, but
   * one that has since become a voter of a configuration without us tells
   * us so (NOT_MEMBER), where our other voters may all be gone or replaced
   * and would never answer. */
  for (uint32_t i = 0; i < r->conf.n; i++) {
    if (r->conf.m[i].role != MQ_RAFT_VOTER && !pre) continue;
    if (mq_raft_member_eq(r->conf.m[i].id, r->o.self)) continue;
    ask_vote(r, r->conf.m[i].id, pre,
             kind == CAMP_TRANSFER ? MQ_RAFT_FLAG_TRANSFER : 0, 0);
  }
}

static void poll(struct mq_raft *r, int slot, bool granted) {
  assert(slot >= 0 && slot < (int)r->conf.n);
  if (r->conf.m[slot].role != MQ_RAFT_VOTER) return;
  uint32_t bit = 1u << slot;
  if ((r->granted | r->rejected) & bit) return;
  if (granted)
    r->granted |= bit;
  else
    r->rejected |= bit;
  int yes = __builtin_popcount(r->granted),
      no = __builtin_popcount(r->rejected);
  if (yes >= raft_quorum(r)) {
    if (r->role == MQ_RAFT_PRECANDIDATE)
      raft_campaign(r, CAMP_ELECT);
    else
      raft_become_leader(r);
  } else if (no >= raft_quorum(r)) {
    raft_become_follower(r, r->term, no_member);
  }
}

static void tick_election(struct mq_raft *r) {
  r->elapsed++;
  if (r->elapsed >= r->timeout) {
    r->elapsed = 0;
    r->recovering = false; /* a recovery election that did not finish ends */
    if (promotable(r) && !r->removed) {
      raft_campaign(r, CAMP_PRE);
    } else if (r->role != MQ_RAFT_FOLLOWER) {
      /* A candidate that may not campaign again (a recovery it led as a
       * non-member did not finish) waits as a follower, where its host
       * may start the recovery over. */
      raft_become_follower(r, r->term, no_member);
    } else {
      /* A learner (or removed member) that heard nothing for an election
       * timeout knows no leader; saying so lets its host see the group
       * stuck. */
      r->leader = no_member;
      reset_timeout(r);
    }
  }
}

static int step_follower(struct mq_raft *r, const struct mq_raft_msg *m) {
  switch (m->type) {
  case MQ_RAFT_MSG_APP:
  case MQ_RAFT_MSG_HEARTBEAT:
  case MQ_RAFT_MSG_SNAP:
    if (r->timeout < r->o.election_ticks)
      reset_timeout(r); /* the leader was unreachable, and is back */
    r->elapsed = 0;
    r->leader = r->heard = m->from;
    r->heard_term = r->term;
    if (m->type == MQ_RAFT_MSG_APP)
      raft_handle_append(r, m);
    else if (m->type == MQ_RAFT_MSG_HEARTBEAT)
      raft_handle_heartbeat(r, m);
    else
      raft_handle_snapshot(r, m);
    return 0;
  case MQ_RAFT_MSG_TIMEOUT_NOW:
    raft_campaign(r, CAMP_TRANSFER); /* diss. §3.10: the leader chose us */
    return 0;
  default:
    return 0;
  }
}

static int step_candidate(struct mq_raft *r, const struct mq_raft_msg *m) {
  switch (m->type) {
  case MQ_RAFT_MSG_APP:
  case MQ_RAFT_MSG_HEARTBEAT:
  case MQ_RAFT_MSG_SNAP: /* a leader of our term exists (§5.2) */
    raft_become_follower(r, m->term, m->from);
    return step_follower(r, m);
  case MQ_RAFT_MSG_VOTE_RESP:
  case MQ_RAFT_MSG_PREVOTE_RESP: {
    if (r->recovering) {
      bool pre = m->type == MQ_RAFT_MSG_PREVOTE_RESP;
      if (pre == (r->role == MQ_RAFT_PRECANDIDATE)) raft_recover_poll(r, m);
      return 0;
    }
    bool pre = m->type == MQ_RAFT_MSG_PREVOTE_RESP;
    if (pre != (r->role == MQ_RAFT_PRECANDIDATE)) return 0;
    int slot = mq_raft_conf_find(&r->conf, m->from);
    if (slot < 0) return 0; /* only members of our configuration count */
    poll(r, slot, !(m->flags & MQ_RAFT_FLAG_REJECT));
    return 0;
  }
  default:
    return 0;
  }
}

/* A member that missed its own removal keeps asking for votes in its old
 * configuration, which nobody grants (a removed server just times out,
 * diss. §4.2.3), and keeps a replica nobody updates. So every answer to a
 * vote request from a sender outside our latest configuration, when we know
 * that configuration committed, says so: the NOT_MEMBER flag with the
 * configuration's index (hint) and term (log_term, 0 when its entry was
 * compacted before we learned it). Requests we would
 * otherwise ignore (our leader's lease) get a refusal carrying it. */
static bool not_member(const struct mq_raft *r, struct mq_raft_member m) {
  return r->conf_index != 0 && r->conf_index <= r->commit &&
         mq_raft_conf_find(&r->conf, m) < 0;
}

static void add_not_member(const struct mq_raft *r, struct mq_raft_msg *resp) {
  resp->flags |= MQ_RAFT_FLAG_NOT_MEMBER;
  resp->hint = r->conf_index;
  resp->log_term = r->conf_term; /* 0: compacted away and unknown */
  resp->commit = r->commit;
}

static void refuse_not_member(struct mq_raft *r, const struct mq_raft_msg *m) {
  struct mq_raft_msg resp = {0};
  resp.type = m->type == MQ_RAFT_MSG_PREVOTE ? MQ_RAFT_MSG_PREVOTE_RESP
                                             : MQ_RAFT_MSG_VOTE_RESP;
  resp.to = m->from;
  resp.term = r->term;
  resp.flags = MQ_RAFT_FLAG_REJECT;
  add_not_member(r, &resp);
  raft_send_msg(r, &resp);
}

/* Told that the latest configuration of a member, at (index, term), is
 * committed and excludes us, and that it knows entries up to `commit`
 * committed. We are removed if
 *  - our latest configuration is at an index where the committed log has
 *    none (between its configuration and its commit): ours is an
 *    uncommitted leftover of an old leader;
 *  - our log lacks that entry (we never received anything after it, so no
 *    later configuration we know of re-adds us, and nothing committed needs
 *    our copy: it is on a majority of that configuration);
 *  - or it is our own latest configuration.
 * At or below our snapshot, our own applied configurations already tell. */
static void heard_not_member(struct mq_raft *r, uint64_t index, uint64_t term,
                             uint64_t commit) {
  if (r->role == MQ_RAFT_LEADER) return;
  if (r->conf_index > index && r->conf_index <= commit &&
      r->conf_index > r->commit) {
    r->removed = true;
    return;
  }
  if (index <= r->log.snap_index) return;
  if (term ? !rlog_match(&r->log, index, term) || r->conf_index == index
           : index > rlog_last(&r->log))
    r->removed = true;
}

/* §5.1, §5.2, §5.4.1 and pre-vote/check-quorum (diss. §9.6, §6.2). */
static void handle_vote(struct mq_raft *r, const struct mq_raft_msg *m) {
  bool pre = m->type == MQ_RAFT_MSG_PREVOTE;
  bool can = (r->voted && mq_raft_member_eq(r->vote, m->from)) ||
             (!r->voted && r->leader.node == 0 && r->leader.inc == 0) ||
             (pre && m->term > r->term);
  uint64_t last = rlog_last(&r->log), lt = rlog_last_term(&r->log);
  /* A member whose removal is committed holds nothing a recovery needs
   * beyond what it knows committed: later entries commit without it. */
  if ((m->flags & MQ_RAFT_FLAG_RECOVER) && r->conf_index <= r->commit &&
      mq_raft_conf_find(&r->conf, r->o.self) < 0) {
    last = r->commit;
    lt = rlog_term(&r->log, last);
  }
  bool uptodate = m->log_term > lt || (m->log_term == lt && m->index >= last);
  struct mq_raft_msg resp = {0};
  resp.type = pre ? MQ_RAFT_MSG_PREVOTE_RESP : MQ_RAFT_MSG_VOTE_RESP;
  resp.to = m->from;
  if (can && uptodate) {
    resp.term = m->term;
    if (!pre) {
      r->voted = true;
      r->vote = m->from;
      r->elapsed = 0;
      if ((m->flags & MQ_RAFT_FLAG_RECOVER) && m->hint > r->rec_fence)
        r->rec_fence = m->hint;
    }
  } else {
    resp.term = r->term;
    resp.flags = MQ_RAFT_FLAG_REJECT;
  }
  if (not_member(r, m->from)) add_not_member(r, &resp);
  raft_send_msg(r, &resp);
}

static bool valid_msg(const struct mq_raft *r, const struct mq_raft_msg *m) {
  if (m->type < MQ_RAFT_MSG_APP || m->type > MQ_RAFT_MSG_MAX_TYPE) return false;
  if (m->term == 0) return false;
  if (m->type != MQ_RAFT_MSG_APP && m->n_entries) return false;
  if (m->n_entries && !m->entries) return false;
  if (m->len && !m->data) return false;
  return true;
}

int mq_raft_step(struct mq_raft *r, const struct mq_raft_msg *m) {
  if (!valid_msg(r, m)) return MQ_ECORRUPT;
  if (m->group != r->o.group) return 0;
  bool vote = m->type == MQ_RAFT_MSG_VOTE || m->type == MQ_RAFT_MSG_PREVOTE;
  /* Messages for another incarnation of this node are not ours. A vote
   * request for an earlier one still gets told, when its sender is outside
   * our committed configuration: a member that missed its removal while
   * every member of its last configuration came back as a new incarnation
   * hears it from nobody else. */
  if (!mq_raft_member_eq(m->to, r->o.self)) {
    if (vote && m->to.node == r->o.self.node && m->to.inc < r->o.self.inc &&
        not_member(r, m->from))
      refuse_not_member(r, m);
    return 0;
  }
  if ((m->flags & MQ_RAFT_FLAG_NOT_MEMBER) &&
      (m->type == MQ_RAFT_MSG_VOTE_RESP || m->type == MQ_RAFT_MSG_PREVOTE_RESP))
    heard_not_member(r, m->hint, m->log_term, m->commit);
  if (m->term > r->term) {
    if (vote) {
      /* Check-quorum lease: while we hear from a leader, ignore would-be
       * candidates, unless the leader itself asked for the election. */
      bool lease =
          (r->leader.node || r->leader.inc) && r->elapsed < r->o.election_ticks;
      if (lease && !(m->flags & MQ_RAFT_FLAG_TRANSFER)) {
        if (not_member(r, m->from)) refuse_not_member(r, m);
        return 0;
      }
    }
    if (m->type == MQ_RAFT_MSG_PREVOTE) {
      /* a pre-vote never changes our term */
    } else if (m->type == MQ_RAFT_MSG_PREVOTE_RESP &&
               !(m->flags & MQ_RAFT_FLAG_REJECT)) {
      /* granted pre-votes carry the future term */
    } else if (m->type == MQ_RAFT_MSG_APP || m->type == MQ_RAFT_MSG_HEARTBEAT ||
               m->type == MQ_RAFT_MSG_SNAP) {
      raft_become_follower(r, m->term, m->from);
    } else {
      raft_become_follower(r, m->term, no_member);
    }
  } else if (m->term < r->term) {
    if (m->type == MQ_RAFT_MSG_APP || m->type == MQ_RAFT_MSG_HEARTBEAT) {
      /* Tell a stale leader about our term so it steps down. */
      struct mq_raft_msg resp = {0};
      resp.type = MQ_RAFT_MSG_APP_RESP;
      resp.to = m->from;
      raft_send_msg(r, &resp);
    } else if (m->type == MQ_RAFT_MSG_PREVOTE) {
      struct mq_raft_msg resp = {0};
      resp.type = MQ_RAFT_MSG_PREVOTE_RESP;
      resp.to = m->from;
      resp.flags = MQ_RAFT_FLAG_REJECT;
      if (not_member(r, m->from)) add_not_member(r, &resp);
      raft_send_msg(r, &resp);
    } else if (m->type == MQ_RAFT_MSG_VOTE && not_member(r, m->from)) {
      refuse_not_member(r, m);
    }
    return 0;
  }
  if (vote) {
    handle_vote(r, m);
    return 0;
  }
  return r->step(r, m);
}

/* With lazy snapshots: a log nothing was appended to for two election
 * timeouts, every entry of it applied here and, on a leader, held by every
 * member, is dropped whole. Nobody needs it: a member that falls behind
 * later, or a replica that leads next and finds one behind, sends a
 * snapshot. An idle shard then costs its state machine alone, not a log
 * kept at its byte bound after a burst of writes that expired since. */
static void compact_idle(struct mq_raft *r) {
  uint64_t last = rlog_last(&r->log);
  if (last != r->idle_last) {
    r->idle_last = last;
    r->idle_ticks = 0;
    return;
  }
  if (r->idle_ticks < UINT32_MAX) r->idle_ticks++;
  if (!r->o.lazy_snapshots || r->idle_ticks < 2 * r->o.election_ticks ||
      r->log.n == 0 || r->applied != last || r->snap_pending)
    return;
  if (r->role == MQ_RAFT_LEADER)
    for (uint32_t i = 0; i < r->conf.n; i++)
      if (!mq_raft_member_eq(r->conf.m[i].id, r->o.self) &&
          r->prog[i].match < last)
        return;
  (void)mq_raft_compact(r, last, NULL, 0);
}

void mq_raft_tick(struct mq_raft *r) {
  compact_idle(r);
  r->tick(r);
}

void mq_raft_flush_commit(struct mq_raft *r) {
  if (r->role != MQ_RAFT_LEADER || !r->o.lazy_commit) return;
  r->commit_due = true;
  raft_leader_flush(r);
  r->commit_due = false;
}

void mq_raft_campaign(struct mq_raft *r) {
  if (r->role != MQ_RAFT_LEADER) raft_campaign(r, CAMP_PRE);
}

void mq_raft_leader_unreachable(struct mq_raft *r, uint64_t node_key) {
  if (r->role != MQ_RAFT_FOLLOWER || r->leader.node != node_key ||
      node_key == 0)
    return;
  uint32_t spread = r->o.election_ticks / 2 ? r->o.election_ticks / 2 : 1;
  r->leader = no_member;
  r->elapsed = 0;
  r->timeout = 1 + (uint32_t)(rnd(r) % spread);
}

/* ---- lifecycle ---------------------------------------------------------- */

int mq_raft_create(const struct mq_raft_options *o,
                   const struct mq_raft_conf *initial, struct mq_raft **out) {
  if (!o->election_ticks || !o->heartbeat_ticks ||
      o->heartbeat_ticks >= o->election_ticks || !o->max_inflight ||
      o->max_inflight > MQ_RAFT_MAX_INFLIGHT || !o->snapshot_chunk ||
      !o->snapshot_window || o->snapshot_window > MQ_RAFT_MAX_INFLIGHT ||
      !o->max_msg_bytes || (o->self.node == 0 && o->self.inc == 0))
    return MQ_EINVAL;
  struct mq_raft *r = calloc(1, sizeof(*r));
  if (!r) return MQ_ENOMEM;
  r->o = *o;
  r->rng = o->seed;
  rlog_init(&r->log, o->snapshot_bytes);
  mq_buf_init(&r->rx);
  raft_become_follower(r, 0, no_member);
  if (initial) {
    struct mq_buf b;
    mq_buf_init(&b);
    mq_raft_conf_encode(&b, initial);
    struct mq_raft_conf check;
    int rc = b.err ? b.err : mq_raft_conf_decode(&check, b.data, b.len);
    if (rc == 0) {
      /* Entry 1, term 1, committed: identical on every initial member. */
      r->term = 1;
      rc = raft_append_entry(r, 1, MQ_RAFT_ENTRY_CONF, b.data, b.len);
      r->commit = 1;
    }
    mq_buf_close(&b);
    if (rc) {
      mq_raft_destroy(r);
      return rc == MQ_ENOMEM ? rc : MQ_EINVAL;
    }
  }
  r->last_role = r->role;
  r->last_term = r->term;
  *out = r;
  return 0;
}

void mq_raft_destroy(struct mq_raft *r) {
  if (!r) return;
  rlog_close(&r->log);
  mq_buf_close(&r->rx);
  raft_snap_blob_free(r);
  free(r->reads);
  free(r->out);
  free(r->rd_msgs);
  free(r->rs);
  free(r);
}

/* ---- host inputs -------------------------------------------------------- */

int mq_raft_propose(struct mq_raft *r, const void *data, size_t len,
                    uint64_t *term, uint64_t *index) {
  if (r->role != MQ_RAFT_LEADER) return MQ_ENOTLEADER;
  if (r->transferring) return MQ_EUNAVAIL;
  if (len > r->o.max_msg_bytes || len > UINT32_MAX) return MQ_EINVAL;
  /* A leader cut off from its quorum must not buffer without bound. */
  if (r->o.max_uncommitted &&
      rlog_last(&r->log) - r->commit >= r->o.max_uncommitted)
    return MQ_ENOSPACE;
  int rc = raft_append_entry(r, r->term, MQ_RAFT_ENTRY_NORMAL, data, len);
  if (rc) return rc;
  if (term) *term = r->term;
  if (index) *index = rlog_last(&r->log);
  return 0;
}

void raft_push_read_state(struct mq_raft *r, uint64_t ctx, uint64_t index) {
  if (r->n_rs == r->cap_rs) {
    size_t cap = r->cap_rs ? r->cap_rs * 2 : 8;
    struct mq_raft_read_state *p = realloc(r->rs, cap * sizeof(*p));
    if (!p) return; /* the read times out at the host, like a lost round */
    r->rs = p;
    r->cap_rs = cap;
  }
  r->rs[r->n_rs].ctx = ctx;
  r->rs[r->n_rs].index = index;
  r->n_rs++;
}

/* Diss. §6.4: remember the commit index, confirm leadership with a round of
 * heartbeats, answer once a quorum acknowledged that round. */
int mq_raft_read_index(struct mq_raft *r, uint64_t ctx) {
  if (r->role != MQ_RAFT_LEADER) return MQ_ENOTLEADER;
  if (rlog_term(&r->log, r->commit) != r->term) return MQ_EUNAVAIL;
  if (raft_quorum(r) == 1 && raft_is_voter(r, r->o.self)) {
    raft_push_read_state(r, ctx, r->commit);
    return 0;
  }
  if (r->n_reads == r->cap_reads) {
    size_t cap = r->cap_reads ? r->cap_reads * 2 : 8;
    struct read_req *p = realloc(r->reads, cap * sizeof(*p));
    if (!p) return MQ_ENOMEM;
    r->reads = p;
    r->cap_reads = cap;
  }
  struct read_req *q = &r->reads[r->n_reads++];
  q->ctx = ctx;
  q->index = r->commit;
  q->round = ++r->read_round;
  raft_send_heartbeats(r, q->round);
  return 0;
}

int mq_raft_transfer_leadership(struct mq_raft *r, struct mq_raft_member to) {
  if (r->role != MQ_RAFT_LEADER) return MQ_ENOTLEADER;
  if (r->transferring) return MQ_EPRECOND;
  if (!raft_is_voter(r, to) || mq_raft_member_eq(to, r->o.self))
    return MQ_EINVAL;
  r->transferring = true;
  r->transferee = to;
  r->transfer_elapsed = 0;
  int slot = mq_raft_conf_find(&r->conf, to);
  if (r->prog[slot].match == rlog_last(&r->log)) {
    struct mq_raft_msg m = {0};
    m.type = MQ_RAFT_MSG_TIMEOUT_NOW;
    m.to = to;
    raft_send_msg(r, &m);
  }
  return 0;
}

int mq_raft_change_membership(struct mq_raft *r, int op,
                              struct mq_raft_member who, uint64_t *index) {
  if (r->role != MQ_RAFT_LEADER) return MQ_ENOTLEADER;
  if (r->transferring) return MQ_EPRECOND;
  if (r->conf_index > r->commit) return MQ_EPRECOND; /* one at a time */
#if !MQ_BUG(2)
  /* Diss. §4.1 (and its 2015 erratum): a leader changes the configuration
   * only after committing an entry of its own term. */
  if (rlog_term(&r->log, r->commit) != r->term) return MQ_EPRECOND;
#endif
  struct mq_raft_conf c = r->conf;
  int slot = mq_raft_conf_find(&c, who);
  switch (op) {
  case MQ_RAFT_ADD_LEARNER:
    if (slot >= 0 || (who.node == 0 && who.inc == 0)) return MQ_EINVAL;
    if (c.n == MQ_RAFT_MAX_MEMBERS) return MQ_ENOSPACE;
    c.m[c.n].id = who;
    c.m[c.n].role = MQ_RAFT_LEARNER;
    c.n++;
    break;
  case MQ_RAFT_PROMOTE:
    if (slot < 0 || c.m[slot].role != MQ_RAFT_LEARNER) return MQ_EINVAL;
    if (r->prog[slot].match < r->commit)
      return MQ_EPRECOND; /* catch up first */
    c.m[slot].role = MQ_RAFT_VOTER;
    break;
  case MQ_RAFT_REMOVE: {
    if (slot < 0) return MQ_EINVAL;
    int voters = 0;
    for (uint32_t i = 0; i < c.n; i++) voters += c.m[i].role == MQ_RAFT_VOTER;
    if (c.m[slot].role == MQ_RAFT_VOTER && voters == 1) return MQ_EINVAL;
    memmove(&c.m[slot], &c.m[slot + 1],
            (c.n - (uint32_t)slot - 1) * sizeof(c.m[0]));
    c.n--;
    break;
  }
  default:
    return MQ_EINVAL;
  }
  struct mq_buf b;
  mq_buf_init(&b);
  mq_raft_conf_encode(&b, &c);
  int rc =
      b.err ? b.err
            : raft_append_entry(r, r->term, MQ_RAFT_ENTRY_CONF, b.data, b.len);
  mq_buf_close(&b);
  if (rc == 0 && index) *index = rlog_last(&r->log);
  return rc;
}

/* May bytes (or, without them, a bare compaction) be kept for index? */
static bool compact_ok(const struct mq_raft *r, uint64_t index, bool bytes) {
  /* Bytes may come for the current snapshot point, when it has none. */
  return index <= r->applied && index >= r->log.snap_index &&
         (index != r->log.snap_index || (bytes && !r->snap_blob));
}

/* The snapshot header: the configuration at the snapshot point. */
static int put_header(struct mq_buf *b, const struct mq_raft_conf *c) {
  struct mq_buf cb;
  mq_buf_init(&cb);
  mq_raft_conf_encode(&cb, c);
  mq_buf_put_bytes(b, cb.data, cb.len);
  int rc = b->err ? b->err : cb.err;
  mq_buf_close(&cb);
  return rc;
}

/* Keeps blob (room bytes into its allocation: hdr header bytes, then the
 * state machine's) as the snapshot at index, and compacts the log. */
static void keep_snapshot(struct mq_raft *r, uint64_t index,
                          const struct mq_raft_conf *c, uint8_t *blob,
                          size_t room, size_t hdr, size_t len) {
  raft_snap_blob_free(r);
  r->snap_blob = blob ? blob + room : NULL;
  r->snap_room = blob ? room : 0;
  r->snap_blob_len = blob ? hdr + len : 0;
  r->snap_hdr = blob ? hdr : 0;
  r->snap_conf = *c;
  if (blob) r->snap_wanted = false;
  rlog_compact(&r->log, index, rlog_term(&r->log, index));
}

int mq_raft_compact(struct mq_raft *r, uint64_t index, const void *data,
                    size_t len) {
  if (!compact_ok(r, index, data != NULL)) return MQ_EINVAL;
  struct mq_raft_conf c;
  raft_conf_at(r, index, &c);
  if (!data) {
    keep_snapshot(r, index, &c, NULL, 0, 0, 0);
    return 0;
  }
  struct mq_buf b;
  mq_buf_init(&b);
  int rc = put_header(&b, &c);
  size_t hdr = b.len;
  mq_buf_put(&b, data, len);
  if (!rc) rc = b.err;
  if (rc) {
    mq_buf_close(&b);
    return rc;
  }
  size_t total;
  uint8_t *blob = mq_buf_steal(&b, &total);
  keep_snapshot(r, index, &c, blob, 0, hdr, len);
  return 0;
}

void raft_snap_blob_free(struct mq_raft *r) {
  free(r->snap_blob ? r->snap_blob - r->snap_room : NULL);
  r->snap_blob = NULL;
  r->snap_room = 0;
}

void *mq_raft_snapshot_take(struct mq_raft *r) {
  if (!r->snap_pending || !r->snap_blob) return NULL;
  void *block = r->snap_blob - r->snap_room;
  r->snap_blob = NULL;
  r->snap_room = 0;
  r->snap_blob_len = 0;
  r->snap_hdr = 0;
  return block;
}

int mq_raft_compact_adopt(struct mq_raft *r, uint64_t index, uint8_t *blob,
                          size_t room, size_t len) {
  if (!blob || !compact_ok(r, index, true)) {
    free(blob);
    return MQ_EINVAL;
  }
  struct mq_raft_conf c;
  raft_conf_at(r, index, &c);
  struct mq_buf hb;
  mq_buf_init(&hb);
  int rc = put_header(&hb, &c);
  if (!rc && hb.len > room) { /* no room for the header: the copying way */
    rc = mq_raft_compact(r, index, blob + room, len);
    free(blob);
  } else if (!rc) {
    size_t at = room - hb.len;
    memcpy(blob + at, hb.data, hb.len);
    keep_snapshot(r, index, &c, blob, at, hb.len, len);
  } else {
    free(blob);
  }
  mq_buf_close(&hb);
  return rc;
}

/* ---- ready / advance ---------------------------------------------------- */

static uint64_t apply_from(const struct mq_raft *r) {
  uint64_t a = r->applied;
  if (r->snap_pending && r->log.snap_index > a) a = r->log.snap_index;
  return a + 1;
}

bool mq_raft_has_ready(struct mq_raft *r) {
  if (r->role == MQ_RAFT_LEADER) raft_leader_flush(r);
  return r->n_out || r->snap_pending || r->snap_wanted ||
         r->commit >= apply_from(r) || r->n_rs || r->role != r->last_role ||
         r->term != r->last_term ||
         !mq_raft_member_eq(r->leader, r->last_leader);
}

void mq_raft_ready(struct mq_raft *r, struct mq_raft_ready *rd) {
  if (r->role == MQ_RAFT_LEADER) raft_leader_flush(r);
  memset(rd, 0, sizeof(*rd));
  rd->role = r->role;
  rd->term = r->term;
  rd->leader = r->leader;
  rd->commit = r->commit;
  rd->role_changed = r->role != r->last_role || r->term != r->last_term ||
                     !mq_raft_member_eq(r->leader, r->last_leader);
  if (r->snap_pending) {
    r->rd_snap.index = r->log.snap_index;
    r->rd_snap.term = r->log.snap_term;
    r->rd_snap.conf = r->snap_conf;
    r->rd_snap.data = r->snap_blob + r->snap_hdr;
    r->rd_snap.len = r->snap_blob_len - r->snap_hdr;
    rd->snapshot = &r->rd_snap;
  }
  uint64_t from = apply_from(r);
  uint64_t applied = from - 1; /* once this batch is applied */
  if (r->commit >= from) {
    assert(from > r->log.snap_index);
    rd->committed = rlog_at(&r->log, from);
    rd->n_committed = (size_t)(r->commit - from + 1);
    applied = r->commit;
    uint64_t n = r->o.snapshot_entries;
    /* Entries cost their payload and their slot in the entry array. */
    uint64_t log_bytes = r->log.bytes + r->log.n * sizeof(struct mq_raft_entry);
    if (r->o.snapshot_bytes && log_bytes >= r->o.snapshot_bytes &&
        (!n || r->commit - r->log.snap_index < n))
      n = r->commit - r->log.snap_index; /* the bytes bound comes first */
    if (n && r->commit - r->log.snap_index >= n && !raft_sending_snapshot(r)) {
      if (r->o.lazy_snapshots) /* drop the oldest eighth: short stalls */
        rd->compact_at = r->commit - n + (n / 8 ? n / 8 : 1);
      else
        rd->snapshot_at = r->commit;
    }
  }
  if (r->snap_wanted && !r->snap_pending && applied >= r->log.snap_index &&
      (applied > r->log.snap_index || !r->snap_blob)) {
    rd->snapshot_at = applied; /* compacts up to there as well */
    rd->compact_at = 0;
  }
  /* Resolve log references in outgoing messages now that the log is still. */
  if (r->cap_rd_msgs < r->n_out) {
    struct mq_raft_msg *p = realloc(r->rd_msgs, r->n_out * sizeof(*p));
    if (p) {
      r->rd_msgs = p;
      r->cap_rd_msgs = r->n_out;
    }
  }
  size_t k = 0;
  for (size_t i = 0; i < r->n_out && k < r->cap_rd_msgs; i++) {
    struct mq_raft_msg m = r->out[i].m;
    if (m.type == MQ_RAFT_MSG_APP && m.n_entries) {
      if (m.index < r->log.snap_index ||
          m.index + m.n_entries > rlog_last(&r->log))
        continue; /* compacted meanwhile: the follower will ask again */
      m.entries = rlog_at(&r->log, m.index + 1);
    } else if (m.type == MQ_RAFT_MSG_SNAP) {
      if (m.snap_index != r->log.snap_index || !r->snap_blob) continue;
      m.data = r->snap_blob + m.index;
    }
    r->rd_msgs[k++] = m;
  }
  rd->msgs = r->rd_msgs;
  rd->n_msgs = k;
  rd->reads = r->rs;
  rd->n_reads = r->n_rs;
}

void mq_raft_advance(struct mq_raft *r, const struct mq_raft_ready *rd) {
  if (rd->snapshot_at) r->snap_wanted = false; /* asked again if still needed */
  if (rd->snapshot) {
    if (rd->snapshot->index > r->applied) r->applied = rd->snapshot->index;
    r->snap_pending = false;
  }
  if (rd->n_committed) {
    uint64_t last = rd->committed[rd->n_committed - 1].index;
    assert(last > r->applied);
#if MQ_BUG(5)
    if (rd->n_committed > 1) last--; /* planted: the last one comes again */
#endif
    r->applied = last;
  }
  r->n_out = 0;
  r->n_rs = 0;
  r->last_role = rd->role;
  r->last_term = rd->term;
  r->last_leader = rd->leader;
}

/* ---- inspection --------------------------------------------------------- */

void mq_raft_status(const struct mq_raft *r, struct mq_raft_status *st) {
  memset(st, 0, sizeof(*st));
  st->self = r->o.self;
  st->leader = r->leader;
  st->vote = r->vote;
  st->voted = r->voted;
  st->role = r->role;
  st->term = r->term;
  st->commit = r->commit;
  st->applied = r->applied;
  st->first_index = r->log.snap_index + 1;
  st->last_index = rlog_last(&r->log);
  st->snap_index = r->log.snap_index;
  st->snap_term = r->log.snap_term;
  st->conf = r->conf;
  st->conf_index = r->conf_index;
  st->removed = r->removed;
}

uint64_t mq_raft_term(const struct mq_raft *r) { return r->term; }

uint64_t mq_raft_commit(const struct mq_raft *r) { return r->commit; }

uint64_t mq_raft_log_bytes(const struct mq_raft *r) {
  return r->log.mapped + r->log.cap * sizeof(struct mq_raft_entry);
}

uint64_t mq_raft_term_at(const struct mq_raft *r, uint64_t index) {
  return rlog_term(&r->log, index);
}

const struct mq_raft_entry *mq_raft_entry_at(const struct mq_raft *r,
                                             uint64_t index) {
  return rlog_at(&r->log, index);
}

uint64_t mq_raft_log_changed_from(struct mq_raft *r) {
  uint64_t c = r->log.changed_from;
  r->log.changed_from = UINT64_MAX;
  return c;
}
