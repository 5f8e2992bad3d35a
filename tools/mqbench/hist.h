/* A latency histogram with log-linear buckets (the HDR histogram idea):
 * values below 128 ns get a bucket each; above, every power of two is split
 * into 64 equal buckets, so any recorded value is known within 1/64
 * (~1.6%) of itself, over the whole 64-bit range, in a fixed 30 KiB.
 *
 * Not thread-safe: each benchmark thread records into its own histogram and
 * the results are merged at the end. */
#ifndef MQ_BENCH_HIST_H
#define MQ_BENCH_HIST_H

#include <stdint.h>

#define MQ_HIST_SUB_BITS 6                      /* 64 buckets per power of two */
#define MQ_HIST_LINEAR (2u << MQ_HIST_SUB_BITS) /* 128 exact buckets */
#define MQ_HIST_BUCKETS (MQ_HIST_LINEAR + (64 - 7) * (1u << MQ_HIST_SUB_BITS))

struct mq_hist {
  uint64_t count;
  uint64_t sum; /* saturates instead of wrapping */
  uint64_t min;
  uint64_t max;
  uint64_t buckets[MQ_HIST_BUCKETS];
};

void mq_hist_init(struct mq_hist *h);
void mq_hist_record(struct mq_hist *h, uint64_t v);
/* Adds every value of src into dst. */
void mq_hist_merge(struct mq_hist *dst, const struct mq_hist *src);
/* The value at quantile q (0 < q <= 1): the middle of the bucket holding
 * the ceil(q * count)-th smallest value, clamped to [min, max]. 0 when
 * empty. */
uint64_t mq_hist_quantile(const struct mq_hist *h, double q);
double mq_hist_mean(const struct mq_hist *h);

#endif
