/* The Raft groups of the shards this agent holds, driven by the core loop.
 *
 * Per ready batch, in the order core/raft.h prescribes: install a snapshot
 * (decoded off the loop where the io has threads, cluster/install.h: the
 * entries committed meanwhile apply once it is in), hand the messages to
 * the host (one frame per peer), apply committed entries to the shard state
 * machine and complete the requests waiting on them, serve ReadIndex reads
 * whose index is applied, advance, then compact
 * the log when the core asks for it: without a snapshot, dropping the
 * oldest eighth of --snapshot-entries, or behind a snapshot of the shard
 * taken then when a replica is too far behind for the log to catch it up.
 *
 * A request waiting on a log entry knows the (term, index) its proposal was
 * given. When that index is applied with that term the request succeeded;
 * with another term (or a no-op) it was lost to a leader change and goes
 * back to routing, which retries it at the new leader under the same
 * request id, so it is applied at most once. */
#include "cluster/internal.h"
#include "util/forkjob.h"
#include "util/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

bool replica_is_leader(const struct shard *s) { return s->raft && s->role == MQ_RAFT_LEADER; }

bool replica_authoritative(const struct shard *s) {
  if (!replica_is_leader(s))
    return false;
  uint64_t commit = mq_raft_commit(s->raft);
  return s->applied >= commit && mq_raft_term_at(s->raft, commit) == mq_raft_term(s->raft);
}

bool replica_writable(struct mq_node *n, struct shard *s) {
  if (s->placed)
    return true;
  struct member *want[8];
  size_t k = members_placement(n, s->id, want, 8);
  struct mq_raft_status rs;
  mq_raft_status(s->raft, &rs);
  size_t voters = 0;
  for (uint32_t i = 0; i < rs.conf.n; i++)
    voters += rs.conf.m[i].role == MQ_RAFT_VOTER;
  /* The latest configuration counts: the leader already needs the new
   * voter's acknowledgement for anything after a promotion in its log. */
  s->placed = voters >= k / 2 + 1;
  return s->placed;
}

static void publish_memory(struct shard *s) {
  struct mq_sm_memory m;
  mq_sm_memory(s->sm, &m);
  uint64_t v[MQ_MEM_STRUCTURES] = {
      [MQ_MEM_KV_RECORDS] = m.kv_records,
      [MQ_MEM_KV_INDEX] = m.kv_index,
      [MQ_MEM_RAFT_LOG] = s->raft ? mq_raft_log_bytes(s->raft) : 0,
      [MQ_MEM_WATCH_HISTORY] = m.watch_history,
      [MQ_MEM_REQUEST_IDS] = m.request_ids,
      [MQ_MEM_TOPIC_LOGS] = m.topic_logs,
  };
  for (int i = 0; i < MQ_MEM_STRUCTURES; i++)
    atomic_store_explicit(&s->pub_mem[i], v[i], memory_order_relaxed);
}

static void publish(struct mq_node *n, struct shard *s) {
  atomic_store_explicit(&s->pub_commit, mq_raft_commit(s->raft), memory_order_relaxed);
  atomic_store_explicit(&s->pub_term, mq_raft_term(s->raft), memory_order_relaxed);
  atomic_store_explicit(&s->pub_applied, s->applied, memory_order_relaxed);
  if (s->sm) {
    atomic_store_explicit(&s->pub_keys, mq_sm_key_count(s->sm), memory_order_relaxed);
    atomic_store_explicit(&s->pub_bytes, mq_sm_bytes(s->sm), memory_order_relaxed);
    publish_memory(s);
    atomic_store_explicit(&s->pub_revision, mq_sm_revision(s->sm), memory_order_relaxed);
  }
  bool was = atomic_load_explicit(&s->pub_leader, memory_order_relaxed);
  bool is = replica_is_leader(s);
  if (was != is) {
    atomic_store_explicit(&s->pub_leader, is, memory_order_relaxed);
    atomic_fetch_add(&n->led_shards, is ? 1 : -1);
  }
}

