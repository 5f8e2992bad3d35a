/* Watches: subscriptions to a shard's change events.
 *
 * The hub (a list of open watches) belongs to the core loop. Each applied
 * mutation is matched against every watch and, once per event, deep-copied
 * into a reference-counted mq_watch_event that the matching watches queue.
 * A watch's queue is the only state shared with the subscriber's thread and
 * is guarded by the watch's own mutex. Per shard, a watch remembers the last
 * revision it queued, so the replay of history at open and the live events
 * that follow never overlap and never leave a gap. */
#include "cluster/internal.h"
#include "util/log.h"

#include <stdlib.h>
#include <string.h>

#define DEFAULT_MAX_QUEUED 10000
#define DEFAULT_MAX_QUEUED_BYTES (64u << 20)

struct qitem {
  struct qitem *next;
  struct mq_watch_event *ev;
};

struct mq_watch {
  struct mq_mail open_mail;
  struct mq_mail close_mail;
  struct mq_node *node;

  /* parameters, copied at open */
  char *prefix;
  size_t prefix_len;
  char *topic; /* NULL: a KV watch */
  size_t topic_len;
  struct mq_watch_start *starts;
  size_t n_starts;
  size_t max_queued;
  uint64_t max_queued_bytes;
  mq_watch_notify_fn notify;
  void *arg;

  /* core loop only */
  int64_t *last_rev; /* per shard */
  struct mq_watch *next, *prev;
  bool in_hub;
  void (*closed)(void *arg);
  void *closed_arg;

  /* shared with the subscriber, under lock */
  pthread_mutex_t lock;
  struct qitem *qhead, *qtail;
  size_t queued;
  uint64_t queued_bytes; /* event_bytes() of the queued events */
  bool ended;
  struct mq_status end_status;
};

struct mq_watch *mq_watch_from_mail(struct mq_mail *m) {
  if (m->kind == MAIL_WATCH_OPEN)
    return (struct mq_watch *)((char *)m - offsetof(struct mq_watch, open_mail));
  return (struct mq_watch *)((char *)m - offsetof(struct mq_watch, close_mail));
}

/* ------------------------------------------------------------------------ */
/* Events */

static struct mq_watch_event *event_copy(const struct mq_event *ev) {
  size_t need = sizeof(struct mq_watch_event) + ev->kv.key_len + ev->kv.value_len + ev->topic_len +
                ev->entry.key_len + ev->entry.value_len + 5;
  struct mq_watch_event *we = malloc(need);
  if (!we)
    return NULL;
  we->ev = *ev;
  we->refs = 0;
  we->next_unused = NULL;
  char *p = (char *)(we + 1);
#define COPY_FIELD(dst, src, len)                                                                  \
  do {                                                                                             \
    if (len)                                                                                       \
      memcpy(p, src, len);                                                                         \
    p[len] = '\0';                                                                                 \
    dst = (void *)p;                                                                               \
    p += (len) + 1;                                                                                \
  } while (0)
  COPY_FIELD(we->ev.kv.key, ev->kv.key, ev->kv.key_len);
  COPY_FIELD(we->ev.kv.value, ev->kv.value, ev->kv.value_len);
  COPY_FIELD(we->ev.topic, ev->topic, ev->topic_len);
  COPY_FIELD(we->ev.entry.key, ev->entry.key, ev->entry.key_len);
  COPY_FIELD(we->ev.entry.value, ev->entry.value, ev->entry.value_len);
#undef COPY_FIELD
  return we;
}

/* What a queued event holds (shared by the watches that queue it, counted
 * by each: a bound, not a measure). */
static uint64_t event_bytes(const struct mq_event *ev) {
  return sizeof(struct mq_watch_event) + ev->kv.key_len + ev->kv.value_len + ev->topic_len +
         ev->entry.key_len + ev->entry.value_len;
}

