/* Log-linear latency histogram. See hist.h. */
#include "hist.h"

#include <assert.h>
#include <math.h>
#include <string.h>

void mq_hist_init(struct mq_hist *h) {
  memset(h, 0, sizeof(*h));
  h->min = UINT64_MAX;
}

static unsigned bucket_of(uint64_t v) {
  if (v < MQ_HIST_LINEAR) return (unsigned)v;
  unsigned msb = 63u - (unsigned)__builtin_clzll(v); /* >= 7 here */
  unsigned shift = msb - MQ_HIST_SUB_BITS;
  unsigned sub = (unsigned)(v >> shift) - (1u << MQ_HIST_SUB_BITS); /* 0..63 */
  return MQ_HIST_LINEAR + (msb - 7) * (1u << MQ_HIST_SUB_BITS) + sub;
}

/* Lowest value and width of bucket b. */
static void bucket_range(unsigned b, uint64_t *low, uint64_t *width) {
  if (b < MQ_HIST_LINEAR) {
    *low = b;
    *width = 1;
    return;
  }
  unsigned i = b - MQ_HIST_LINEAR;
  unsigned msb = 7 + (i >> MQ_HIST_SUB_BITS);
  uint64_t sub = (i & ((1u << MQ_HIST_SUB_BITS) - 1)) + (1u << MQ_HIST_SUB_BITS);
  unsigned shift = msb - MQ_HIST_SUB_BITS;
  *low = sub << shift;
  *width = (uint64_t)1 << shift;
}

void mq_hist_record(struct mq_hist *h, uint64_t v) {
  unsigned b = bucket_of(v);
  assert(b < MQ_HIST_BUCKETS);
  h->buckets[b]++;
  h->count++;
  h->sum = h->sum + v < h->sum ? UINT64_MAX : h->sum + v;
  if (v < h->min) h->min = v;
  if (v > h->max) h->max = v;
}

void mq_hist_merge(struct mq_hist *dst, const struct mq_hist *src) {
  for (unsigned b = 0; b < MQ_HIST_BUCKETS; b++) dst->buckets[b] += src->buckets[b];
  dst->count += src->count;
  dst->sum = dst->sum + src->sum < dst->sum ? UINT64_MAX : dst->sum + src->sum;
  if (src->min < dst->min) dst->min = src->min;
  if (src->max > dst->max) dst->max = src->max;
}

uint64_t mq_hist_quantile(const struct mq_hist *h, double q) {
  if (h->count == 0) return 0;
  uint64_t rank = (uint64_t)ceil(q * (double)h->count);
  if (rank < 1) rank = 1;
  if (rank > h->count) rank = h->count;
  uint64_t seen = 0;
  for (unsigned b = 0; b < MQ_HIST_BUCKETS; b++) {
    seen += h->buckets[b];
    if (seen >= rank) {
      uint64_t low, width;
      bucket_range(b, &low, &width);
      uint64_t v = low + width / 2;
      if (v < h->min) v = h->min;
      if (v > h->max) v = h->max;
      return v;
    }
  }
  return h->max;
}

double mq_hist_mean(const struct mq_hist *h) {
  return h->count ? (double)h->sum / (double)h->count : 0.0;
}
