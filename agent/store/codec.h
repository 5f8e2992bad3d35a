/* Signed integers over the varint encoding of util/buf.h, shared by the
 * command codec and the snapshot format (internal to agent/store). */
#ifndef MQ_STORE_CODEC_H
#define MQ_STORE_CODEC_H

#include "util/buf.h"
#include "util/err.h"

#include <stdint.h>

/* Zigzag: small magnitudes of either sign encode in few bytes. */
static inline void mq_put_svarint(struct mq_buf *b, int64_t v) {
  mq_buf_put_varint(b, ((uint64_t)v << 1) ^ (uint64_t)(v >> 63));
}

static inline int64_t mq_get_svarint(struct mq_reader *r) {
  uint64_t u = mq_get_varint(r);
  return (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
}

/* A zigzag varint that must fit an int32. */
static inline int32_t mq_get_si32(struct mq_reader *r) {
  int64_t v = mq_get_svarint(r);
  if (v < INT32_MIN || v > INT32_MAX) {
    r->err = MQ_ECORRUPT;
    return 0;
  }
  return (int32_t)v;
}

#endif
