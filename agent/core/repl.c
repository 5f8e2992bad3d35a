/* Leader side of one group: per-follower progress with pipelining and flow
 * control (a bound on appends and bytes in flight), fast backtracking,
 * commitment (§5.3, §5.4.2), heartbeats with check-quorum (diss. §6.2),
 * ReadIndex rounds (diss. §6.4), leadership transfer (diss. §3.10) and
 * snapshot sending in chunks (§7). */
#include <assert.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "util/err.h"

/* ---- in-flight window --------------------------------------------------- */

static void inf_reset(struct progress *p) {
  p->inf_head = p->inf_n = 0;
  p->inf_total = 0;
}

static bool inf_full(const struct mq_raft *r, const struct progress *p) {
  return p->inf_n >= r->o.max_inflight ||
         p->inf_total >= r->o.max_inflight_bytes;
}

static void inf_add(struct progress *p, uint64_t idx, uint64_t bytes) {
  assert(p->inf_n < MQ_RAFT_MAX_INFLIGHT);
  uint32_t k = (p->inf_head + p->inf_n) % MQ_RAFT_MAX_INFLIGHT;
  p->inf_idx[k] = idx;
  p->inf_bytes[k] = bytes;
  p->inf_n++;
  p->inf_total += bytes;
}

static void inf_pop(struct progress *p) {
  p->inf_total -= p->inf_bytes[p->inf_head];
  p->inf_head = (p->inf_head + 1) % MQ_RAFT_MAX_INFLIGHT;
  p->inf_n--;
}

/* Frees every in-flight append that ends at or before idx. */
static void inf_free_to(struct progress *p, uint64_t idx) {
  while (p->inf_n && p->inf_idx[p->inf_head] <= idx) inf_pop(p);
}

/* ---- progress ----------------------------------------------------------- */

static void pr_init(struct progress *p, uint64_t last) {
  memset(p, 0, offsetof(struct progress, inf_idx));
  p->next = last + 1;
  p->state = PR_PROBE;
  inf_reset(p);
  p->snap_index = p->snap_off = p->snap_sent_end = 0;
  p->snap_probe = false;
}

static void pr_probe(struct progress *p) {
  p->state = PR_PROBE;
  p->paused = false;
  inf_reset(p);
}

static void pr_replicate(struct progress *p) {
  p->state = PR_REPLICATE;
  p->next = p->match + 1;
  inf_reset(p);
}

void raft_leader_reset(struct mq_raft *r) {
  uint64_t last = rlog_last(&r->log);
  for (uint32_t i = 0; i < r->conf.n; i++) {
    pr_init(&r->prog[i], last);
    r->prog[i].active = true;
    if (mq_raft_member_eq(r->conf.m[i].id, r->o.self)) r->prog[i].match = last;
  }
}

/* The configuration changed under a leader: keep the progress of members
 * that stay, start fresh for new ones. */
void raft_leader_conf_changed(struct mq_raft *r,
                              const struct mq_raft_conf *old) {
  static_assert(MQ_RAFT_MAX_MEMBERS <= 32, "vote bitmaps are 32 bits");
  struct progress *tmp = malloc(sizeof(r->prog));
  uint64_t last = rlog_last(&r->log);
  if (tmp) memcpy(tmp, r->prog, sizeof(r->prog));
  for (uint32_t i = 0; i < r->conf.n; i++) {
    int j = tmp ? mq_raft_conf_find(old, r->conf.m[i].id) : -1;
    if (j >= 0) {
      r->prog[i] = tmp[j];
    } else {
      pr_init(&r->prog[i], last);
      r->prog[i].active = true;
    }
  }
  free(tmp);
  if (r->transferring && !raft_is_voter(r, r->transferee))
    r->transferring = false;
}

/* ---- sending ------------------------------------------------------------ */

/* Sends slot the chunks of our snapshot from snap_sent_end on, while fewer
 * than snapshot_window of them are unanswered (one after a silence, until
 * an answer comes): a peer stream keeps chunks in order, so several in
 * flight keep a transfer moving across a round trip rather than waiting
 * out one per chunk. */
