/* Event history: compact records in a circular buffer (store/history.h). */
#include "store/history.h"

#include "store/codec.h"
#include "util/err.h"

#include <assert.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

void mq_hist_init(struct mq_hist *h, size_t max_events, uint64_t max_bytes) {
  memset(h, 0, sizeof *h);
  h->max_events = max_events;
  h->max_bytes = max_bytes;
  mq_buf_init(&h->scratch);
}

static void drop_oldest(struct mq_hist *h) {
  h->bytes -= h->ring[h->head].len;
  h->head = (h->head + 1) % h->cap;
  h->count--;
}

void mq_hist_clear(struct mq_hist *h) {
  h->head = h->count = 0;
  h->bytes = 0;
  h->mem -= h->buf_cap;
  free(h->buf);
  h->buf = NULL;
  h->buf_cap = 0;
}

void mq_hist_close(struct mq_hist *h) {
  mq_hist_clear(h);
  free(h->ring);
  h->ring = NULL;
  h->cap = 0;
  h->mem = 0;
  mq_buf_close(&h->scratch);
}

static const struct mq_hist_slot *newest(const struct mq_hist *h) {
  return &h->ring[(h->head + h->count - 1) % h->cap];
}

/* Where a record of len bytes can go without overwriting a retained one:
 * after the newest record, or at the start once the oldest is far enough
 * from it. */
static bool find_room(const struct mq_hist *h, size_t len, size_t *at) {
  if (h->count == 0) {
    *at = 0;
    return len <= h->buf_cap;
  }
  size_t tail = newest(h)->off + newest(h)->len;
  size_t oldest = h->ring[h->head].off;
  if (tail > oldest) { /* not wrapped: free space at the end and at the start */
    if (h->buf_cap - tail >= len) {
      *at = tail;
      return true;
    }
    *at = 0;
    return oldest >= len;
  }
  *at = tail;
  return oldest - tail >= len;
}

/* Moves the records, in order, to the start of a buffer of cap bytes. */
static int regrow(struct mq_hist *h, size_t cap) {
  uint8_t *buf = malloc(cap);
  if (!buf)
    return MQ_ENOMEM;
  size_t off = 0;
  for (size_t i = 0; i < h->count; i++) {
    struct mq_hist_slot *sl = &h->ring[(h->head + i) % h->cap];
    memcpy(buf + off, h->buf + sl->off, sl->len);
    sl->off = off;
    off += sl->len;
  }
  free(h->buf);
  h->mem += cap - h->buf_cap;
  h->buf = buf;
  h->buf_cap = cap;
  return 0;
}

/* Finds room for len bytes: grows the buffer while it is under the byte
 * budget and an eighth (or too small for one record that is larger than
 * the budget), otherwise drops the oldest records until the new one fits. */
static int make_room(struct mq_hist *h, size_t len, size_t *at) {
  size_t limit = h->max_bytes ? (size_t)(h->max_bytes + h->max_bytes / 8) : SIZE_MAX;
  /* A record larger than the budget made the buffer larger; once it is gone
   * the buffer goes back to size (if that fails, the larger one serves). */
  if (h->buf_cap > limit && h->bytes + len <= limit)
    (void)regrow(h, limit);
  while (!find_room(h, len, at)) {
    size_t want = (size_t)h->bytes + len;
    if (h->buf_cap < limit || h->buf_cap < want) {
      size_t cap = h->buf_cap < 8192 ? 16384 : h->buf_cap * 2;
      if (cap > limit)
        cap = limit;
      if (cap < want + want / 8)
        cap = want + want / 8;
      if (regrow(h, cap))
        return MQ_ENOMEM;
    } else {
      drop_oldest(h);
    }
  }
  return 0;
}

/* The record: type, shard and revision, then the key-value's and the topic
 * entry's fields; an event of one kind leaves the other's empty (a byte
 * each). */