void mq_watch_event_free(struct mq_watch_event *ev) {
  if (ev && __atomic_sub_fetch(&ev->refs, 1, __ATOMIC_ACQ_REL) == 0)
    free(ev);
}

static bool matches(const struct mq_watch *w, const struct mq_event *ev) {
  if (w->topic)
    return ev->type == MQ_EV_PRODUCE && ev->topic_len == w->topic_len &&
           memcmp(ev->topic, w->topic, w->topic_len) == 0;
  return ev->type != MQ_EV_PRODUCE && ev->kv.key_len >= w->prefix_len &&
         memcmp(ev->kv.key, w->prefix, w->prefix_len) == 0;
}

/* ------------------------------------------------------------------------ */
/* Queue (subscriber-shared) */

static void queue_drop_all(struct mq_watch *w) {
  struct qitem *q = w->qhead;
  while (q) {
    struct qitem *next = q->next;
    mq_watch_event_free(q->ev);
    free(q);
    q = next;
  }
  w->qhead = w->qtail = NULL;
  w->queued = 0;
  w->queued_bytes = 0;
}

static void hub_remove(struct mq_node *n, struct mq_watch *w) {
  if (!w->in_hub)
    return;
  atomic_fetch_sub_explicit(&n->m_watches_open, 1, memory_order_relaxed);
  if (w->prev)
    w->prev->next = w->next;
  else
    n->watches.head = w->next;
  if (w->next)
    w->next->prev = w->prev;
  w->next = w->prev = NULL;
  w->in_hub = false;
}

/* Ends a watch from the agent's side: it leaves the hub, the subscriber is
 * told why after it has taken what was queued (or at once when the queue
 * is dropped, for a subscriber that fell behind). */
static void end_watch(struct mq_node *n, struct mq_watch *w, int code, const char *msg,
                      bool drop_queue) {
  hub_remove(n, w);
  pthread_mutex_lock(&w->lock);
  if (drop_queue)
    queue_drop_all(w);
  w->ended = true;
  mq_status_set(&w->end_status, code, "%s", msg);
  pthread_mutex_unlock(&w->lock);
  w->notify(w->arg);
}

/* A copy of ev held by the caller (one reference), or NULL. The caller
 * drops its reference with mq_watch_event_free() once done queueing: the
 * subscriber may take and free a queued copy at any moment, so only
 * references decide its lifetime. */
static struct mq_watch_event *held_copy(const struct mq_event *ev) {
  struct mq_watch_event *c = event_copy(ev);
  if (c)
    c->refs = 1;
  return c;
}

/* Queues *copy (the caller holds a reference) on w; returns false if w was
 * ended for falling behind. */
static bool enqueue(struct mq_node *n, struct mq_watch *w, const struct mq_event *ev,
                    struct mq_watch_event **copy) {
  if (!*copy) {
    end_watch(n, w, MQ_ENOMEM, "out of memory queueing watch events", true);
    return false;
  }
  struct qitem *q = malloc(sizeof *q);
  if (!q) {
    end_watch(n, w, MQ_ENOMEM, "out of memory queueing watch events", true);
    return false;
  }
  uint64_t bytes = event_bytes(ev);
  pthread_mutex_lock(&w->lock);
  /* one event larger than the byte bound is queued when it is alone */
  if (w->queued >= w->max_queued || (w->queued && w->queued_bytes + bytes > w->max_queued_bytes)) {
    size_t queued = w->queued;
    unsigned long long queued_bytes = (unsigned long long)w->queued_bytes;
    pthread_mutex_unlock(&w->lock);
    free(q);
    char msg[200];
    snprintf(msg, sizeof msg,
             "watcher too slow: %zu events (%llu bytes) queued and not taken; reconnect and "
             "resume from the last revision received",
             queued, queued_bytes);
    atomic_fetch_add_explicit(&n->m_watches_slow, 1, memory_order_relaxed);
    mq_warn("watch", "ending a watch that fell %zu events (%llu bytes) behind", queued,
            queued_bytes);
    end_watch(n, w, MQ_ENOSPACE, msg, true);
    return false;
  }
  __atomic_add_fetch(&(*copy)->refs, 1, __ATOMIC_RELAXED);
  q->ev = *copy;
  q->next = NULL;
  bool was_empty = w->qhead == NULL;
  if (w->qtail)
    w->qtail->next = q;
  else
    w->qhead = q;
  w->qtail = q;
  w->queued++;
  w->queued_bytes += bytes;
  pthread_mutex_unlock(&w->lock);
  atomic_fetch_add_explicit(&n->m_watch_events, 1, memory_order_relaxed);
  w->last_rev[ev->shard] = ev->revision;
  if (was_empty)
    w->notify(w->arg);
  return true;
}

