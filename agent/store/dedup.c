/* Request-id table: chained hash table plus an LRU list. */
#include "store/dedup.h"

#include "store/hash.h"
#include "util/err.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

int mq_dedup_init(struct mq_dedup *d, size_t max_clients) {
  memset(d, 0, sizeof *d);
  d->max = max_clients;
  size_t n = 16;
  while (n < max_clients && n < ((size_t)1 << 24))
    n *= 2;
  d->buckets = calloc(n, sizeof *d->buckets);
  if (!d->buckets)
    return MQ_ENOMEM;
  d->nbuckets = n;
  d->mem = n * sizeof *d->buckets;
  return 0;
}

static void client_free(struct mq_dedup_client *c) {
  for (int i = 0; i < MQ_DEDUP_WINDOW; i++)
    free(c->win[i].msg);
  free(c);
}

void mq_dedup_close(struct mq_dedup *d) {
  struct mq_dedup_client *c = d->lru_head;
  while (c) {
    struct mq_dedup_client *n = c->next;
    client_free(c);
    c = n;
  }
  free(d->buckets);
  memset(d, 0, sizeof *d);
}

static size_t bucket_of(const struct mq_dedup *d, uint64_t id) {
  return mq_mix64(id) & (d->nbuckets - 1);
}

struct mq_dedup_client *mq_dedup_find(const struct mq_dedup *d, uint64_t id) {
  if (!d->nbuckets)
    return NULL;
  for (struct mq_dedup_client *c = d->buckets[bucket_of(d, id)]; c; c = c->hnext)
    if (c->id == id)
      return c;
  return NULL;
}

const struct mq_dedup_outcome *mq_dedup_outcome(const struct mq_dedup_client *c, uint64_t seq) {
  for (int i = 0; i < MQ_DEDUP_WINDOW; i++)
    if (c->win[i].seq == seq && seq != 0)
      return &c->win[i];
  return NULL;
}

static void lru_unlink(struct mq_dedup *d, struct mq_dedup_client *c) {
  if (c->prev)
    c->prev->next = c->next;
  else
    d->lru_head = c->next;
  if (c->next)
    c->next->prev = c->prev;
  else
    d->lru_tail = c->prev;
  c->prev = c->next = NULL;
}

static void lru_push_front(struct mq_dedup *d, struct mq_dedup_client *c) {
  c->prev = NULL;
  c->next = d->lru_head;
  if (d->lru_head)
    d->lru_head->prev = c;
  d->lru_head = c;
  if (!d->lru_tail)
    d->lru_tail = c;
}

static void evict(struct mq_dedup *d, struct mq_dedup_client *c) {
  struct mq_dedup_client **pp = &d->buckets[bucket_of(d, c->id)];
  while (*pp != c)
    pp = &(*pp)->hnext;
  *pp = c->hnext;
  lru_unlink(d, c);
  d->count--;
  d->mem -= sizeof *c;
  client_free(c);
}

int mq_dedup_record(struct mq_dedup *d, uint64_t id, const struct mq_dedup_outcome *o) {
  if (d->max == 0)
    return 0;
  char *msg = NULL;
  if (o->msg) {
    size_t n = strlen(o->msg);
    msg = malloc(n + 1);
    if (!msg)
      return MQ_ENOMEM;
    memcpy(msg, o->msg, n + 1);
  }
  struct mq_dedup_client *c = mq_dedup_find(d, id);
  if (!c) {
    c = calloc(1, sizeof *c);
    if (!c) {
      free(msg);
      return MQ_ENOMEM;
    }
    if (d->count >= d->max)
      evict(d, d->lru_tail);
    c->id = id;
    size_t b = bucket_of(d, id);
    c->hnext = d->buckets[b];
    d->buckets[b] = c;
    d->count++;
    d->mem += sizeof *c;
  } else {
    lru_unlink(d, c);
  }
  lru_push_front(d, c);
  assert(o->seq > c->last_seq);
  struct mq_dedup_outcome *slot = &c->win[c->pos];
  free(slot->msg);
  *slot = *o;
  slot->msg = msg;
  c->pos = (c->pos + 1) % MQ_DEDUP_WINDOW;
  c->last_seq = o->seq;
  return 0;
}
