/* Follower side of one group: accepting appends (§5.3 consistency check and
 * conflict truncation, with a hint for fast backtracking), heartbeats, and
 * receiving and installing a snapshot in chunks (§7). Every field of an
 * incoming message is validated here: nothing from the network asserts. */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "util/err.h"

static void reply(struct mq_raft *r, const struct mq_raft_msg *m,
                  struct mq_raft_msg *resp) {
  resp->to = m->from;
  raft_send_msg(r, resp);
}

/* Entries must be consecutive, of terms that never decrease and never
 * exceed the leader's, of known types; configurations must decode. */
static bool entries_valid(const struct mq_raft_msg *m) {
  uint64_t prev_term = m->log_term;
  for (size_t i = 0; i < m->n_entries; i++) {
    const struct mq_raft_entry *e = &m->entries[i];
    if (e->index != m->index + 1 + i) return false;
    if (e->term < prev_term || e->term > m->term || e->term == 0) return false;
    if (e->type > MQ_RAFT_ENTRY_CONF) return false;
    if (e->len && !e->data) return false;
    struct mq_raft_conf c;
    if (e->type == MQ_RAFT_ENTRY_CONF &&
        mq_raft_conf_decode(&c, e->data, e->len))
      return false;
    prev_term = e->term;
  }
  return true;
}

void raft_handle_append(struct mq_raft *r, const struct mq_raft_msg *m) {
  struct mq_raft_msg resp = {0};
  resp.type = MQ_RAFT_MSG_APP_RESP;
  if (!entries_valid(m)) return;
  if (m->index < r->commit) { /* everything up to commit already matches */
    resp.index = r->commit;
    reply(r, m, &resp);
    return;
  }
  if (!rlog_match(&r->log, m->index, m->log_term)) {
    /* §5.3 consistency check failed. Hint: the last index whose term is
     * not above the leader's term at m->index, so the leader can skip a
     * whole term per round trip. */
    uint64_t last = rlog_last(&r->log);
    uint64_t hint = m->index < last ? m->index : last;
    hint = rlog_conflict_by_term(&r->log, hint, m->log_term);
    resp.flags = MQ_RAFT_FLAG_REJECT;
    resp.index = m->index;
    resp.hint = hint;
    resp.log_term = rlog_term(&r->log, hint);
    reply(r, m, &resp);
    return;
  }
  for (size_t i = 0; i < m->n_entries; i++) {
    const struct mq_raft_entry *e = &m->entries[i];
    uint64_t idx = e->index;
    if (idx <= rlog_last(&r->log)) {
      if (rlog_term(&r->log, idx) == e->term) continue;
      if (idx <= r->commit) return; /* would undo a commit: not a real leader */
      rlog_truncate(&r->log, idx);  /* §5.3: delete the conflict and after */
      if (r->conf_index >= idx) raft_reload_conf(r);
    }
    if (raft_append_entry(r, e->term, e->type, e->data, e->len)) return;
  }
  uint64_t last_new = m->index + m->n_entries;
  raft_commit_to(r, m->commit < last_new ? m->commit : last_new);
  resp.index = last_new;
  reply(r, m, &resp);
}

void raft_handle_heartbeat(struct mq_raft *r, const struct mq_raft_msg *m) {
  raft_commit_to(r, m->commit); /* the leader sends at most our match */
  struct mq_raft_msg resp = {0};
  resp.type = MQ_RAFT_MSG_HEARTBEAT_RESP;
  resp.ctx = m->ctx;
  reply(r, m, &resp);
}

static void snap_resp(struct mq_raft *r, const struct mq_raft_msg *m,
                      uint64_t next, bool reject) {
  struct mq_raft_msg resp = {0};
  resp.type = MQ_RAFT_MSG_SNAP_RESP;
  resp.snap_index = m->snap_index;
  resp.index = next;
  resp.flags = reject ? MQ_RAFT_FLAG_REJECT : 0;
  reply(r, m, &resp);
}

/* §7: install a complete snapshot. If the log has the entry the snapshot
 * ends with, the entries after it stay; otherwise the whole log goes. */
static void install(struct mq_raft *r, const struct mq_raft_msg *m) {
  struct mq_reader rd;
  mq_reader_init(&rd, r->rx.data, r->rx.len);
  size_t clen;
  const uint8_t *cb = mq_get_bytes(&rd, &clen, r->rx.len);
  struct mq_raft_conf conf;
  if (rd.err || mq_raft_conf_decode(&conf, cb, clen)) {
    mq_buf_reset(&r->rx);
    r->rx_index = r->rx_term = 0;
    return;
  }
  size_t hdr = (size_t)(rd.p - r->rx.data);
  uint64_t idx = r->rx_index, term = r->rx_term;
  bool keep = rlog_match(&r->log, idx, term);
#if MQ_BUG(4)
  keep = true; /* planted: cut only the prefix, keep a conflicting suffix */
#endif
  if (!keep && rlog_last(&r->log) > r->log.snap_index)
    rlog_truncate(&r->log, r->log.snap_index + 1);
  rlog_compact(&r->log, idx, term);
  raft_snap_blob_free(r);
  r->snap_blob = mq_buf_steal(&r->rx, &r->snap_blob_len);
  r->snap_hdr = hdr;
  r->snap_conf = conf;
  r->rx_index = r->rx_term = 0;
  r->commit = idx;
  r->snap_pending = true;
  raft_reload_conf(r);
  struct mq_raft_msg resp = {0};
  resp.type = MQ_RAFT_MSG_APP_RESP;
  resp.index = idx;
  reply(r, m, &resp);
}

void raft_handle_snapshot(struct mq_raft *r, const struct mq_raft_msg *m) {
  uint64_t total = m->hint, off = m->index;
  if (m->snap_index == 0 || m->snap_term == 0 || m->snap_term > m->term ||
      total == 0 || total > r->o.max_snapshot_bytes || off > total ||
      m->len > total - off)
    return;
  if (m->snap_index <= r->commit) { /* we already have all of it */
    struct mq_raft_msg resp = {0};
    resp.type = MQ_RAFT_MSG_APP_RESP;
    resp.index = r->commit;
    reply(r, m, &resp);
    return;
  }
  if (r->rx_index != m->snap_index || r->rx_term != m->snap_term || off == 0) {
    if (off != 0) {
      snap_resp(r, m, 0, true); /* start over from the first chunk */
      return;
    }
    mq_buf_reset(&r->rx);
    r->rx_index = m->snap_index;
    r->rx_term = m->snap_term;
  }
  if (off > r->rx.len) { /* a gap: ask for what we lack */
    snap_resp(r, m, r->rx.len, false);
    return;
  }
  if (off + m->len > r->rx.len) {
    size_t skip = (size_t)(r->rx.len - off);
    mq_buf_put(&r->rx, m->data + skip, m->len - skip);
    if (r->rx.err) {
      mq_buf_reset(&r->rx);
      r->rx_index = r->rx_term = 0;
      return;
    }
  }
  if (r->rx.len == total) {
    install(r, m);
    return;
  }
  snap_resp(r, m, r->rx.len, false);
}