void mq_watch_dispatch(struct mq_node *n, const struct mq_event *ev) {
  struct mq_watch_event *copy = NULL;
  /* The copy is held by one extra reference while dispatching, so it
   * outlives any watch that drops it along the way. */
  struct mq_watch *w = n->watches.head;
  while (w) {
    struct mq_watch *next = w->next;
    if (ev->revision > w->last_rev[ev->shard] && matches(w, ev)) {
      if (!copy)
        copy = held_copy(ev);
      enqueue(n, w, ev, &copy);
    }
    w = next;
  }
  if (copy)
    mq_watch_event_free(copy);
}

/* ------------------------------------------------------------------------ */
/* Open and close */

struct replay {
  struct mq_node *n;
  struct mq_watch *w;
  bool alive;
};

static int replay_one(void *arg, const struct mq_event *ev) {
  struct replay *rp = arg;
  if (!matches(rp->w, ev)) {
    rp->w->last_rev[ev->shard] = ev->revision;
    return 0;
  }
  struct mq_watch_event *copy = held_copy(ev);
  rp->alive = enqueue(rp->n, rp->w, ev, &copy);
  if (copy)
    mq_watch_event_free(copy);
  return rp->alive ? 0 : 1;
}

static int64_t shard_revision(const struct shard *s) { return s->sm ? mq_sm_revision(s->sm) : 0; }

/* Replays retained history of shard sh after w's mark for it; false if the
 * watch ended (compacted, or fell behind). */
static bool replay_shard(struct mq_node *n, struct mq_watch *w, int32_t sh) {
  struct shard *s = &n->shards[sh];
  int64_t rev = w->last_rev[sh];
  int64_t cur = shard_revision(s);
  struct replay rp = {n, w, true};
#if MQ_CLUSTER_BUG(3)
  int rc = mq_sm_history(s->sm, rev > 0 ? rev + 1 : rev, replay_one, &rp);
#else
  int rc = mq_sm_history(s->sm, rev, replay_one, &rp);
#endif
  if (!rp.alive)
    return false;
  if (rc == MQ_ECOMPACTED && rev != FOLLOW_FROM_NOW) {
    char msg[256];
    snprintf(msg, sizeof msg,
             "revision %lld of shard %d is compacted: the agent keeps the last %zu events "
             "per shard; read the current state (Scan) and watch from revision %lld",
             (long long)rev, sh, n->limits.history_events, (long long)cur);
    end_watch(n, w, MQ_ECOMPACTED, msg, true);
    return false;
  }
  if (cur > w->last_rev[sh])
    w->last_rev[sh] = cur; /* never back: a watch may wait ahead of a lagging replica */
  return true;
}

void mq_watch_shard_restored(struct mq_node *n, struct shard *s) {
  struct mq_watch *w = n->watches.head;
  while (w) {
    struct mq_watch *next = w->next;
    replay_shard(n, w, s->id);
    w = next;
  }
}