static void send_chunks(struct mq_raft *r, int slot) {
  struct progress *p = &r->prog[slot];
  if (!r->snap_blob) { /* lazy_snapshots: the bytes come after a ready */
    r->snap_wanted = true;
    return;
  }
  if (p->snap_index != r->log.snap_index) { /* a newer snapshot: restart */
    p->snap_index = r->log.snap_index;
    p->snap_off = p->snap_sent_end = 0;
  }
  uint64_t total = r->snap_blob_len, chunk = r->o.snapshot_chunk;
  uint64_t ahead = (p->snap_probe ? 1 : r->o.snapshot_window) * chunk;
  uint64_t from = p->snap_off;
  uint64_t end = total - from < ahead ? total : from + ahead;
  if (p->snap_sent_end < from) p->snap_sent_end = from;
  while (p->snap_sent_end < end) {
    uint64_t off = p->snap_sent_end,
             n = total - off < chunk ? total - off : chunk;
    struct mq_raft_msg m = {0};
    m.type = MQ_RAFT_MSG_SNAP;
    m.to = r->conf.m[slot].id;
    m.snap_index = r->log.snap_index;
    m.snap_term = r->log.snap_term;
    m.index = off;
    m.hint = total;
    m.len = (size_t)n;
    raft_send_msg(r, &m);
    p->snap_sent_end = off + n;
  }
}

/* Sends the next append to slot if flow control allows; with allow_empty an
 * append without entries goes out as a probe or to carry the commit index. */
static bool send_append(struct mq_raft *r, int slot, bool allow_empty) {
  struct progress *p = &r->prog[slot];
  if (mq_raft_member_eq(r->conf.m[slot].id, r->o.self)) return false;
  if (p->state == PR_SNAPSHOT) {
    send_chunks(r, slot);
    return false;
  }
  if (p->state == PR_PROBE && p->paused) return false;
  if (p->state == PR_REPLICATE && inf_full(r, p)) return false;
  uint64_t prev = p->next - 1, last = rlog_last(&r->log);
  if (prev < r->log.snap_index) { /* §7: the follower needs the snapshot */
    p->state = PR_SNAPSHOT;
    p->snap_index = r->log.snap_index;
    p->snap_off = p->snap_sent_end = 0;
    p->snap_quiet = 0;
    p->snap_probe = false;
    inf_reset(p);
    send_chunks(r, slot);
    return false;
  }
  size_t n = 0;
  uint64_t bytes = 0;
  for (uint64_t i = p->next; i <= last; i++) {
    /* an entry costs its bytes plus its header on the wire, so that even
     * empty entries count toward the message and in-flight limits */
    uint64_t len = rlog_at(&r->log, i)->len + 16;
    if (n && bytes + len > r->o.max_msg_bytes) break;
    n++;
    bytes += len;
  }
  if (!n && !allow_empty &&
      (p->sent_commit >= r->commit || (r->o.lazy_commit && !r->commit_due)))
    return false;
  struct mq_raft_msg m = {0};
  m.type = MQ_RAFT_MSG_APP;
  m.to = r->conf.m[slot].id;
  m.index = prev;
  m.log_term = rlog_term(&r->log, prev);
  m.commit = r->commit;
  m.n_entries = n;
  raft_send_msg(r, &m);
  p->sent_commit = r->commit;
  if (p->state == PR_REPLICATE && n) {
    p->next = prev + n + 1; /* pipelining: optimistic */
    inf_add(p, prev + n, bytes);
  } else if (p->state == PR_PROBE) {
    p->paused = true;
  }
  return n > 0;
}

void raft_send_heartbeats(struct mq_raft *r, uint64_t round) {
  for (uint32_t i = 0; i < r->conf.n; i++) {
    if (mq_raft_member_eq(r->conf.m[i].id, r->o.self)) continue;
    struct mq_raft_msg m = {0};
    m.type = MQ_RAFT_MSG_HEARTBEAT;
    m.to = r->conf.m[i].id;
    /* Never more than the follower is known to match: a follower with a
     * diverging tail must not commit it. */
    m.commit = r->prog[i].match < r->commit ? r->prog[i].match : r->commit;
    m.ctx = round;
    raft_send_msg(r, &m);
  }
}

/* ---- commitment --------------------------------------------------------- */

