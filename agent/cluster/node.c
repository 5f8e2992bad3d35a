/* The node's lifecycle and its core loop thread.
 *
 * The loop waits on its io (cluster/io.h; in the agent, the gRPC completion
 * queue where the peer transport and, with one gRPC thread, the API server
 * have their calls) until the next tick is due (every TICK_MS of the io's
 * monotonic clock).
 * Each iteration runs the handlers of the events that arrived (calls
 * accepted and parsed, frames and replies received, sends completed; these
 * post their work to the mailbox), then handles the mail, ticks if due,
 * drains the Raft groups' ready batches (apply, reply, send), and flushes
 * one frame per peer. Other threads wake the loop through the queue when
 * they post to an empty mailbox. Raft ticks every heartbeat interval;
 * routing retries, gossip, reconciliation and the TTL reaper run on the
 * same tick.
 *
 * Stopping has two phases: the loop stops taking mail (requests complete
 * with UNAVAILABLE, watches end), then keeps polling the queue so that the
 * API server and the peer transport can finish their calls, until
 * mq_node_free() shuts the io down. A simulator runs the same rounds itself
 * (mq_node_start_stepped, mq_node_step) on one thread for many nodes. */
#include "cluster/internal.h"
#include "util/clock.h"
#include "util/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TICK_MS 10
/* Events handled before the loop turns to its mail and Raft work. */
#define LOOP_EVENTS_MAX 256

/* Counts a request as it completes and hands it back to its owner. */
void mq_req_complete(struct mq_node *n, struct mq_req *r) {
  if (!(r->p_flags & REQ_INTERNAL) && (unsigned)r->type < MQ_REQ_TYPES) {
    atomic_fetch_add_explicit(&n->m_requests[r->type], 1, memory_order_relaxed);
    if (r->status.code)
      atomic_fetch_add_explicit(&n->m_errors[r->type], 1, memory_order_relaxed);
  }
  r->done(r);
}

static void wake_loop(void *arg) {
  struct mq_node *n = arg;
  n->io->wake(n->io);
}

int mq_node_new(struct mq_node **out, const struct mq_config *cfg, const struct mq_node_io *io,
                struct mq_status *st) {
  struct mq_node *n = calloc(1, sizeof *n);
  if (!n)
    return mq_status_set(st, MQ_ENOMEM, "out of memory creating the node");
  n->own_cfg = *cfg;
  n->cfg = &n->own_cfg;
  n->io = io->loop;
  n->transport = io->transport;
  n->loop_exited = true;
  pthread_mutex_init(&n->exit_lock, NULL);
  pthread_cond_init(&n->exit_cond, NULL);
  pthread_mutex_init(&n->ready_lock, NULL);
  snprintf(n->not_ready_why, sizeof n->not_ready_why, "starting");
  mq_buf_init(&n->scratch);

  mq_store_limits_default(&n->limits);
  n->limits.max_key_bytes = cfg->max_key_bytes;
  n->limits.max_value_bytes = cfg->max_value_bytes;
  n->limits.retention_entries = cfg->retention_entries;
  n->limits.retention_bytes = cfg->retention_bytes;
  n->limits.retention_ms = cfg->retention_ms;
  n->limits.history_events = cfg->watch_history_events;
  n->limits.history_bytes = cfg->watch_history_bytes;

  int hb = cfg->heartbeat_ms > 0 ? cfg->heartbeat_ms : 100;
  n->ticks_per_raft_tick = (uint32_t)(hb / TICK_MS > 0 ? hb / TICK_MS : 1);

  int rc;
  n->n_shards = cfg->shards_total;
  n->shards = calloc((size_t)n->n_shards, sizeof *n->shards);
  if (!n->shards) {
    rc = mq_status_set(st, MQ_ENOMEM, "out of memory creating %d shards", n->n_shards);
    goto err_node;
  }
  for (int i = 0; i < n->n_shards; i++)
    n->shards[i].id = i;
  mq_mailbox_init(&n->mailbox, wake_loop, n);
  rc = members_init(n);
  if (rc) {
    mq_status_set(st, rc, "setting up the member table: %s", mq_strerror(rc));
    goto err_mailbox;
  }
  *out = n;
  return 0;

err_mailbox:
  mq_mailbox_close(&n->mailbox);
  free(n->shards);
err_node:
  mq_buf_close(&n->scratch);
  free(n);
  return rc;
}