int replica_create(struct mq_node *n, struct shard *s, const struct mq_raft_conf *initial) {
  if (s->raft)
    return MQ_EEXIST;
  int rc = mq_sm_new(&s->sm, s->id, &n->limits);
  if (rc)
    return rc;
  s->sm_baseline = mq_sm_budget_bytes(s->sm);
  const struct mq_config *cfg = n->cfg;
  struct mq_raft_options o;
  mq_raft_options_default(&o);
  o.group = (uint64_t)s->id;
  o.self = n->self;
  int hb = cfg->heartbeat_ms > 0 ? cfg->heartbeat_ms : 100;
  o.heartbeat_ticks = 1;
  o.election_ticks = (uint32_t)(cfg->election_timeout_ms / hb);
  if (o.election_ticks < 2)
    o.election_ticks = 2;
  o.snapshot_entries = cfg->snapshot_entries;
  o.snapshot_bytes = cfg->raft_log_bytes;
  /* Serializing a shard stalls the loop for milliseconds: only do it when
   * a replica needs the bytes, and otherwise just drop old log entries. */
  o.lazy_snapshots = true;
  /* An append of its own to tell each follower of every commit is two more
   * peer messages per write at low rates; replica_flush_commits() sends
   * them once per loop tick instead (busy groups carry the commit index
   * in their next append anyway). */
  o.lazy_commit = true;
  o.max_snapshot_bytes = cfg->memory_budget_bytes ? cfg->memory_budget_bytes : o.max_snapshot_bytes;
  o.seed = n->io->random(n->io);
  rc = mq_raft_host_add(&n->host, &o, initial, &s->raft);
  if (rc) {
    mq_sm_free(s->sm);
    s->sm = NULL;
    return rc;
  }
  s->applied = 0;
  s->was_member = initial != NULL;
  s->stray_since_ms = 0;
  s->placed = false;
  s->role = MQ_RAFT_FOLLOWER;
  s->term = 0;
  memset(&s->leader, 0, sizeof s->leader);
  /* A group founded with this agent as its only voter need not wait for an
   * election timeout. */
  if (initial && initial->n == 1)
    mq_raft_campaign(s->raft);
  mq_info("raft", "shard %d: replica created (%s)", s->id,
          initial ? "founding member" : "joining an existing group");
  return 0;
}

/* Hands every request still waiting on this shard back to routing. */
static void requeue_waiting(struct mq_node *n, struct shard *s, const char *why) {
  struct req_list *lists[] = {&s->proposals, &s->reads_wait_ctx, &s->reads_wait_apply,
                              &s->reads_retry};
  for (size_t i = 0; i < sizeof lists / sizeof lists[0]; i++) {
    struct mq_req *r;
    while ((r = rl_pop(lists[i])))
      route_requeue(n, r, MQ_ENOTLEADER, why);
  }
}

/* ---- snapshots for followers ------------------------------------------- */

/* A leader makes a shard's bytes only when a follower needs them (lazy
 * snapshots, core/raft.h). Serializing a large shard in the loop would
 * stall every shard of the agent (about 0.6 s for a million keys): where
 * the io allows it, a forked child writes them from a copy-on-write image
 * of the shard at the asked index, and replica_snapshot_tick reads them in
 * pieces. The core asks again while a follower still needs them, so a job
 * that fails or comes too late costs only time. */
#define SNAP_JOBS_MAX 2         /* children at once: each may copy pages */
#define SNAP_JOB_FAILURES_MAX 3 /* in a row, then build in place */
#define SNAP_ROOM 4096          /* for the core's header (mq_raft_compact_adopt) */
#define SNAP_READ_PER_TICK (4u << 20)

static int snapshot_child(void *arg, struct mq_buf *out) { return mq_sm_snapshot(arg, out); }

static void snapshot_job_end(struct mq_node *n, struct shard *s) {
  if (!s->snap_job)
    return;
  mq_forkjob_free(s->snap_job);
  s->snap_job = NULL;
  n->snap_jobs--;
}

/* False when the bytes come later (or not at all this time): the core asks
 * again at once, for as long as a follower waits for them. */
static bool snapshot_wanted(struct mq_node *n, struct shard *s, uint64_t index) {
  if (s->snap_job)
    return false; /* the one being built may still do; if not, asked again */
  if (s->install || s->install_failed)
    return false; /* the state is not the one at index yet */
  if (n->io->background_snapshots && !n->snap_jobs_off) {
    if (n->snap_jobs >= SNAP_JOBS_MAX)
      return false;
    int rc = mq_forkjob_start(&s->snap_job, snapshot_child, s->sm, SNAP_ROOM);
    if (rc == 0) {
      n->snap_jobs++;
      s->snap_job_index = index;
      mq_debug("raft", "shard %d: building the snapshot at index %llu in a child", s->id,
               (unsigned long long)index);
      return false;
    }
    mq_warn("raft",
            "shard %d: cannot fork to build a snapshot (%s): building snapshots in the "
            "loop from now on, which stalls it while a large shard is written",
            s->id, strerror(errno));
    n->snap_jobs_off = true;
  }
  mq_buf_reset(&n->scratch);
  if (mq_sm_snapshot(s->sm, &n->scratch) == 0 && !n->scratch.err &&
      mq_raft_compact(s->raft, index, n->scratch.data, n->scratch.len) == 0)
    atomic_fetch_add_explicit(&n->m_snap_built_loop, 1, memory_order_relaxed);
  return true;
}

