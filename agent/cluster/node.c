/* The node's lifecycle and its core loop thread.
 *
 * The loop waits on two file descriptors with epoll: the mailbox's eventfd
 * (requests and watch changes from other threads) and a CLOCK_MONOTONIC
 * timerfd that ticks every heartbeat interval (TTL sweeps; Raft ticks once
 * groups are replicated). */
#include "cluster/internal.h"
#include "util/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

void mq_req_init(struct mq_req *r, enum mq_req_type type) {
  memset(r, 0, sizeof *r);
  r->type = type;
}

static void free_kv_copy(struct mq_kv *kv) {
  /* Copies made by the node hold key and value in one block at kv->key. */
  free((void *)kv->key);
  memset(kv, 0, sizeof *kv);
}

void mq_req_clear(struct mq_req *r) {
  if (r->has_kv)
    free_kv_copy(&r->kv);
  r->has_kv = false;
  for (size_t i = 0; i < r->n_kvs; i++)
    free((void *)r->kvs[i].key);
  free(r->kvs);
  r->kvs = NULL;
  r->n_kvs = 0;
  for (size_t i = 0; i < r->n_entries; i++)
    free((void *)r->entries[i].key);
  free(r->entries);
  r->entries = NULL;
  r->n_entries = 0;
  if (r->node_status)
    mq_node_status_free(r->node_status);
  r->node_status = NULL;
}

void mq_node_status_free(struct mq_node_status *s) {
  if (!s)
    return;
  free(s->members);
  free(s->shards);
  free(s);
}

int mq_node_new(struct mq_node **out, const struct mq_config *cfg, struct mq_status *st) {
  struct mq_node *n = calloc(1, sizeof *n);
  if (!n)
    return mq_status_set(st, MQ_ENOMEM, "out of memory creating the node");
  n->cfg = cfg;
  n->timer_fd = n->epoll_fd = -1;
  n->loop_exited = true;
  pthread_mutex_init(&n->exit_lock, NULL);
  pthread_cond_init(&n->exit_cond, NULL);
  mq_buf_init(&n->scratch);

  mq_store_limits_default(&n->limits);
  n->limits.max_key_bytes = cfg->max_key_bytes;
  n->limits.max_value_bytes = cfg->max_value_bytes;
  n->limits.retention_entries = cfg->retention_entries;
  n->limits.retention_bytes = cfg->retention_bytes;
  n->limits.retention_ms = cfg->retention_ms;
  n->limits.history_events = cfg->watch_history_events;

  int rc;
  n->n_shards = cfg->shards_total;
  n->shards = calloc((size_t)n->n_shards, sizeof *n->shards);
  if (!n->shards) {
    rc = mq_status_set(st, MQ_ENOMEM, "out of memory creating %d shards", n->n_shards);
    goto err_node;
  }
  for (int i = 0; i < n->n_shards; i++) {
    n->shards[i].id = i;
    n->shards[i].term = 1;
    rc = mq_sm_new(&n->shards[i].sm, i, &n->limits);
    if (rc) {
      mq_status_set(st, rc, "creating shard %d: %s", i, mq_strerror(rc));
      goto err_shards;
    }
  }
  rc = mq_mailbox_init(&n->mailbox);
  if (rc) {
    mq_status_set(st, rc, "creating the mailbox eventfd: %s", strerror(errno));
    goto err_shards;
  }
  *out = n;
  return 0;

err_shards:
  for (int i = 0; i < n->n_shards; i++)
    if (n->shards[i].sm)
      mq_sm_free(n->shards[i].sm);
  free(n->shards);
err_node:
  mq_buf_close(&n->scratch);
  free(n);
  return rc;
}

/* Fails every request in a chain with UNAVAILABLE and drops watch mail. */
static void reject_mail(struct mq_node *n, struct mq_mail *m) {
  while (m) {
    struct mq_mail *next = m->next;
    if (m->kind == MAIL_REQ) {
      struct mq_req *r = (struct mq_req *)((char *)m - offsetof(struct mq_req, mail));
      mq_status_set(&r->status, MQ_EUNAVAIL, "agent is shutting down");
      r->done(r);
    } else if (m->kind == MAIL_WATCH_OPEN) {
      mq_watch_open_on_loop(n, mq_watch_from_mail(m)); /* ends at once: stopping */
    } else if (m->kind == MAIL_WATCH_CLOSE) {
      mq_watch_close_on_loop(n, mq_watch_from_mail(m));
    }
    m = next;
  }
}

static void handle_mail(struct mq_node *n, struct mq_mail *m) {
  while (m) {
    struct mq_mail *next = m->next;
    switch (m->kind) {
    case MAIL_REQ:
      mq_exec_request(n, (struct mq_req *)((char *)m - offsetof(struct mq_req, mail)));
      break;
    case MAIL_WATCH_OPEN:
      mq_watch_open_on_loop(n, mq_watch_from_mail(m));
      break;
    case MAIL_WATCH_CLOSE:
      mq_watch_close_on_loop(n, mq_watch_from_mail(m));
      break;
    }
    m = next;
  }
}

static void on_tick(struct mq_node *n) {
  uint64_t expirations;
  ssize_t r = read(n->timer_fd, &expirations, sizeof expirations);
  (void)r;
  mq_exec_expire_sweep(n);
}