/* The live settings (mq_node_reconfigure), applied on the loop. */
static void apply_live(struct mq_node *n, const struct mq_config *next) {
  struct mq_config *c = &n->own_cfg;
#define LIVE_INT(field, name)                                                                      \
  if (c->field != next->field) {                                                                   \
    mq_info("config", "%s: %lld -> %lld (applied live)", name, (long long)c->field,                \
            (long long)next->field);                                                               \
    c->field = next->field;                                                                        \
  }
  LIVE_INT(leader_follow_ms, "memquorum.raft.leader-follow-window (ms)")
  LIVE_INT(replace_dead_ms, "memquorum.replace-dead.after (ms)")
  LIVE_INT(max_key_bytes, "memquorum.limits.max-key-bytes")
  LIVE_INT(max_value_bytes, "memquorum.limits.max-value-bytes")
  LIVE_INT(memory_budget_bytes, "memquorum.limits.memory-budget")
#undef LIVE_INT
  n->limits.max_key_bytes = c->max_key_bytes;
  n->limits.max_value_bytes = c->max_value_bytes;
  if (c->log_level != next->log_level) {
    mq_info("config", "memquorum.log.level changed (applied live)");
    c->log_level = next->log_level;
    mq_log_set_level((enum mq_log_level)c->log_level);
  }
  if (c->log_format != next->log_format) {
    mq_info("config", "memquorum.log.format changed (applied live)");
    c->log_format = next->log_format;
    mq_log_set_format((enum mq_log_format)c->log_format);
  }
}

int mq_node_reconfigure(struct mq_node *n, const struct mq_config *next) {
  struct net_mail *nm = malloc(sizeof *nm + sizeof *next);
  if (!nm)
    return MQ_ENOMEM;
  memset(nm, 0, sizeof *nm);
  nm->mail.kind = MAIL_RECONFIGURE;
  nm->len = sizeof *next;
  memcpy(nm->data, next, sizeof *next);
  if (mq_mailbox_push(&n->mailbox, &nm->mail)) {
    free(nm);
    return MQ_EUNAVAIL;
  }
  return 0;
}

static struct mq_req *req_of(struct mq_mail *m) {
  return (struct mq_req *)((char *)m - offsetof(struct mq_req, mail));
}

static struct net_mail *net_of(struct mq_mail *m) {
  return (struct net_mail *)((char *)m - offsetof(struct net_mail, mail));
}

/* Completes requests and drops peer traffic once the loop is stopping. */
static void reject_mail(struct mq_node *n, struct mq_mail *m) {
  while (m) {
    struct mq_mail *next = m->next;
    switch (m->kind) {
    case MAIL_REQ: {
      struct mq_req *r = req_of(m);
      mq_status_set(&r->status, MQ_EUNAVAIL, "agent is shutting down");
      mq_req_complete(n, r);
      break;
    }
    case MAIL_WATCH_OPEN:
      mq_watch_open_on_loop(n, mq_watch_from_mail(m)); /* ends at once: stopping */
      break;
    case MAIL_WATCH_CLOSE:
      mq_watch_close_on_loop(n, mq_watch_from_mail(m));
      break;
    case MAIL_REPLY: {
      struct net_mail *nm = net_of(m);
      if (nm->batch)
        forward_fail_batch(nm->batch, MQ_EUNAVAIL, "agent is shutting down");
      free(nm);
      break;
    }
    case MAIL_CALL: {
      struct net_mail *nm = net_of(m);
      struct mq_status st;
      mq_status_set(&st, MQ_EUNAVAIL, "agent is shutting down");
      node_reply(n, nm->ctx, MQ_EUNAVAIL, &st, NULL, 0);
      free(nm);
      break;
    }
    default:
      if (m->kind == MAIL_FRAME)
        atomic_fetch_sub(&n->frames_queued, 1);
      if (m->kind != MAIL_DRAIN && m->kind != MAIL_HAND_OFF)
        free(net_of(m));
      break;
    }
    m = next;
  }
}

