/* Topic logs: sorted topic table, per-topic entry ring, retention. */
#include "store/topic.h"

#include "store/kv.h"
#include "util/err.h"

#include <stdlib.h>
#include <string.h>

static uint64_t ent_mem(const struct mq_logent *e) {
  return sizeof *e + e->key_len + e->value_len + sizeof(struct mq_logent *);
}

void mq_topics_init(struct mq_topics *ts) { memset(ts, 0, sizeof *ts); }

static void topic_free(struct mq_topic *t) {
  for (size_t i = 0; i < t->count; i++)
    free(t->ring[(t->head + i) & (t->cap - 1)]);
  free(t->ring);
  free(t->name);
  free(t);
}

void mq_topics_close(struct mq_topics *ts) {
  for (size_t i = 0; i < ts->n; i++)
    topic_free(ts->v[i]);
  free(ts->v);
  memset(ts, 0, sizeof *ts);
}

/* Index of the first topic whose name is >= name. */
static size_t lower_bound(const struct mq_topics *ts, const char *name, size_t len) {
  size_t lo = 0, hi = ts->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    const struct mq_topic *t = ts->v[mid];
    if (mq_kv_keycmp(t->name, t->name_len, name, len) < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

struct mq_topic *mq_topics_find(const struct mq_topics *ts, const char *name, size_t len) {
  size_t i = lower_bound(ts, name, len);
  if (i < ts->n && ts->v[i]->name_len == len && memcmp(ts->v[i]->name, name, len) == 0)
    return ts->v[i];
  return NULL;
}

int mq_topics_get(struct mq_topics *ts, const char *name, size_t len, int64_t start,
                  struct mq_topic **out) {
  size_t i = lower_bound(ts, name, len);
  if (i < ts->n && ts->v[i]->name_len == len && memcmp(ts->v[i]->name, name, len) == 0) {
    *out = ts->v[i];
    return 0;
  }
  if (ts->n == ts->cap) {
    size_t cap = ts->cap ? ts->cap * 2 : 8;
    struct mq_topic **v = realloc(ts->v, cap * sizeof *v);
    if (!v)
      return MQ_ENOMEM;
    ts->v = v;
    ts->cap = cap;
  }
  struct mq_topic *t = calloc(1, sizeof *t);
  char *nm = malloc(len + 1);
  if (!t || !nm) {
    free(t);
    free(nm);
    return MQ_ENOMEM;
  }
  memcpy(nm, name, len);
  nm[len] = '\0';
  t->name = nm;
  t->name_len = len;
  t->start = start;
  memmove(ts->v + i + 1, ts->v + i, (ts->n - i) * sizeof *ts->v);
  ts->v[i] = t;
  ts->n++;
  ts->mem += sizeof *t + len + 1 + sizeof t;
  *out = t;
  return 0;
}

void mq_topics_drop_empty(struct mq_topics *ts, struct mq_topic *t) {
  if (t->count)
    return;
  size_t i = lower_bound(ts, t->name, t->name_len);
  if (i >= ts->n || ts->v[i] != t)
    return;
  memmove(ts->v + i, ts->v + i + 1, (ts->n - i - 1) * sizeof *ts->v);
  ts->n--;
  ts->mem -= sizeof *t + t->name_len + 1 + sizeof t + t->cap * sizeof(t->ring[0]);
  topic_free(t);
}

static int ring_grow(struct mq_topics *ts, struct mq_topic *t) {
  size_t cap = t->cap ? t->cap * 2 : 16;
  struct mq_logent **ring = malloc(cap * sizeof *ring);
  if (!ring)
    return MQ_ENOMEM;
  for (size_t i = 0; i < t->count; i++)
    ring[i] = t->ring[(t->head + i) & (t->cap - 1)];
  free(t->ring);
  ts->mem += (cap - t->cap) * sizeof *ring;
  t->ring = ring;
  t->cap = cap;
  t->head = 0;
  return 0;
}

int mq_topic_append(struct mq_topics *ts, struct mq_topic *t, const char *key, size_t key_len,
                    const uint8_t *value, size_t value_len, int64_t timestamp) {
  if (key_len > UINT32_MAX || value_len > UINT32_MAX)
    return MQ_EINVAL;
  if (t->count == t->cap && ring_grow(ts, t))
    return MQ_ENOMEM;
  struct mq_logent *e = malloc(sizeof *e + key_len + value_len);
  if (!e)
    return MQ_ENOMEM;
  e->timestamp = timestamp;
  e->key_len = (uint32_t)key_len;
  e->value_len = (uint32_t)value_len;
  if (key_len)
    memcpy(e->data, key, key_len);
  if (value_len)
    memcpy(e->data + key_len, value, value_len);
  t->ring[(t->head + t->count) & (t->cap - 1)] = e;
  t->count++;
  t->bytes += key_len + value_len;
  ts->mem += ent_mem(e) - sizeof(struct mq_logent *); /* the slot is counted with the ring */
  return 0;
}

static void drop_head(struct mq_topics *ts, struct mq_topic *t) {
  struct mq_logent *e = t->ring[t->head];
  t->ring[t->head] = NULL;
  t->head = (t->head + 1) & (t->cap - 1);
  t->count--;
  t->start++;
  t->bytes -= e->key_len + e->value_len;
  ts->mem -= ent_mem(e) - sizeof(struct mq_logent *);
  free(e);
}

void mq_topic_retain(struct mq_topics *ts, struct mq_topic *t, uint64_t max_entries,
                     uint64_t max_bytes, int64_t max_age_ms, int64_t now_ms) {
  while (t->count > 1) {
    const struct mq_logent *e = t->ring[t->head];
    bool too_many = max_entries && t->count > max_entries;
    bool too_big = max_bytes && t->bytes > max_bytes;
    /* now_ms - timestamp may overflow for absurd timestamps: compare the
     * other way round, in a range that cannot. */
    bool too_old = max_age_ms > 0 && e->timestamp < now_ms &&
                   (uint64_t)now_ms - (uint64_t)e->timestamp > (uint64_t)max_age_ms;
    if (!too_many && !too_big && !too_old)
      break;
    drop_head(ts, t);
  }
}