void mq_watch_open_on_loop(struct mq_node *n, struct mq_watch *w) {
  if (atomic_load(&n->stopping)) {
    end_watch(n, w, MQ_EUNAVAIL, "agent is shutting down", true);
    return;
  }
  /* Shards held elsewhere are followed from a replica (follow.c); their
   * mark starts at FOLLOW_FROM_NOW until the replica says where "now" is. */
  for (int i = 0; i < n->n_shards; i++)
    w->last_rev[i] = n->shards[i].sm ? shard_revision(&n->shards[i]) : FOLLOW_FROM_NOW;
  for (size_t k = 0; k < w->n_starts; k++) {
    int32_t sh = w->starts[k].shard;
    int64_t rev = w->starts[k].revision;
    int64_t cur = shard_revision(&n->shards[sh]);
    char msg[256];
    if (!n->shards[sh].sm) {
      w->last_rev[sh] = rev; /* the replica replays from there */
      continue;
    }
    if (rev > cur) {
      /* A replica may lag the one the subscriber saw that revision on (it
       * resumes here after a reconnect): wait for it, as etcd waits for a
       * future revision. A leader that has committed in its term and
       * applied it all (or a lone agent) knows the revision cannot exist
       * yet. */
      if (n->peer && !replica_authoritative(&n->shards[sh])) {
        w->last_rev[sh] = rev;
        continue;
      }
      snprintf(msg, sizeof msg,
               "start revision %lld of shard %d is ahead of the shard's revision %lld",
               (long long)rev, sh, (long long)cur);
      end_watch(n, w, MQ_ERANGE, msg, true);
      return;
    }
    w->last_rev[sh] = rev;
    if (!replay_shard(n, w, sh))
      return;
  }
  w->prev = NULL;
  w->next = n->watches.head;
  if (w->next)
    w->next->prev = w;
  n->watches.head = w;
  w->in_hub = true;
  atomic_fetch_add_explicit(&n->m_watches_open, 1, memory_order_relaxed);
}

static void watch_free(struct mq_watch *w) {
  queue_drop_all(w);
  pthread_mutex_destroy(&w->lock);
  free(w->prefix);
  free(w->topic);
  free(w->starts);
  free(w->last_rev);
  free(w);
}

void mq_watch_close_on_loop(struct mq_node *n, struct mq_watch *w) {
  hub_remove(n, w);
  void (*closed)(void *) = w->closed;
  void *arg = w->closed_arg;
  watch_free(w);
  if (closed)
    closed(arg);
}

void mq_watch_follow_started(struct mq_node *n, int32_t shard, int64_t cur) {
  for (struct mq_watch *w = n->watches.head; w; w = w->next)
    if (w->last_rev[shard] == FOLLOW_FROM_NOW)
      w->last_rev[shard] = cur;
}

int64_t mq_watch_min_rev(struct mq_node *n, int32_t shard) {
  int64_t min = INT64_MAX;
  for (struct mq_watch *w = n->watches.head; w; w = w->next)
    if (w->last_rev[shard] < min)
      min = w->last_rev[shard];
  return min;
}

void mq_watch_end_shard(struct mq_node *n, int32_t shard, int code, const char *msg) {
  struct mq_watch *w = n->watches.head;
  while (w) {
    struct mq_watch *next = w->next;
    if (w->last_rev[shard] != FOLLOW_FROM_NOW)
      end_watch(n, w, code, msg, true);
    w = next;
  }
}

void mq_watch_end_all(struct mq_node *n, int code, const char *msg) {
  while (n->watches.head)
    end_watch(n, n->watches.head, code, msg, false);
}

