/* Event history ring. */
#include "store/history.h"

#include "util/err.h"

#include <stdlib.h>
#include <string.h>

void mq_hist_init(struct mq_hist *h, size_t max_events, uint64_t max_bytes) {
  memset(h, 0, sizeof *h);
  h->max_events = max_events;
  h->max_bytes = max_bytes;
}

static size_t payload_of(const struct mq_event *ev) {
  return ev->kv.key_len + ev->kv.value_len + ev->topic_len + ev->entry.key_len +
         ev->entry.value_len;
}

static void drop_oldest(struct mq_hist *h) {
  struct mq_hist_slot *o = &h->ring[h->head];
  h->bytes -= sizeof *o->ev + o->payload;
  h->mem -= sizeof *o->ev + o->payload;
  free(o->ev);
  o->ev = NULL;
  h->head = (h->head + 1) % h->cap;
  h->count--;
}

void mq_hist_clear(struct mq_hist *h) {
  while (h->count)
    drop_oldest(h);
  h->head = 0;
}

void mq_hist_close(struct mq_hist *h) {
  mq_hist_clear(h);
  free(h->ring);
  h->ring = NULL;
  h->cap = 0;
}

/* Copies n bytes to *dst and advances it; returns where they went. */
static const void *copy_out(char **dst, const void *src, size_t n) {
  char *at = *dst;
  if (n)
    memcpy(at, src, n);
  *dst += n;
  return at;
}

struct mq_event *mq_event_clone(const struct mq_event *ev, size_t *payload) {
  size_t p = payload_of(ev);
  struct mq_event *c = malloc(sizeof *c + p);
  if (!c)
    return NULL;
  *c = *ev;
  char *d = (char *)(c + 1);
  c->kv.key = copy_out(&d, ev->kv.key, ev->kv.key_len);
  c->kv.value = copy_out(&d, ev->kv.value, ev->kv.value_len);
  c->topic = copy_out(&d, ev->topic, ev->topic_len);
  c->entry.key = copy_out(&d, ev->entry.key, ev->entry.key_len);
  c->entry.value = copy_out(&d, ev->entry.value, ev->entry.value_len);
  if (payload)
    *payload = p;
  return c;
}

int mq_hist_push(struct mq_hist *h, const struct mq_event *ev) {
  if (h->max_events == 0)
    return 0;
  size_t p;
  struct mq_event *c = mq_event_clone(ev, &p);
  if (!c)
    goto fail;
  while (h->count > 0 &&
         (h->count >= h->max_events || (h->max_bytes && h->bytes + sizeof *c + p > h->max_bytes)))
    drop_oldest(h);
  if (h->count == h->cap) {
    size_t cap = h->cap ? h->cap * 2 : 64;
    if (cap > h->max_events)
      cap = h->max_events;
    struct mq_hist_slot *ring = malloc(cap * sizeof *ring);
    if (!ring) {
      free(c);
      goto fail;
    }
    for (size_t i = 0; i < h->count; i++)
      ring[i] = h->ring[(h->head + i) % h->cap];
    free(h->ring);
    h->mem += (cap - h->cap) * sizeof *ring;
    h->ring = ring;
    h->cap = cap;
    h->head = 0;
  }
  h->ring[(h->head + h->count) % h->cap] = (struct mq_hist_slot){c, p};
  h->count++;
  h->bytes += sizeof *c + p;
  h->mem += sizeof *c + p;
  return 0;

fail:
  mq_hist_clear(h);
  return MQ_ENOMEM;
}