static void handle_mail(struct mq_node *n, struct mq_mail *m) {
  while (m) {
    struct mq_mail *next = m->next;
    switch (m->kind) {
    case MAIL_REQ:
      route_request(n, req_of(m));
      break;
    case MAIL_WATCH_OPEN:
      mq_watch_open_on_loop(n, mq_watch_from_mail(m));
      break;
    case MAIL_WATCH_CLOSE:
      mq_watch_close_on_loop(n, mq_watch_from_mail(m));
      break;
    case MAIL_FRAME: {
      struct net_mail *nm = net_of(m);
      atomic_fetch_sub(&n->frames_queued, 1);
      if (members_is_foreign(n, nm->hello.node_id)) {
        free(nm);
      } else if (forward_is_frame(nm->data, nm->len)) {
        forward_on_frame(n, nm);
      } else {
        replica_receive_frame(n, nm->data, nm->len);
        free(nm);
      }
      break;
    }
    case MAIL_PEER_UP: {
      struct net_mail *nm = net_of(m);
      struct member *mb = members_on_up(n, &nm->hello);
      if (mb)
        mb->features = nm->hello.features; /* gossip does not carry them */
      free(nm);
      break;
    }
    case MAIL_PEER_DOWN: {
      struct net_mail *nm = net_of(m);
      members_on_down(n, nm->hello.node_id);
      free(nm);
      break;
    }
    case MAIL_CALL:
      route_on_call(n, net_of(m));
      break;
    case MAIL_REPLY:
      route_on_reply(n, net_of(m));
      break;
    case MAIL_DRAIN:
      reconcile_drain(n);
      break;
    case MAIL_HAND_OFF:
      reconcile_hand_off(n);
      break;
    case MAIL_DISCOVERED:
      discovered_on_mail(n, net_of(m));
      break;
    case MAIL_RECONFIGURE: {
      struct mq_config *cfg_next = malloc(sizeof *cfg_next);
      if (cfg_next) {
        memcpy(cfg_next, net_of(m)->data, sizeof *cfg_next); /* data is not aligned for it */
        apply_live(n, cfg_next);
        free(cfg_next);
      }
      free(net_of(m));
      break;
    }
    }
    m = next;
  }
}

/* Once requests and writes stopped for IDLE_TRIM_MS, tells the loop io
 * (which hands the memory the allocator keeps back to the system), and
 * again when they resume: an agent that went quiet after churn should not
 * sit on what it freed. Writes count wherever they come from (a follower
 * applying its leaders' writes is busy); expiries do not: while keys
 * expire after the writes stopped the data only shrinks, and memory freed
 * then goes back at once (bench/churn-floor.sh: 43.7 MB resident once
 * every key expired, with expiries counted as work; 38.4 MB without). */
#define IDLE_TRIM_MS 2000
static void idle_trim(struct mq_node *n) {
  uint64_t seen = n->writes_applied;
  for (int t = 0; t < MQ_REQ_TYPES; t++)
    seen += atomic_load_explicit(&n->m_requests[t], memory_order_relaxed);
  if (seen != n->trim_seen) {
    n->trim_seen = seen;
    n->trim_quiet_since = n->now_ms;
    if (n->trimmed && n->io->idle)
      n->io->idle(n->io, false);
    n->trimmed = false;
  } else if (!n->trimmed && n->now_ms - n->trim_quiet_since >= IDLE_TRIM_MS) {
    if (n->io->idle)
      n->io->idle(n->io, true);
    n->trimmed = true;
  }
}