static void *loop_main(void *arg) {
  struct mq_node *n = arg;
  struct epoll_event evs[4];
  while (!atomic_load(&n->stopping)) {
    int k = epoll_wait(n->epoll_fd, evs, 4, -1);
    if (k < 0) {
      if (errno == EINTR)
        continue;
      mq_error("core", "epoll_wait failed: %s", strerror(errno));
      break;
    }
    for (int i = 0; i < k; i++) {
      if (evs[i].data.fd == n->mailbox.efd)
        handle_mail(n, mq_mailbox_take(&n->mailbox));
      else if (evs[i].data.fd == n->timer_fd)
        on_tick(n);
    }
  }
  /* Stopping: whatever is still queued, or arrives before the mailbox
   * closes, completes with UNAVAILABLE; watches end. */
  reject_mail(n, mq_mailbox_shut(&n->mailbox));
  mq_watch_end_all(n, MQ_EUNAVAIL, "agent is shutting down");
  pthread_mutex_lock(&n->exit_lock);
  n->loop_exited = true;
  pthread_cond_broadcast(&n->exit_cond);
  pthread_mutex_unlock(&n->exit_lock);
  return NULL;
}

int mq_node_start(struct mq_node *n, struct mq_status *st) {
  int rc;
  n->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  if (n->epoll_fd < 0)
    return mq_status_set(st, mq_err_from_errno(errno), "epoll_create1: %s", strerror(errno));
  n->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (n->timer_fd < 0) {
    rc = mq_status_set(st, mq_err_from_errno(errno), "timerfd_create: %s", strerror(errno));
    goto err_epoll;
  }
  long tick_ms = n->cfg->heartbeat_ms > 0 ? n->cfg->heartbeat_ms : 100;
  struct itimerspec its = {
      .it_interval = {tick_ms / 1000, (tick_ms % 1000) * 1000000L},
      .it_value = {tick_ms / 1000, (tick_ms % 1000) * 1000000L},
  };
  timerfd_settime(n->timer_fd, 0, &its, NULL);
  struct epoll_event ev = {.events = EPOLLIN};
  ev.data.fd = n->mailbox.efd;
  epoll_ctl(n->epoll_fd, EPOLL_CTL_ADD, n->mailbox.efd, &ev);
  ev.data.fd = n->timer_fd;
  epoll_ctl(n->epoll_fd, EPOLL_CTL_ADD, n->timer_fd, &ev);

  n->loop_exited = false;
  rc = pthread_create(&n->thread, NULL, loop_main, n);
  if (rc) {
    n->loop_exited = true;
    rc = mq_status_set(st, MQ_EIO, "starting the core loop thread: %s", strerror(rc));
    goto err_timer;
  }
  n->started = true;
  /* A single agent is the one voter of every shard: ready at once. */
  atomic_store(&n->ready, true);
  for (int i = 0; i < n->n_shards; i++)
    mq_debug("raft", "shard %d: became leader for term %llu", i,
             (unsigned long long)n->shards[i].term);
  mq_info("core", "core loop started: %d shards, this agent leads all of them", n->n_shards);
  return 0;

err_timer:
  close(n->timer_fd);
  n->timer_fd = -1;
err_epoll:
  close(n->epoll_fd);
  n->epoll_fd = -1;
  return rc;
}

int mq_node_submit(struct mq_node *n, struct mq_req *r) {
  mq_status_clear(&r->status);
  r->mail.kind = MAIL_REQ;
  return mq_mailbox_push(&n->mailbox, &r->mail);
}

bool mq_node_ready(const struct mq_node *n) {
  return atomic_load(&n->ready) && !atomic_load(&n->stopping);
}

void mq_node_stop(struct mq_node *n) {
  if (atomic_exchange(&n->stopping, true))
    return;
  atomic_store(&n->ready, false);
  if (n->started) {
    uint64_t one = 1;
    ssize_t w = write(n->mailbox.efd, &one, sizeof one);
    (void)w;
    pthread_join(n->thread, NULL);
  } else {
    reject_mail(n, mq_mailbox_shut(&n->mailbox));
  }
  mq_info("core", "core loop stopped");
}

void mq_node_free(struct mq_node *n) {
  if (!n)
    return;
  mq_node_stop(n);
  for (int i = 0; i < n->n_shards; i++)
    mq_sm_free(n->shards[i].sm);
  free(n->shards);
  if (n->timer_fd >= 0)
    close(n->timer_fd);
  if (n->epoll_fd >= 0)
    close(n->epoll_fd);
  mq_mailbox_close(&n->mailbox);
  mq_buf_close(&n->scratch);
  pthread_cond_destroy(&n->exit_cond);
  pthread_mutex_destroy(&n->exit_lock);
  free(n);
}

const char *mq_req_type_name(enum mq_req_type t) {
  static const char *names[MQ_REQ_TYPES] = {"put", "get", "delete", "scan",
                                            "produce", "read", "status"};
  return (unsigned)t < MQ_REQ_TYPES ? names[t] : "unknown";
}

int mq_node_shards(const struct mq_node *n) { return n->n_shards; }

const struct mq_config *mq_node_config(const struct mq_node *n) { return n->cfg; }

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
  m->memory_budget_bytes = n->cfg->memory_budget_bytes;
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
        .commit_index = atomic_load_explicit(&s->pub_applied, memory_order_relaxed),
        .term = s->term,
        .is_leader = true,
    };
  }
}