void replica_snapshot_tick(struct mq_node *n) {
  for (int i = 0; i < n->n_shards && n->snap_jobs; i++) {
    struct shard *s = &n->shards[i];
    if (!s->snap_job)
      continue;
    uint8_t *data = NULL;
    size_t len = 0;
    int rc = mq_forkjob_poll(s->snap_job, SNAP_READ_PER_TICK, &data, &len);
    if (rc == 0)
      continue;
    snapshot_job_end(n, s);
    if (rc < 0) {
      mq_warn("raft", "shard %d: the child building its snapshot failed (%s)", s->id,
              mq_strerror(rc));
      if (++n->snap_job_failures >= SNAP_JOB_FAILURES_MAX) {
        mq_warn("raft",
                "%d snapshot children failed in a row: building snapshots in the loop "
                "from now on",
                n->snap_job_failures);
        n->snap_jobs_off = true;
      }
      continue;
    }
    n->snap_job_failures = 0;
    rc = mq_raft_compact_adopt(s->raft, s->snap_job_index, data, SNAP_ROOM, len);
    if (rc)
      mq_debug("raft", "shard %d: the snapshot at index %llu came too late (%s)", s->id,
               (unsigned long long)s->snap_job_index, mq_strerror(rc));
    else {
      atomic_fetch_add_explicit(&n->m_snap_built_child, 1, memory_order_relaxed);
      mq_debug("raft", "shard %d: snapshot at index %llu built (%zu bytes)", s->id,
               (unsigned long long)s->snap_job_index, len);
    }
  }
}

void replica_destroy(struct mq_node *n, struct shard *s) {
  if (!s->raft)
    return;
  requeue_waiting(n, s, "this agent no longer holds the shard");
  if (atomic_load_explicit(&s->pub_leader, memory_order_relaxed)) {
    atomic_store_explicit(&s->pub_leader, false, memory_order_relaxed);
    atomic_fetch_sub(&n->led_shards, 1);
  }
  snapshot_job_end(n, s);
  mq_install_end(s->install, &n->reaper);
  s->install = NULL;
  s->install_failed = false;
  mq_raft_host_remove(&n->host, (uint64_t)s->id);
  s->raft = NULL;
  mq_sm_free(s->sm);
  s->sm = NULL;
  s->applied = 0;
  s->role = MQ_RAFT_FOLLOWER;
  atomic_store_explicit(&s->pub_keys, 0, memory_order_relaxed);
  atomic_store_explicit(&s->pub_bytes, 0, memory_order_relaxed);
  for (int i = 0; i < MQ_MEM_STRUCTURES; i++)
    atomic_store_explicit(&s->pub_mem[i], 0, memory_order_relaxed);
  mq_info("raft", "shard %d: replica removed from this agent", s->id);
}

void replica_fail_all(struct mq_node *n, int code, const char *msg) {
  for (int i = 0; i < n->n_shards; i++) {
    struct shard *s = &n->shards[i];
    struct req_list *lists[] = {&s->proposals, &s->reads_wait_ctx, &s->reads_wait_apply,
                                &s->reads_retry};
    for (size_t k = 0; k < sizeof lists / sizeof lists[0]; k++) {
      struct mq_req *r;
      while ((r = rl_pop(lists[k]))) {
        mq_status_set(&r->status, code, "%s", msg);
        mq_req_complete(n, r);
      }
    }
  }
  struct mq_req *r;
  while ((r = rl_pop(&n->fwd_pending)))
    rl_push(&n->retry, r);
  while ((r = rl_pop(&n->retry))) {
    mq_status_set(&r->status, code, "%s", msg);
    mq_req_complete(n, r);
  }
}

/* ------------------------------------------------------------------------ */
/* Proposals and reads */

