/* Byte buffers and readers. */
#include "util/buf.h"

#include "util/err.h"

#include <stdlib.h>
#include <string.h>

void mq_buf_init(struct mq_buf *b) { memset(b, 0, sizeof *b); }

void mq_buf_close(struct mq_buf *b) {
  free(b->data);
  memset(b, 0, sizeof *b);
}

void mq_buf_reset(struct mq_buf *b) {
  b->len = 0;
  b->err = 0;
}

int mq_buf_reserve(struct mq_buf *b, size_t n) {
  if (b->err)
    return b->err;
  if (n <= b->cap - b->len)
    return 0;
  size_t cap = b->cap ? b->cap : 64;
  while (cap - b->len < n) {
    if (cap > SIZE_MAX / 2) {
      b->err = MQ_ENOMEM;
      return b->err;
    }
    cap *= 2;
  }
  uint8_t *d = realloc(b->data, cap);
  if (!d) {
    b->err = MQ_ENOMEM;
    return b->err;
  }
  b->data = d;
  b->cap = cap;
  return 0;
}

void mq_buf_put(struct mq_buf *b, const void *p, size_t n) {
  if (n == 0 || mq_buf_reserve(b, n))
    return;
  memcpy(b->data + b->len, p, n);
  b->len += n;
}

void mq_buf_put_u8(struct mq_buf *b, uint8_t v) { mq_buf_put(b, &v, 1); }

void mq_buf_put_u32(struct mq_buf *b, uint32_t v) {
  uint8_t t[4];
  for (int i = 0; i < 4; i++)
    t[i] = (uint8_t)(v >> (8 * i));
  mq_buf_put(b, t, 4);
}

void mq_buf_put_u64(struct mq_buf *b, uint64_t v) {
  uint8_t t[8];
  for (int i = 0; i < 8; i++)
    t[i] = (uint8_t)(v >> (8 * i));
  mq_buf_put(b, t, 8);
}

void mq_buf_put_varint(struct mq_buf *b, uint64_t v) {
  uint8_t t[10];
  size_t n = 0;
  while (v >= 0x80) {
    t[n++] = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  t[n++] = (uint8_t)v;
  mq_buf_put(b, t, n);
}

void mq_buf_put_bytes(struct mq_buf *b, const void *p, size_t n) {
  mq_buf_put_varint(b, n);
  mq_buf_put(b, p, n);
}

uint8_t *mq_buf_steal(struct mq_buf *b, size_t *len) {
  uint8_t *d = b->data;
  *len = b->len;
  memset(b, 0, sizeof *b);
  return d;
}

void mq_reader_init(struct mq_reader *r, const void *data, size_t len) {
  r->p = data;
  r->end = r->p + len;
  r->err = 0;
}

size_t mq_reader_left(const struct mq_reader *r) { return (size_t)(r->end - r->p); }

const uint8_t *mq_get_raw(struct mq_reader *r, size_t n) {
  if (r->err || n > mq_reader_left(r)) {
    r->err = MQ_ECORRUPT;
    return NULL;
  }
  const uint8_t *p = r->p;
  r->p += n;
  return p;
}

uint8_t mq_get_u8(struct mq_reader *r) {
  const uint8_t *p = mq_get_raw(r, 1);
  return p ? p[0] : 0;
}

uint32_t mq_get_u32(struct mq_reader *r) {
  const uint8_t *p = mq_get_raw(r, 4);
  uint32_t v = 0;
  if (p)
    for (int i = 0; i < 4; i++)
      v |= (uint32_t)p[i] << (8 * i);
  return v;
}

uint64_t mq_get_u64(struct mq_reader *r) {
  const uint8_t *p = mq_get_raw(r, 8);
  uint64_t v = 0;
  if (p)
    for (int i = 0; i < 8; i++)
      v |= (uint64_t)p[i] << (8 * i);
  return v;
}

uint64_t mq_get_varint(struct mq_reader *r) {
  uint64_t v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    const uint8_t *p = mq_get_raw(r, 1);
    if (!p)
      return 0;
    v |= (uint64_t)(p[0] & 0x7f) << shift;
    if (!(p[0] & 0x80))
      return v;
  }
  r->err = MQ_ECORRUPT;
  return 0;
}

const uint8_t *mq_get_bytes(struct mq_reader *r, size_t *len, size_t max) {
  uint64_t n = mq_get_varint(r);
  if (r->err || n > max) {
    r->err = MQ_ECORRUPT;
    *len = 0;
    return NULL;
  }
  *len = (size_t)n;
  return mq_get_raw(r, (size_t)n);
}
