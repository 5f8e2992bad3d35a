/* A log rate limit: one line per interval, counting the ones held back.
 * Not locked: the caller's lock guards it. */
#ifndef MQ_UTIL_RATELIMIT_H
#define MQ_UTIL_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

struct mq_ratelimit {
  int64_t last_ms; /* 0: nothing logged yet */
  unsigned held;
};

/* True when a line may be logged at now (CLOCK_MONOTONIC ms); *held then
 * gets the count held back since the last one. */
bool mq_ratelimit_pass(struct mq_ratelimit *r, int64_t now, int64_t every_ms, unsigned *held);

#endif
