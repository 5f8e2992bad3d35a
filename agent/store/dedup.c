/* Request-id table: chained hash table of clients, an LRU list, and per
 * client a growing ring of outcomes (see dedup.h). */
#include "store/dedup.h"

#include "store/hash.h"
#include "util/err.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

_Static_assert((MQ_DEDUP_WINDOW & (MQ_DEDUP_WINDOW - 1)) == 0, "window: power of two");
_Static_assert((MQ_DEDUP_RING_MIN & (MQ_DEDUP_RING_MIN - 1)) == 0, "ring: power of two");
_Static_assert(MQ_DEDUP_RING_MIN <= MQ_DEDUP_WINDOW, "ring grows up to the window");

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

static void drop_msg(struct mq_dedup *d, struct mq_dedup_outcome *o) {
  if (o->msg) {
    d->mem -= strlen(o->msg) + 1;
    free(o->msg);
    o->msg = NULL;
  }
}

static void client_free(struct mq_dedup *d, struct mq_dedup_client *c) {
  for (size_t i = 0; i < c->cap; i++)
    drop_msg(d, &c->ring[i]);
  d->mem -= c->cap * sizeof *c->ring + sizeof *c;
  free(c->ring);
  free(c);
}

void mq_dedup_close(struct mq_dedup *d) {
  struct mq_dedup_client *c = d->lru_head;
  while (c) {
    struct mq_dedup_client *n = c->next;
    client_free(d, c);
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

/* ---- the window --------------------------------------------------------- */

/* Whether slot o holds a seq of the window that ends at max. Every seq
 * recorded is <= max. */
static bool in_window(const struct mq_dedup_outcome *o, uint64_t max) {
  return o->seq != 0 && max - o->seq < MQ_DEDUP_WINDOW;
}

enum mq_dedup_verdict mq_dedup_check(const struct mq_dedup *d, uint64_t id, uint64_t seq,
                                     const struct mq_dedup_outcome **out) {
  assert(seq != 0);
  *out = NULL;
  const struct mq_dedup_client *c = mq_dedup_find(d, id);
  if (!c || seq > c->max_seq)
    return MQ_DEDUP_NEW;
  if (c->max_seq - seq >= MQ_DEDUP_WINDOW)
    return MQ_DEDUP_TOO_OLD;
  /* Every recorded seq of the window sits in its own slot, so a slot
   * holding another seq means this one was never applied. */
  const struct mq_dedup_outcome *o = &c->ring[seq & (c->cap - 1)];
  if (o->seq != seq)
    return MQ_DEDUP_NEW;
  *out = o;
  return MQ_DEDUP_DUPLICATE;
}

size_t mq_dedup_window(const struct mq_dedup_client *c, const struct mq_dedup_outcome **out) {
  /* The window's seqs are distinct modulo MQ_DEDUP_WINDOW: bucket them by
   * that, then walk from the slot after max_seq's round to max_seq's. */
  const struct mq_dedup_outcome *by[MQ_DEDUP_WINDOW] = {0};
  for (size_t i = 0; i < c->cap; i++)
    if (in_window(&c->ring[i], c->max_seq))
      by[c->ring[i].seq % MQ_DEDUP_WINDOW] = &c->ring[i];
  size_t n = 0;
  for (uint64_t k = 1; k <= MQ_DEDUP_WINDOW; k++) {
    const struct mq_dedup_outcome *o = by[(c->max_seq + k) % MQ_DEDUP_WINDOW];
    if (o)
      out[n++] = o;
  }
  return n;
}

/* The smallest capacity above c->cap at which seq and the seqs of the
 * window ending at max that c holds all have slots of their own. */
static size_t cap_needed(const struct mq_dedup_client *c, uint64_t max, uint64_t seq) {
  size_t cap = c->cap * 2;
  for (; cap < MQ_DEDUP_WINDOW; cap *= 2) {
    uint64_t used[MQ_DEDUP_WINDOW / 64] = {0};
    size_t s = seq & (cap - 1);
    used[s / 64] |= 1ull << (s % 64);
    bool clash = false;
    for (size_t i = 0; i < c->cap && !clash; i++) {
      if (!in_window(&c->ring[i], max))
        continue;
      s = c->ring[i].seq & (cap - 1);
      clash = (used[s / 64] >> (s % 64)) & 1;
      used[s / 64] |= 1ull << (s % 64);
    }
    if (!clash)
      return cap;
  }
  return MQ_DEDUP_WINDOW; /* seqs less than the window apart never clash */
}

/* Moves c's outcomes of the window ending at max into a ring of cap slots
 * and forgets the others. Returns 0 or MQ_ENOMEM (c unchanged). */
static int regrow(struct mq_dedup *d, struct mq_dedup_client *c, size_t cap, uint64_t max) {
  struct mq_dedup_outcome *ring = calloc(cap, sizeof *ring);
  if (!ring)
    return MQ_ENOMEM;
  for (size_t i = 0; i < c->cap; i++) {
    struct mq_dedup_outcome *o = &c->ring[i];
    if (!in_window(o, max)) {
      drop_msg(d, o);
      continue;
    }
    struct mq_dedup_outcome *to = &ring[o->seq & (cap - 1)];
    assert(to->seq == 0);
    *to = *o;
  }
  free(c->ring);
  d->mem += (cap - c->cap) * sizeof *ring;
  c->ring = ring;
  c->cap = cap;
  return 0;
}

/* ---- clients ------------------------------------------------------------ */

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
  client_free(d, c);
}

int mq_dedup_record(struct mq_dedup *d, uint64_t id, const struct mq_dedup_outcome *o) {
  assert(o->seq != 0);
  if (d->max == 0)
    return 0;
  char *msg = NULL;
  size_t msg_size = 0;
  if (o->msg) {
    msg_size = strlen(o->msg) + 1;
    msg = malloc(msg_size);
    if (!msg)
      return MQ_ENOMEM;
    memcpy(msg, o->msg, msg_size);
  }
  struct mq_dedup_client *c = mq_dedup_find(d, id);
  bool created = !c;
  if (created) {
    c = calloc(1, sizeof *c);
    if (!c)
      goto have_msg;
    c->id = id;
    c->max_seq = o->seq;
  }
  uint64_t max = o->seq > c->max_seq ? o->seq : c->max_seq;
  assert(max - o->seq < MQ_DEDUP_WINDOW);
  size_t cap = c->cap;
  if (cap == 0)
    cap = MQ_DEDUP_RING_MIN;
  else if (in_window(&c->ring[o->seq & (cap - 1)], max))
    cap = cap_needed(c, max, o->seq);
  if (cap != c->cap && regrow(d, c, cap, max))
    goto have_client;

  if (created) {
    if (d->count >= d->max)
      evict(d, d->lru_tail);
    size_t b = bucket_of(d, id);
    c->hnext = d->buckets[b];
    d->buckets[b] = c;
    d->count++;
    d->mem += sizeof *c;
  } else {
    lru_unlink(d, c);
  }
  lru_push_front(d, c);

  struct mq_dedup_outcome *slot = &c->ring[o->seq & (c->cap - 1)];
  assert(slot->seq != o->seq && !in_window(slot, max));
  drop_msg(d, slot);
  *slot = *o;
  slot->msg = msg;
  d->mem += msg_size;
  c->max_seq = max;
  return 0;

have_client:
  if (created) {
    d->mem -= c->cap * sizeof *c->ring;
    free(c->ring);
    free(c);
  }
have_msg:
  free(msg);
  return MQ_ENOMEM;
}