static void on_timer(struct mq_node *n) {
  n->tick_count++;
  if (n->tick_count % n->ticks_per_raft_tick == 0)
    replica_tick(n);
  route_retry_due(n);
  forward_expire(n);
  replica_flush_commits(n);
  replica_expire(n);
  replica_snapshot_tick(n);
  replica_install_tick(n);
  members_tick(n);
  follow_tick(n);
  if (n->tick_count % 10 == 0) {
    reconcile_tick(n);
    recovery_tick(n);
    replica_drop_strays(n);
    mq_exec_expire_sweep(n);
    idle_trim(n);
  }
}

/* One round of the loop: the events that are ready (waiting up to wait_ms
 * for the first), the mail, the timer when due, the Raft groups' ready
 * batches, then one frame per peer and the forwards of this round, which
 * the transport sends together. False once the io has shut down under the
 * loop. */
static bool loop_round(struct mq_node *n, int wait_ms) {
  if (n->io->poll(n->io, wait_ms, LOOP_EVENTS_MAX) < 0)
    return false;
  n->now_ms = node_now(n);
  handle_mail(n, mq_mailbox_take(&n->mailbox));
  bool ticked = n->now_ms >= n->next_tick;
  if (ticked) {
    on_timer(n);
    n->next_tick += TICK_MS;
    if (n->next_tick <= n->now_ms)
      n->next_tick = n->now_ms + TICK_MS;
  }
  replica_process_ready(n, ticked);
  replica_flush_frames(n);
  forward_flush(n);
  if (n->peer && n->peer->flush)
    n->peer->flush(n->peer);
  /* After the round's commits are applied: a follower that just learned of
   * a commit is not behind for readiness. */
  if ((ticked && n->tick_count % 10 == 0) || !atomic_load_explicit(&n->ready, memory_order_relaxed))
    health_update_ready(n);
  return true;
}

/* Stopping: whatever is still queued, or arrives before the mailbox
 * closes, completes with UNAVAILABLE; so do requests waiting on Raft;
 * watches end. */
static void loop_wind_down(struct mq_node *n) {
  reject_mail(n, mq_mailbox_shut(&n->mailbox));
  replica_fail_all(n, MQ_EUNAVAIL, "agent is shutting down");
  forward_fail_all(n, MQ_EUNAVAIL, "agent is shutting down");
  follow_fail_parked(n);
  mq_watch_end_all(n, MQ_EUNAVAIL, "agent is shutting down");
  pthread_mutex_lock(&n->exit_lock);
  n->loop_exited = true;
  pthread_cond_broadcast(&n->exit_cond);
  pthread_mutex_unlock(&n->exit_lock);
}

static void *loop_main(void *arg) {
  struct mq_node *n = arg;
  pthread_setname_np(pthread_self(), "mq-loop");
  mq_mailbox_own(&n->mailbox);
  /* Until mq_node_start() has set up the transport only the io's events
   * run (their mail waits). */
  while (!atomic_load(&n->core_go) && !atomic_load(&n->stopping))
    if (n->io->poll(n->io, 1000, LOOP_EVENTS_MAX) < 0)
      break;
  n->next_tick = node_now(n) + TICK_MS;
  bool more = true;
  while (!atomic_load(&n->stopping)) {
    int64_t wait = more ? 0 : n->next_tick - node_now(n);
    if (!loop_round(n, wait > 0 ? (int)wait : 0)) {
      mq_error("core", "the loop's event queue shut down under the core loop");
      break;
    }
    /* Mail the loop posted to itself must not wait for the next tick. */
    more = mq_mailbox_pending(&n->mailbox);
  }
  loop_wind_down(n);
  /* The calls of the API server and the peer transport finish on this
   * thread until the io shuts down (mq_node_free). */
  while (n->io->poll(n->io, 1000, LOOP_EVENTS_MAX) >= 0) {
  }
  return NULL;
}

/* Starts the transport and opens the mailbox to the loop. */
static int start_common(struct mq_node *n, struct mq_status *st) {
  n->started = true;
  int rc = members_start_transport(n, st);
  if (rc)
    return rc;
  atomic_store(&n->core_go, true);
  n->io->wake(n->io);
  mq_info("core", "core loop started: node %s incarnation %llu, %d shards, replication factor %d",
          n->cfg->node_id, (unsigned long long)n->self.inc, n->n_shards,
          n->cfg->replication_factor);
  return 0;
}