void replica_propose(struct mq_node *n, struct shard *s, const struct mq_cmd *c, struct mq_req *r) {
  mq_buf_reset(&n->scratch);
  if (mq_cmd_encode(c, &n->scratch) || n->scratch.err) {
    if (r) {
      mq_status_set(&r->status, MQ_ENOMEM, "out of memory encoding the command");
      mq_req_complete(n, r);
    }
    return;
  }
  uint64_t term = 0, index = 0;
  int rc = mq_raft_propose(s->raft, n->scratch.data, n->scratch.len, &term, &index);
  if (rc) {
    if (!r)
      return;
    if (rc == MQ_EINVAL) {
      mq_status_set(&r->status, MQ_EINVAL, "command of %zu bytes is too large to replicate",
                    n->scratch.len);
      mq_req_complete(n, r);
      return;
    }
    route_requeue(n, r, rc, rc == MQ_ENOTLEADER ? "not the leader" : "leadership transfer");
    return;
  }
  if (r) {
    r->p_term = term;
    r->p_index = index;
    rl_push(&s->proposals, r);
  }
}

void replica_read(struct mq_node *n, struct shard *s, struct mq_req *r) {
  uint64_t ctx = ++n->next_ctx;
  int rc = mq_raft_read_index(s->raft, ctx);
  if (rc == MQ_EUNAVAIL) {
    rl_push(&s->reads_retry, r); /* the new leader has not committed yet */
    return;
  }
  if (rc) {
    route_requeue(n, r, rc, "not the leader");
    return;
  }
  r->p_ctx = ctx;
  rl_push(&s->reads_wait_ctx, r);
}

static void serve_applied_reads(struct mq_node *n, struct shard *s) {
  struct req_list keep = {0};
  struct mq_req *r;
  while ((r = rl_pop(&s->reads_wait_apply))) {
    if (r->p_index <= s->applied)
      exec_read_now(n, s, r);
    else
      rl_push(&keep, r);
  }
  s->reads_wait_apply = keep;
}

static void on_read_state(struct mq_node *n, struct shard *s, const struct mq_raft_read_state *rs) {
  struct req_list keep = {0};
  struct mq_req *r;
  while ((r = rl_pop(&s->reads_wait_ctx))) {
    if (r->p_ctx == rs->ctx) {
      r->p_index = rs->index;
      rl_push(&s->reads_wait_apply, r);
    } else {
      rl_push(&keep, r);
    }
  }
  s->reads_wait_ctx = keep;
}

/* Requests still waiting on Raft when their deadline is near fail
 * UNAVAILABLE (the outcome of a write is then unknown, as the message says)
 * instead of outliving the caller: an isolated leader keeps its proposals
 * until check-quorum demotes it. */
static void expire_waiting(struct mq_node *n, struct shard *s, struct req_list *l, bool write) {
  int64_t now = node_now(n);
  struct req_list keep = {0};
  struct mq_req *r;
  while ((r = rl_pop(l))) {
    if (r->deadline_ms && now + 60 >= r->deadline_ms) {
      mq_status_set(&r->status, MQ_EUNAVAIL,
                    write ? "shard %d did not commit the write before the deadline (no quorum?); "
                            "its outcome is unknown"
                          : "shard %d could not confirm leadership for the read before the "
                            "deadline (no quorum?)",
                    s->id);
      mq_req_complete(n, r);
    } else {
      rl_push(&keep, r);
    }
  }
  *l = keep;
}

void replica_expire(struct mq_node *n) {
  for (int i = 0; i < n->n_shards; i++) {
    struct shard *s = &n->shards[i];
    expire_waiting(n, s, &s->proposals, true);
    expire_waiting(n, s, &s->reads_wait_ctx, false);
    expire_waiting(n, s, &s->reads_wait_apply, false);
  }
}

void replica_tick(struct mq_node *n) {
  mq_raft_host_tick(&n->host);
  /* Reads that found a leader without a commit in its term try again. */
  for (int i = 0; i < n->n_shards; i++) {
    struct shard *s = &n->shards[i];
    if (rl_empty(&s->reads_retry))
      continue;
    struct req_list again = s->reads_retry;
    s->reads_retry = (struct req_list){0};
    struct mq_req *r;
    while ((r = rl_pop(&again))) {
      if (s->raft && replica_is_leader(s))
        replica_read(n, s, r);
      else
        route_requeue(n, r, MQ_ENOTLEADER, "leadership changed");
    }
  }
}

void replica_flush_commits(struct mq_node *n) {
  for (int i = 0; i < n->n_shards; i++)
    if (n->shards[i].raft)
      mq_raft_flush_commit(n->shards[i].raft);
}