static void encode(struct mq_buf *b, const struct mq_event *ev) {
  mq_buf_put_u8(b, (uint8_t)ev->type);
  mq_put_svarint(b, ev->shard);
  mq_put_svarint(b, ev->revision);
  mq_buf_put_bytes(b, ev->kv.key, ev->kv.key_len);
  mq_buf_put_bytes(b, ev->kv.value, ev->kv.value_len);
  mq_put_svarint(b, ev->kv.create_revision);
  mq_put_svarint(b, ev->kv.mod_revision);
  mq_put_svarint(b, ev->kv.version);
  mq_put_svarint(b, ev->kv.expires_at_ms);
  mq_put_svarint(b, ev->kv.shard);
  mq_buf_put_bytes(b, ev->topic, ev->topic_len);
  mq_buf_put_bytes(b, ev->entry.key, ev->entry.key_len);
  mq_buf_put_bytes(b, ev->entry.value, ev->entry.value_len);
  mq_put_svarint(b, ev->entry.timestamp);
  mq_put_svarint(b, ev->entry.offset);
  mq_put_svarint(b, ev->entry.partition);
}

void mq_hist_get(const struct mq_hist *h, size_t i, struct mq_event *ev) {
  const struct mq_hist_slot *sl = &h->ring[(h->head + i) % h->cap];
  struct mq_reader r;
  mq_reader_init(&r, h->buf + sl->off, sl->len);
  memset(ev, 0, sizeof *ev);
  ev->type = (enum mq_event_type)mq_get_u8(&r);
  ev->shard = mq_get_si32(&r);
  ev->revision = mq_get_svarint(&r);
  ev->kv.key = (const char *)mq_get_bytes(&r, &ev->kv.key_len, SIZE_MAX);
  ev->kv.value = mq_get_bytes(&r, &ev->kv.value_len, SIZE_MAX);
  ev->kv.create_revision = mq_get_svarint(&r);
  ev->kv.mod_revision = mq_get_svarint(&r);
  ev->kv.version = mq_get_svarint(&r);
  ev->kv.expires_at_ms = mq_get_svarint(&r);
  ev->kv.shard = mq_get_si32(&r);
  ev->topic = (const char *)mq_get_bytes(&r, &ev->topic_len, SIZE_MAX);
  ev->entry.key = (const char *)mq_get_bytes(&r, &ev->entry.key_len, SIZE_MAX);
  ev->entry.value = mq_get_bytes(&r, &ev->entry.value_len, SIZE_MAX);
  ev->entry.timestamp = mq_get_svarint(&r);
  ev->entry.offset = mq_get_svarint(&r);
  ev->entry.partition = mq_get_si32(&r);
  /* written by encode() above, in this process: it cannot be short */
  assert(r.err == 0 && mq_reader_left(&r) == 0);
}

int mq_hist_push(struct mq_hist *h, const struct mq_event *ev) {
  if (h->max_events == 0)
    return 0;
  mq_buf_reset(&h->scratch);
  encode(&h->scratch, ev);
  size_t len = h->scratch.len, at;
  if (h->scratch.err || len > UINT32_MAX)
    goto fail;
  while (h->count > 0 &&
         (h->count >= h->max_events || (h->max_bytes && h->bytes + len > h->max_bytes)))
    drop_oldest(h);
  if (make_room(h, len, &at))
    goto fail;
  memcpy(h->buf + at, h->scratch.data, len);
  if (h->scratch.cap > 65536) { /* a large value went by: keep no copy of its size */
    mq_buf_close(&h->scratch);
    mq_buf_init(&h->scratch);
  }
  if (h->count == h->cap) {
    size_t cap = h->cap ? h->cap * 2 : 64;
    if (cap > h->max_events)
      cap = h->max_events;
    struct mq_hist_slot *ring = malloc(cap * sizeof *ring);
    if (!ring)
      goto fail;
    for (size_t i = 0; i < h->count; i++)
      ring[i] = h->ring[(h->head + i) % h->cap];
    free(h->ring);
    h->mem += (cap - h->cap) * sizeof *ring;
    h->ring = ring;
    h->cap = cap;
    h->head = 0;
  }
  h->ring[(h->head + h->count) % h->cap] = (struct mq_hist_slot){at, (uint32_t)len};
  h->count++;
  h->bytes += len;
  return 0;

fail:
  mq_hist_clear(h);
  return MQ_ENOMEM;
}