int mq_node_watch_open(struct mq_node *n, const struct mq_watch_params *p,
                       mq_watch_notify_fn notify, void *arg, struct mq_watch **out,
                       struct mq_status *st) {
  if (p->prefix_len && mq_store_check_key(&n->limits, p->prefix, p->prefix_len, st))
    return mq_status_set(st, MQ_EINVAL, "prefix: %.200s", st->msg);
  if (p->topic && mq_store_check_topic(&n->limits, p->topic, p->topic_len, st))
    return st->code;
  for (size_t k = 0; k < p->n_starts; k++) {
    if (p->starts[k].shard < 0 || p->starts[k].shard >= n->n_shards)
      return mq_status_set(st, MQ_EINVAL, "start_revisions names shard %d; shards are 0..%d",
                           p->starts[k].shard, n->n_shards - 1);
    if (p->starts[k].revision < 0)
      return mq_status_set(st, MQ_EINVAL, "start revision of shard %d is negative",
                           p->starts[k].shard);
  }
  struct mq_watch *w = calloc(1, sizeof *w);
  if (!w)
    return mq_status_set(st, MQ_ENOMEM, "out of memory opening a watch");
  pthread_mutex_init(&w->lock, NULL);
  w->node = n;
  w->notify = notify;
  w->arg = arg;
  w->max_queued = p->max_queued ? p->max_queued : DEFAULT_MAX_QUEUED;
  w->max_queued_bytes = p->max_queued_bytes ? p->max_queued_bytes : DEFAULT_MAX_QUEUED_BYTES;
  w->prefix = malloc(p->prefix_len + 1);
  w->last_rev = calloc((size_t)n->n_shards, sizeof *w->last_rev);
  w->starts = malloc((p->n_starts ? p->n_starts : 1) * sizeof *w->starts);
  if (p->topic) {
    w->topic = malloc(p->topic_len + 1);
    if (w->topic) {
      memcpy(w->topic, p->topic, p->topic_len);
      w->topic[p->topic_len] = '\0';
      w->topic_len = p->topic_len;
    }
  }
  if (!w->prefix || !w->last_rev || !w->starts || (p->topic && !w->topic)) {
    watch_free(w);
    return mq_status_set(st, MQ_ENOMEM, "out of memory opening a watch");
  }
  if (p->prefix_len)
    memcpy(w->prefix, p->prefix, p->prefix_len);
  w->prefix[p->prefix_len] = '\0';
  w->prefix_len = p->prefix_len;
  if (p->n_starts)
    memcpy(w->starts, p->starts, p->n_starts * sizeof *w->starts);
  w->n_starts = p->n_starts;

  w->open_mail.kind = MAIL_WATCH_OPEN;
  if (mq_mailbox_push(&n->mailbox, &w->open_mail)) {
    watch_free(w);
    return mq_status_set(st, MQ_EUNAVAIL, "agent is shutting down");
  }
  *out = w;
  return 0;
}

int mq_watch_pop(struct mq_watch *w, struct mq_watch_event **ev, struct mq_status *st) {
  pthread_mutex_lock(&w->lock);
  struct qitem *q = w->qhead;
  if (q) {
    w->qhead = q->next;
    if (!w->qhead)
      w->qtail = NULL;
    w->queued--;
    w->queued_bytes -= event_bytes(&q->ev->ev);
    pthread_mutex_unlock(&w->lock);
    *ev = q->ev;
    free(q);
    return 0;
  }
  if (w->ended) {
    if (st)
      *st = w->end_status;
    int code = w->end_status.code;
    pthread_mutex_unlock(&w->lock);
    return code;
  }
  pthread_mutex_unlock(&w->lock);
  return 1;
}

void mq_watch_close(struct mq_watch *w, void (*closed)(void *arg), void *arg) {
  struct mq_node *n = w->node;
  w->closed = closed;
  w->closed_arg = arg;
  w->close_mail.kind = MAIL_WATCH_CLOSE;
  if (mq_mailbox_push(&n->mailbox, &w->close_mail) == 0)
    return;
  /* The core loop has stopped taking mail: wait until it has let go of
   * every watch, then release this one here. */
  pthread_mutex_lock(&n->exit_lock);
  while (!n->loop_exited)
    pthread_cond_wait(&n->exit_cond, &n->exit_lock);
  pthread_mutex_unlock(&n->exit_lock);
  mq_watch_close_on_loop(n, w);
}