/* ------------------------------------------------------------------------ */
/* Apply */

static void finish_write(struct mq_req *r, struct shard *s, const struct mq_apply_result *res) {
  r->status = res->status;
  if (res->duplicate && res->status.code == MQ_ECOMPACTED)
    /* A retry of this write arrived after more than a window of newer
     * writes from this agent: whether the first attempt applied can no
     * longer be told. That is an unknown outcome, not a range error. */
    mq_status_set(&r->status, MQ_EUNAVAIL,
                  "shard %d: the write was retried too late to tell whether its first attempt "
                  "applied; its outcome is unknown",
                  s->id);
  r->shard = s->id;
  r->revision = res->revision;
  r->deleted = res->deleted;
  r->out_offset = res->offset;
  r->ingest_recorded = res->ingest_recorded;
  if (res->has_previous && !r->status.code) {
    const struct mq_kv *p = &res->previous;
    r->kv = *p;
    r->has_kv =
        req_copy_pair(p->key, p->key_len, p->value, p->value_len, &r->kv.key, &r->kv.value) == 0;
    if (!r->has_kv)
      memset(&r->kv, 0, sizeof r->kv); /* out of memory: answer without previous */
  }
}

/* Completes (or hands back) the proposals waiting on indexes <= index; the
 * entry at `index` has term `term` and, if it is ours, result res. */
static void resolve_proposals(struct mq_node *n, struct shard *s, uint64_t index, uint64_t term,
                              const struct mq_apply_result *res) {
  while (s->proposals.head && s->proposals.head->p_index <= index) {
    struct mq_req *r = rl_pop(&s->proposals);
    if (r->p_index == index && r->p_term == term && res) {
      finish_write(r, s, res);
      mq_req_complete(n, r);
    } else {
      route_requeue(n, r, MQ_ENOTLEADER, "entry lost to a leader change");
    }
  }
}

static void apply_normal(struct mq_node *n, struct shard *s, const struct mq_raft_entry *e) {
  struct mq_cmd c;
  int rc = mq_cmd_decode(e->data, e->len, &c);
  if (rc) {
    /* Every replica decodes the same bytes the same way: skipping is the
     * same on all of them. */
    mq_error("store", "shard %d: log entry %llu does not decode: %s", s->id,
             (unsigned long long)e->index, mq_strerror(rc));
    resolve_proposals(n, s, e->index, 0, NULL);
    return;
  }
  struct mq_apply_result res;
  mq_sm_apply(s->sm, e->index, &c, &res);
  if (c.type != MQ_CMD_EXPIRE)
    n->writes_applied++;
  else if (res.revision)
    atomic_fetch_add_explicit(&n->m_expired, 1, memory_order_relaxed);
  if (res.has_event) {
    mq_watch_dispatch(n, &res.event);
    if (n->parked)
      follow_on_event(n, s);
  }
  resolve_proposals(n, s, e->index, e->term, &res);
}

static void log_conf(struct shard *s, const struct mq_raft_entry *e) {
  struct mq_raft_conf conf;
  if (mq_raft_conf_decode(&conf, e->data, e->len) == 0)
    mq_debug("raft", "shard %d: configuration at index %llu has %u members", s->id,
             (unsigned long long)e->index, conf.n);
}

/* True once this agent has been a member of the shard's configuration and
 * an applied configuration no longer includes it, or a member of a later
 * committed one said so (core/raft.h: removed). A replica that joins
 * replays older configurations without itself first: that is not removal. */
static bool removed_from_group(struct mq_node *n, struct shard *s) {
  struct mq_raft_status rs;
  mq_raft_status(s->raft, &rs);
  if (rs.removed) {
    mq_info("raft",
            "shard %d: a later configuration of the group does not include this "
            "agent (it missed its removal)",
            s->id);
    return true;
  }
  if (mq_raft_conf_find(&rs.conf, n->self) >= 0) {
    s->was_member = true;
    return false;
  }
  return s->was_member && rs.conf_index <= s->applied;
}

static void apply_entry(struct mq_node *n, struct shard *s, const struct mq_raft_entry *e) {
  if (e->type == MQ_RAFT_ENTRY_NORMAL)
    apply_normal(n, s, e);
  else {
    if (e->type == MQ_RAFT_ENTRY_CONF)
      log_conf(s, e);
    resolve_proposals(n, s, e->index, 0, NULL);
  }
  s->applied = e->index;
}

