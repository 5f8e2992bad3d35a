/* The process's clocks in milliseconds: CLOCK_MONOTONIC for timers and
 * deadlines (never the wall clock for those: STYLE.md), CLOCK_REALTIME for
 * timestamps a person or another process reads. */
#ifndef MQ_UTIL_CLOCK_H
#define MQ_UTIL_CLOCK_H

#include <stdint.h>

int64_t mq_clock_mono_ms(void);
int64_t mq_clock_wall_ms(void);
/* Wall-clock nanoseconds (incarnations start from a boot-time reading). */
uint64_t mq_clock_wall_ns(void);

#endif