int mq_node_start(struct mq_node *n, struct mq_status *st) {
  n->now_ms = node_now(n);
  n->loop_exited = false;
  int rc = pthread_create(&n->thread, NULL, loop_main, n);
  if (rc) {
    n->loop_exited = true;
    return mq_status_set(st, MQ_EIO, "starting the core loop thread: %s", strerror(rc));
  }
  /* From here on mq_node_stop() and mq_node_free() undo everything. */
  n->threaded = true;
  return start_common(n, st);
}

int mq_node_start_stepped(struct mq_node *n, struct mq_status *st) {
  n->now_ms = node_now(n);
  n->next_tick = n->now_ms + TICK_MS;
  n->loop_exited = false;
  mq_mailbox_own(&n->mailbox);
  return start_common(n, st);
}

bool mq_node_step(struct mq_node *n) {
  if (atomic_load(&n->stopping)) {
    if (!n->loop_exited)
      loop_wind_down(n);
    return false;
  }
  return loop_round(n, 0);
}

int mq_node_submit(struct mq_node *n, struct mq_req *r) {
  mq_status_clear(&r->status);
  r->mail.kind = MAIL_REQ;
  return mq_mailbox_push(&n->mailbox, &r->mail);
}

bool mq_node_ready(const struct mq_node *n) {
  return atomic_load(&n->ready) && !atomic_load(&n->stopping) && !atomic_load(&n->draining);
}