/* An install that cannot finish: its bytes do not decode (a bug or
 * corruption) or an entry to apply after it could not be kept (out of
 * memory). The core counts the snapshot installed, so the entries after it
 * would apply to the wrong state: the shard applies nothing more, and the
 * log says so loudly. */
static void install_abandon(struct mq_node *n, struct shard *s, uint64_t index, size_t len,
                            const char *why, int rc) {
  mq_install_end(s->install, &n->reaper);
  s->install = NULL;
  s->install_failed = true;
  mq_error("raft",
           "shard %d: cannot install snapshot at index %llu (%zu bytes): %s: %s; the shard "
           "stays at index %llu and applies nothing more: restart this agent (it rejoins as a "
           "new incarnation and receives the shard again)",
           s->id, (unsigned long long)index, len, why, mq_strerror(rc),
           (unsigned long long)s->applied);
  publish(n, s);
}

struct kept_ctx {
  struct mq_node *n;
  struct shard *s;
};

static void apply_kept(void *arg, const struct mq_raft_entry *e) {
  struct kept_ctx *c = arg;
  apply_entry(c->n, c->s, e);
}

/* Swaps the decoded state in once its thread is done. False while it
 * still decodes, or when the install was abandoned. */
static bool install_swap_in(struct mq_node *n, struct shard *s) {
  struct mq_install *j = s->install;
  int rc;
  int64_t ms;
  if (!mq_install_done(j, &rc, &ms))
    return false;
  uint64_t index = mq_install_index(j);
  size_t len = mq_install_bytes(j);
  if (rc) {
    install_abandon(n, s, index, len, "its bytes do not decode", rc);
    return false;
  }
  mq_install_swap(j, s->sm);
  s->applied = index;
  atomic_fetch_add_explicit(&n->m_snapshots_installed, 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&n->m_snapshot_bytes, len, memory_order_relaxed);
  mq_info("raft",
          "shard %d: installed snapshot at index %llu term %llu (%zu bytes, decoded in %lld "
          "ms; %zu entries committed meanwhile follow)",
          s->id, (unsigned long long)index, (unsigned long long)mq_install_term(j), len,
          (long long)ms, mq_install_kept(j));
  /* Outcomes of proposals covered by the snapshot are unknown here: retry
   * them; the request id makes that safe. */
  resolve_proposals(n, s, index, 0, NULL);
  mq_watch_shard_restored(n, s);
  follow_on_event(n, s);
  return true;
}

/* Swaps a decoded snapshot in, then applies the entries kept meanwhile, a
 * slice per tick; the job ends when none is left. Until then new entries
 * go on being kept behind them. */
static void install_finish(struct mq_node *n, struct shard *s) {
  struct mq_install *j = s->install;
  if (!mq_install_swapped(j) && !install_swap_in(n, s))
    return;
  struct kept_ctx c = {n, s};
  if (mq_install_apply_kept(j, apply_kept, &c) == 0) {
    s->install = NULL;
    mq_install_end(j, &n->reaper);
  }
  serve_applied_reads(n, s);
  publish(n, s);
}

/* A snapshot in a ready batch: its bytes leave the core for a job that
 * decodes them off the loop (install.h); replica_install_tick swaps the
 * state in once decoded. A newer snapshot replaces one still decoding: it
 * covers every entry kept for that one (the core takes a snapshot only
 * past its commit index). */
static void install_begin(struct mq_node *n, struct shard *s, const struct mq_raft_snapshot *snap) {
  if (s->install) {
    mq_info(
        "raft", "shard %d: a snapshot at index %llu replaces the one at index %llu being installed",
        s->id, (unsigned long long)snap->index, (unsigned long long)mq_install_index(s->install));
    mq_install_end(s->install, &n->reaper);
    s->install = NULL;
  }
  s->install_failed = false;
  /* Decoded in place, the bytes may stay with the core (which sends them
   * on, should this replica lead and a follower need them). */
  bool threaded = n->io->background_snapshots;
  void *block = threaded ? mq_raft_snapshot_take(s->raft) : NULL;
  int rc = block || !threaded ? mq_install_start(&s->install, n->io, threaded, s->sm, snap, block)
                              : MQ_EINVAL;
  if (rc) {
    install_abandon(n, s, snap->index, snap->len, "cannot start decoding it", rc);
    return;
  }
  if (!threaded && !n->io->defer_installs) { /* decoded already: in as the batch asks */
    install_finish(n, s);
    return;
  }
  mq_info("raft", "shard %d: installing snapshot at index %llu term %llu (%zu bytes) off the loop",
          s->id, (unsigned long long)snap->index, (unsigned long long)snap->term, snap->len);
}