bool raft_maybe_commit(struct mq_raft *r) {
  /* The voters' match indexes, highest first (insertion sort: a handful of
   * voters, and it runs on every acknowledgement). */
  uint64_t m[MQ_RAFT_MAX_MEMBERS];
  int n = 0;
  for (uint32_t i = 0; i < r->conf.n; i++) {
    if (r->conf.m[i].role != MQ_RAFT_VOTER) continue;
    int j = n++;
    for (; j > 0 && m[j - 1] < r->prog[i].match; j--) m[j] = m[j - 1];
    m[j] = r->prog[i].match;
  }
  if (!n) return false;
  uint64_t c = m[raft_quorum(r) - 1];
  if (c <= r->commit) return false;
#if !MQ_BUG(1)
  /* §5.4.2: only an entry of the current term commits by counting replicas;
   * earlier ones commit with it. */
  if (rlog_term(&r->log, c) != r->term) return false;
#endif
  r->commit = c;
  /* Diss. §4.2.2: a leader removed from the configuration steps down once
   * the change is committed. */
  if (r->conf_index <= r->commit && !raft_is_voter(r, r->o.self)) {
    static const struct mq_raft_member none;
    raft_become_follower(r, r->term, none);
  }
  return true;
}

void raft_leader_flush(struct mq_raft *r) {
  int self = mq_raft_conf_find(&r->conf, r->o.self);
  if (self >= 0) r->prog[self].match = rlog_last(&r->log);
  raft_maybe_commit(r);
  if (r->role != MQ_RAFT_LEADER) return;
  for (uint32_t i = 0; i < r->conf.n; i++) {
    if ((int)i == self) continue;
    struct progress *p = &r->prog[i];
    if (p->state == PR_REPLICATE) {
      while (send_append(r, (int)i, false)) {
      }
    } else {
      send_append(r, (int)i, true);
    }
  }
}

/* ---- responses ---------------------------------------------------------- */

static void release_reads(struct mq_raft *r) {
  size_t done = 0;
  while (done < r->n_reads) {
    struct read_req *q = &r->reads[done];
    int acks = 0;
    for (uint32_t i = 0; i < r->conf.n; i++) {
      if (r->conf.m[i].role != MQ_RAFT_VOTER) continue;
      if (mq_raft_member_eq(r->conf.m[i].id, r->o.self) ||
          r->prog[i].read_ack >= q->round)
        acks++;
    }
    if (acks < raft_quorum(r)) break;
    raft_push_read_state(r, q->ctx, q->index);
    done++;
  }
  if (done == 0) return; /* r->reads may be NULL: no pointer arithmetic on it */
  memmove(r->reads, r->reads + done, (r->n_reads - done) * sizeof(*r->reads));
  r->n_reads -= done;
}

static void maybe_timeout_now(struct mq_raft *r, int slot) {
  if (!r->transferring || !mq_raft_member_eq(r->conf.m[slot].id, r->transferee))
    return;
  if (r->prog[slot].match != rlog_last(&r->log)) return;
  struct mq_raft_msg m = {0};
  m.type = MQ_RAFT_MSG_TIMEOUT_NOW;
  m.to = r->transferee;
  raft_send_msg(r, &m);
}

static void on_append_resp(struct mq_raft *r, int slot,
                           const struct mq_raft_msg *m) {
  struct progress *p = &r->prog[slot];
  if (m->flags & MQ_RAFT_FLAG_REJECT) {
    /* Fast backtracking: skip every entry of a term the follower lacks. */
    uint64_t hint = m->hint;
    if (m->log_term) hint = rlog_conflict_by_term(&r->log, hint, m->log_term);
    if (p->state == PR_SNAPSHOT) return;
    if (p->state == PR_REPLICATE ? m->index <= p->match
                                 : p->next - 1 != m->index)
      return; /* stale */
    uint64_t last = rlog_last(&r->log);
    if (hint > last) hint = last; /* the hint came over the network */
    uint64_t next = m->index < hint + 1 ? m->index : hint + 1;
    p->next = next > p->match + 1 ? next : p->match + 1;
    pr_probe(p);
    send_append(r, slot, true);
    return;
  }
  if (m->index > rlog_last(&r->log)) return; /* nonsense */
  bool moved = m->index > p->match;
  if (moved) p->match = m->index;
  if (p->next < p->match + 1) p->next = p->match + 1;
  if (moved || (p->state == PR_PROBE && p->match == m->index)) {
    if (p->state == PR_PROBE ||
        (p->state == PR_SNAPSHOT && p->match >= p->snap_index))
      pr_replicate(p);
    else if (p->state == PR_REPLICATE)
      inf_free_to(p, m->index);
    raft_maybe_commit(r);
    if (r->role != MQ_RAFT_LEADER) return;
    maybe_timeout_now(r, slot);
  }
}