void mq_node_not_ready_why(struct mq_node *n, char *buf, size_t cap) {
  if (mq_node_ready(n)) {
    snprintf(buf, cap, "%s", "");
    return;
  }
  pthread_mutex_lock(&n->ready_lock);
  snprintf(buf, cap, "%s", atomic_load(&n->draining) ? "shutting down" : n->not_ready_why);
  pthread_mutex_unlock(&n->ready_lock);
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* The first part of a drain: waits until leaving costs no shard its
 * majority, the deadline passes or interrupted() says stop. */
static void wait_until_safe(struct mq_node *n, int timeout_ms, bool (*interrupted)(void *),
                            void *arg) {
  int64_t start = mq_clock_mono_ms(), until = start + timeout_ms, said_at = 0;
  int said = -1;
  char why[512];
  for (;;) {
    int risk = atomic_load(&n->drain_risk);
    int64_t now = mq_clock_mono_ms();
    if (risk == 0) {
      if (said > 0)
        mq_info("core", "drain: leaving is safe now for every shard (waited %lld ms)",
                (long long)(now - start));
      return;
    }
    bool stop = interrupted && interrupted(arg);
    if (risk > 0 && (stop || now >= until || atomic_load(&n->stopping))) {
      pthread_mutex_lock(&n->ready_lock);
      snprintf(why, sizeof why, "%s", n->drain_risk_why);
      pthread_mutex_unlock(&n->ready_lock);
      mq_warn("core",
              "drain: leaving after %lld ms (%s) although %d shard%s would lose %s "
              "majority of live voters: %s",
              (long long)(now - start), stop ? "a second signal" : "--drain-timeout", risk,
              risk == 1 ? "" : "s", risk == 1 ? "its" : "their", why);
      return;
    }
    if (stop || now >= until || atomic_load(&n->stopping))
      return; /* the loop never counted: nothing is known to be at risk */
    if (risk > 0 && (risk != said || now - said_at >= 5000)) {
      pthread_mutex_lock(&n->ready_lock);
      snprintf(why, sizeof why, "%s", n->drain_risk_why);
      pthread_mutex_unlock(&n->ready_lock);
      mq_info("core", "drain: waiting (at most %lld ms more) until leaving is safe: %s",
              (long long)(until - now), why);
      said = risk;
      said_at = now;
    }
    sleep_ms(20);
  }
}

void mq_node_drain(struct mq_node *n, int timeout_ms, bool (*interrupted)(void *arg), void *arg) {
  if (atomic_exchange(&n->draining, true))
    return;
  if (!n->started || atomic_load(&n->stopping) || !n->peer)
    return;
  atomic_store(&n->drain_risk, -1);
  atomic_store(&n->drain_left, -1);
  n->drain_mail.kind = MAIL_DRAIN;
  if (mq_mailbox_push(&n->mailbox, &n->drain_mail) != 0)
    return;
  wait_until_safe(n, timeout_ms, interrupted, arg);
  /* With no other agent up there is nobody to hand leadership to. */
  if (atomic_load(&n->peers_up) == 0)
    return;
  atomic_store(&n->handing_off, true);
  n->hand_off_mail.kind = MAIL_HAND_OFF;
  if (mq_mailbox_push(&n->mailbox, &n->hand_off_mail) != 0)
    return;
  int handoff_ms = 3000;
  int64_t until = mq_clock_mono_ms() + handoff_ms;
  while (atomic_load(&n->led_shards) > 0 && atomic_load(&n->peers_up) > 0 &&
         atomic_load(&n->drain_left) != 0 && mq_clock_mono_ms() < until)
    sleep_ms(20);
  int left = atomic_load(&n->led_shards);
  if (left == 0)
    mq_info("core", "drain: leadership handed off");
  else if (atomic_load(&n->drain_left) == 0 || atomic_load(&n->peers_up) == 0)
    mq_info("core",
            "drain: %d shards stay led here until exit: their other replicas are "
            "down or shutting down too",
            left);
  else
    mq_warn("core", "drain: still leading %d shards after %d ms; stopping anyway", left,
            handoff_ms);
}

void mq_node_stop(struct mq_node *n) {
  if (atomic_exchange(&n->stopping, true))
    return;
  atomic_store(&n->ready, false);
  if (n->threaded) {
    n->io->wake(n->io);
    pthread_mutex_lock(&n->exit_lock);
    while (!n->loop_exited)
      pthread_cond_wait(&n->exit_cond, &n->exit_lock);
    pthread_mutex_unlock(&n->exit_lock);
  } else if (n->started) {
    if (!n->loop_exited)
      loop_wind_down(n);
  } else {
    reject_mail(n, mq_mailbox_shut(&n->mailbox));
  }
  /* The loop still polls the io, which the transport's shutdown needs. */
  if (n->peer)
    n->transport->shutdown(n->transport);
  mq_info("core", "core loop stopped");
}

void mq_node_free(struct mq_node *n) {
  if (!n)
    return;
  mq_node_stop(n);
  if (n->threaded) {
    /* Every server is gone by now (the API server is freed first). */
    n->io->shutdown(n->io);
    pthread_join(n->thread, NULL);
  }
  for (int i = 0; i < n->n_shards; i++) {
    mq_install_end(n->shards[i].install, &n->reaper);
    if (n->shards[i].sm)
      mq_sm_free(n->shards[i].sm);
  }
  mq_reaper_poll(&n->reaper, true);
  members_close(n);
  free(n->shards);
  mq_mailbox_close(&n->mailbox);
  mq_buf_close(&n->scratch);
  free(n->scratch_ents);
  pthread_cond_destroy(&n->exit_cond);
  pthread_mutex_destroy(&n->exit_lock);
  pthread_mutex_destroy(&n->ready_lock);
  free(n);
}

const char *mq_req_type_name(enum mq_req_type t) {
  static const char *names[MQ_REQ_TYPES] = {"put",  "get",    "delete",  "scan",        "produce",
                                            "read", "status", "recover", "ingest_probe"};
  return (unsigned)t < MQ_REQ_TYPES ? names[t] : "unknown";
}

int mq_node_shards(const struct mq_node *n) { return n->n_shards; }

const char *mq_node_peer_address(const struct mq_node *n) {
  return n->peer ? n->members[0].addr : "";
}

const struct mq_config *mq_node_config(const struct mq_node *n) { return n->cfg; }

uint64_t mq_node_incarnation(const struct mq_node *n) { return n->self.inc; }

void mq_node_metrics(const struct mq_node *n, struct mq_node_metrics *m) {
  struct mq_shard_metrics *shards = m->shards;
  memset(m, 0, sizeof *m);
  m->shards = shards;
  for (int i = 0; i < MQ_REQ_TYPES; i++) {
    m->requests[i] = atomic_load_explicit(&n->m_requests[i], memory_order_relaxed);
    m->errors[i] = atomic_load_explicit(&n->m_errors[i], memory_order_relaxed);
  }
  m->expired_keys = atomic_load_explicit(&n->m_expired, memory_order_relaxed);
  m->watches_open = atomic_load_explicit(&n->m_watches_open, memory_order_relaxed);
  m->watch_events = atomic_load_explicit(&n->m_watch_events, memory_order_relaxed);
  m->watches_dropped_slow = atomic_load_explicit(&n->m_watches_slow, memory_order_relaxed);
  m->forwarded = atomic_load_explicit(&n->m_forwarded, memory_order_relaxed);
  m->retries = atomic_load_explicit(&n->m_retries, memory_order_relaxed);
  m->forward_batches_lost = atomic_load_explicit(&n->m_fwd_lost, memory_order_relaxed);
  m->snapshots_installed = atomic_load_explicit(&n->m_snapshots_installed, memory_order_relaxed);
  m->handoffs = atomic_load_explicit(&n->m_handoffs, memory_order_relaxed);
  m->recoveries = atomic_load_explicit(&n->m_recoveries, memory_order_relaxed);
  m->memory_budget_bytes = n->cfg->memory_budget_bytes;
  m->moves_started = atomic_load_explicit(&n->m_moves_started, memory_order_relaxed);
  m->moves_finished = atomic_load_explicit(&n->m_moves_finished, memory_order_relaxed);
  m->replicas_removed = atomic_load_explicit(&n->m_replicas_removed, memory_order_relaxed);
  m->balance_moves = atomic_load_explicit(&n->m_balance_moves, memory_order_relaxed);
  m->moves_in_progress = atomic_load_explicit(&n->m_moves_in_progress, memory_order_relaxed);
  m->snapshot_bytes = atomic_load_explicit(&n->m_snapshot_bytes, memory_order_relaxed);
  m->snapshots_built_child = atomic_load_explicit(&n->m_snap_built_child, memory_order_relaxed);
  m->snapshots_built_loop = atomic_load_explicit(&n->m_snap_built_loop, memory_order_relaxed);
  m->discovery_source = atomic_load_explicit(&n->m_disc_source, memory_order_relaxed);
  for (int i = 0; i < MQ_DISCOVERY_SOURCES; i++) {
    m->discovery_last_ok_ms[i] =
        atomic_load_explicit(&n->m_disc_last_ok_ms[i], memory_order_relaxed);
    m->discovery_errors[i] = atomic_load_explicit(&n->m_disc_errors[i], memory_order_relaxed);
  }
  m->n_shards = n->n_shards;
  for (int i = 0; i < n->n_shards; i++) {
    const struct shard *s = &n->shards[i];
    uint64_t bytes = atomic_load_explicit(&s->pub_bytes, memory_order_relaxed);
    m->memory_used_bytes += bytes;
    if (!shards)
      continue;
    shards[i] = (struct mq_shard_metrics){
        .keys = atomic_load_explicit(&s->pub_keys, memory_order_relaxed),
        .bytes = bytes,
        .revision = atomic_load_explicit(&s->pub_revision, memory_order_relaxed),
        .applied_index = atomic_load_explicit(&s->pub_applied, memory_order_relaxed),
        .commit_index = atomic_load_explicit(&s->pub_commit, memory_order_relaxed),
        .term = atomic_load_explicit(&s->pub_term, memory_order_relaxed),
        .is_leader = atomic_load_explicit(&s->pub_leader, memory_order_relaxed),
    };
    for (int k = 0; k < MQ_MEM_STRUCTURES; k++)
      shards[i].mem[k] = atomic_load_explicit(&s->pub_mem[k], memory_order_relaxed);
  }
}