void replica_install_tick(struct mq_node *n) {
  for (int i = 0; i < n->n_shards; i++)
    if (n->shards[i].install)
      install_finish(n, &n->shards[i]);
  mq_reaper_poll(&n->reaper, false);
}

static void role_changed(struct mq_node *n, struct shard *s, const struct mq_raft_ready *rd) {
  bool was_leader = s->role == MQ_RAFT_LEADER;
  s->role = rd->role;
  s->term = rd->term;
  s->leader = rd->leader;
  recovery_on_role(n, s, rd->role, rd->term);
  if (rd->role == MQ_RAFT_LEADER && !was_leader) {
    s->led_since_ms = node_now(n);
    mq_info("raft", "shard %d: became leader for term %llu", s->id, (unsigned long long)rd->term);
  }
  if (rd->role != MQ_RAFT_LEADER)
    s->led_since_ms = 0;
  if (was_leader && rd->role != MQ_RAFT_LEADER) {
    mq_info("raft", "shard %d: stepped down in term %llu", s->id, (unsigned long long)rd->term);
    /* Proposals may still commit under the new leader; handing them to
     * routing retries them there under their request ids (at most once). */
    requeue_waiting(n, s, "leadership lost");
  }
}

static void process_one(struct mq_node *n, struct shard *s, bool all) {
  bool moved = false;
  while (mq_raft_has_ready(s->raft)) {
    moved = true;
    struct mq_raft_ready rd;
    mq_raft_ready(s->raft, &rd);
    if (rd.snapshot) {
      install_begin(n, s, rd.snapshot);
      /* A leader sends snapshots only to members of its latest
       * configuration, which may be newer than the one in the snapshot: an
       * agent removed and added again as a learner (placement moved the
       * shard away and back) receives a snapshot from before it was added.
       * That is a joining replica, not a removed one: destroying it would
       * drop state the leader has counted as acknowledged. The entries
       * after the snapshot make it a member again; if none do, it is a
       * stray and replica_drop_strays drops it. */
      s->was_member = false;
    }
    mq_raft_host_send(&n->host, &rd);
    for (size_t i = 0; i < rd.n_committed && !s->install_failed; i++) {
      const struct mq_raft_entry *e = &rd.committed[i];
      if (s->install) { /* applied once the snapshot is in */
        if (e->index > mq_install_index(s->install) && mq_install_keep(s->install, e))
          install_abandon(n, s, mq_install_index(s->install), mq_install_bytes(s->install),
                          "cannot keep the entries committed meanwhile", MQ_ENOMEM);
        continue;
      }
      if (e->index > s->applied)
        apply_entry(n, s, e);
    }
    if (rd.role_changed)
      role_changed(n, s, &rd);
    for (size_t i = 0; i < rd.n_reads; i++)
      on_read_state(n, s, &rd.reads[i]);
    serve_applied_reads(n, s);
    mq_raft_advance(s->raft, &rd);
    bool later = rd.snapshot_at && !snapshot_wanted(n, s, rd.snapshot_at);
    /* Not behind a snapshot being built: its bytes would come too late. */
    if (rd.compact_at && !s->snap_job)
      mq_raft_compact(s->raft, rd.compact_at, NULL, 0);
    if (later) /* asked again at once: the next round, once the loop polled */
      break;
  }
  if (!moved && !all)
    return;
  publish(n, s);
  if (removed_from_group(n, s) && s->role != MQ_RAFT_LEADER)
    replica_destroy(n, s);
}

/* A replica made by a leader's message (join_groups_of_frame) whose group
 * never took this agent in: the message came from a leader that had been
 * deposed, or was delayed past this agent's removal. Once no leader has
 * spoken to it for two election timeouts it is dropped, so that routing
 * and watches of the shard turn to its real replicas again. Nothing is
 * lost: it holds no data, and it never counted in a quorum (a member joins
 * as a learner and holds its own configuration before it is promoted), so
 * dropping it is the same as never having made it; a leader that does want
 * this agent makes it again with its next message. */