int raft_leader_step(struct mq_raft *r, const struct mq_raft_msg *m) {
  int slot = mq_raft_conf_find(&r->conf, m->from);
  if (slot < 0) return 0;
  struct progress *p = &r->prog[slot];
  switch (m->type) {
  case MQ_RAFT_MSG_APP_RESP:
    p->active = true;
    on_append_resp(r, slot, m);
    return 0;
  case MQ_RAFT_MSG_HEARTBEAT_RESP:
    p->active = true;
    if (p->state == PR_PROBE) p->paused = false;
    if (p->state == PR_REPLICATE && inf_full(r, p)) inf_pop(p);
    /* Chunks unanswered for two heartbeats may be lost: send the first
     * again, alone. Sooner, they are most likely still moving (a large
     * snapshot spans many heartbeats), and copies would only add to what
     * is in flight. */
    if (p->state == PR_SNAPSHOT && p->snap_quiet >= 2 * r->o.heartbeat_ticks) {
      p->snap_sent_end = p->snap_off;
      p->snap_probe = true;
    }
    if (p->match < rlog_last(&r->log) || p->state == PR_SNAPSHOT)
      send_append(r, slot, true);
    if (m->ctx > p->read_ack) {
      p->read_ack = m->ctx;
      release_reads(r);
    }
    return 0;
  case MQ_RAFT_MSG_SNAP_RESP:
    p->active = true;
    if (p->state != PR_SNAPSHOT || m->snap_index != p->snap_index) return 0;
    p->snap_quiet = 0;
    p->snap_probe = false;
    /* The answer holds what the follower has; the window moves with it.
     * A gap the chunks in flight leave (one was lost, or the follower
     * started over) is resent after the silence that follows. A copy
     * resent on a heartbeat is answered too, but answers only move the
     * window, so copies never add to what is in flight for good. */
    p->snap_off = (m->flags & MQ_RAFT_FLAG_REJECT) ? 0 : m->index;
    if (p->snap_off >= r->snap_blob_len) p->snap_off = 0;
    send_chunks(r, slot);
    return 0;
  default:
    return 0;
  }
}

/* True while a follower that answers takes our snapshot in chunks:
 * compacting the log now would replace the snapshot and start its
 * transfer over, and a large one under steady writes would never land.
 * The log grows meanwhile; a follower silent for two election timeouts
 * no longer holds it back. */
bool raft_sending_snapshot(const struct mq_raft *r) {
  if (r->role != MQ_RAFT_LEADER) return false;
  for (uint32_t i = 0; i < r->conf.n; i++)
    if (r->prog[i].state == PR_SNAPSHOT &&
        r->prog[i].snap_quiet < 2 * r->o.election_ticks)
      return true;
  return false;
}

void raft_leader_tick(struct mq_raft *r) {
  r->elapsed++;
  r->hb_elapsed++;
  for (uint32_t i = 0; i < r->conf.n; i++)
    if (r->prog[i].state == PR_SNAPSHOT && r->prog[i].snap_quiet < UINT32_MAX)
      r->prog[i].snap_quiet++;
  if (r->transferring && ++r->transfer_elapsed >= r->o.election_ticks)
    r->transferring = false;
  if (r->elapsed >= r->o.election_ticks) {
    r->elapsed = 0;
    /* Check-quorum (diss. §6.2): without a quorum heard from in an
     * election timeout, stop serving as leader. */
    int active = 0;
    for (uint32_t i = 0; i < r->conf.n; i++) {
      bool self = mq_raft_member_eq(r->conf.m[i].id, r->o.self);
      if (r->conf.m[i].role == MQ_RAFT_VOTER && (self || r->prog[i].active))
        active++;
      r->prog[i].active = false;
    }
    if (active < raft_quorum(r)) {
      static const struct mq_raft_member none;
      raft_become_follower(r, r->term, none);
      return;
    }
  }
  if (r->hb_elapsed >= r->o.heartbeat_ticks) {
    r->hb_elapsed = 0;
    raft_send_heartbeats(r, r->n_reads ? r->read_round : 0);
  }
}