void replica_drop_strays(struct mq_node *n) {
  int64_t now = node_now(n);
  int64_t e = n->cfg->election_timeout_ms > 0 ? n->cfg->election_timeout_ms : 1000;
  for (int i = 0; i < n->n_shards; i++) {
    struct shard *s = &n->shards[i];
    if (!s->raft)
      continue;
    if (s->was_member || s->leader.node || s->role == MQ_RAFT_LEADER) {
      s->stray_since_ms = 0;
      continue;
    }
    if (!s->stray_since_ms) {
      s->stray_since_ms = now;
    } else if (now - s->stray_since_ms >= 2 * e && !MQ_CLUSTER_BUG(5)) {
      mq_info("raft",
              "shard %d: dropping the empty replica a stale message made here: no "
              "leader of the group includes this agent",
              s->id);
      replica_destroy(n, s);
    }
  }
}

void replica_process_ready(struct mq_node *n, bool all) {
  for (int i = 0; i < n->n_shards; i++)
    if (n->shards[i].raft)
      process_one(n, &n->shards[i], all);
}

/* ------------------------------------------------------------------------ */
/* Frames */

void replica_flush_frames(struct mq_node *n) {
  size_t k = mq_raft_host_batches(&n->host);
  for (size_t i = 0; i < k; i++) {
    uint64_t node;
    const uint8_t *data;
    size_t len;
    mq_raft_host_batch(&n->host, i, &node, &data, &len);
    struct member *m = member_by_key(n, node);
    if (m && !m->self && m->addr[0] && n->peer)
      n->peer->send(n->peer, m->id, m->addr, data, len);
  }
  mq_raft_host_batches_clear(&n->host);
}

/* What a leader sends its followers and learners, addressed to this
 * incarnation, for a group we do not have means its leader added us: create
 * the replica empty (it catches up from the leader's log or snapshot).
 * So does a recovery's vote request (MQ_RAFT_FLAG_RECOVER): it asks every
 * survivor of the group's configurations, learners included, and cannot
 * win without this agent's answer. A learner whose leader died right
 * after adding it may have dropped its never-filled replica as a stray by
 * then; it holds nothing, so it answers from an empty log. Answers and
 * other vote requests never create a replica: a late answer to a replica
 * this agent dropped would bring back an empty replica nobody talks to. A
 * stale message still may; replica_drop_strays() undoes that. Frame layout:
 * core/host.c. */
static void join_groups_of_frame(struct mq_node *n, const uint8_t *data, size_t len) {
  struct mq_reader rd;
  mq_reader_init(&rd, data, len);
  mq_get_u8(&rd);
  mq_get_u64(&rd);
  mq_get_u64(&rd);
  while (!rd.err && mq_reader_left(&rd) > 0) {
    struct mq_raft_msg m;
    if (mq_raft_msg_decode(&rd, &m, &n->scratch_ents, &n->scratch_ents_cap))
      return;
    if (m.group >= (uint64_t)n->n_shards || !mq_raft_member_eq(m.to, n->self))
      continue;
    struct shard *s = &n->shards[m.group];
    bool from_leader =
        m.type == MQ_RAFT_MSG_APP || m.type == MQ_RAFT_MSG_HEARTBEAT || m.type == MQ_RAFT_MSG_SNAP;
    bool recovery = (m.type == MQ_RAFT_MSG_VOTE || m.type == MQ_RAFT_MSG_PREVOTE) &&
                    (m.flags & MQ_RAFT_FLAG_RECOVER);
    if (!s->raft && (from_leader || recovery)) {
      int rc = replica_create(n, s, NULL);
      if (rc)
        mq_warn("raft", "shard %d: cannot join: %s", s->id, mq_strerror(rc));
    }
  }
}

void replica_receive_frame(struct mq_node *n, const uint8_t *data, size_t len) {
  join_groups_of_frame(n, data, len);
  if (mq_raft_host_receive(&n->host, data, len))
    mq_warn("peer", "dropped the rest of a malformed Raft frame (%zu bytes)", len);
}

const char *mq_mem_structure_name(enum mq_mem_structure s) {
  static const char *const names[MQ_MEM_STRUCTURES] = {
      [MQ_MEM_KV_RECORDS] = "kv_records",   [MQ_MEM_KV_INDEX] = "kv_index",
      [MQ_MEM_RAFT_LOG] = "raft_log",       [MQ_MEM_WATCH_HISTORY] = "watch_history",
      [MQ_MEM_REQUEST_IDS] = "request_ids", [MQ_MEM_TOPIC_LOGS] = "topic_logs",
  };
  return (unsigned)s < MQ_MEM_STRUCTURES ? names[s] : "unknown";
}
