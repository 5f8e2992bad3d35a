/* Inputs that run into decoder bugs already reported and not fixed yet, in
 * code this tree cannot fix here (agent/cluster is being reworked in
 * another change). The fuzz targets and the randomized unit tests skip
 * exactly these inputs so that they keep looking for other bugs; the bugs
 * stay visible as failing checks of `test_reqcodec --known-bugs` (ctest
 * lists it as the disabled test reqcodec_known_bugs). Delete an entry, and
 * its uses, once the bug is fixed. */
#ifndef MQ_TESTS_KNOWN_BUGS_H
#define MQ_TESTS_KNOWN_BUGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Known bug 1, cluster/reqcodec.c reqcodec_decode_req(): the subtraction
 * `wall_deadline - mq_now_wall_ms()` overflows (undefined behaviour) when
 * the request's wall-clock deadline is below INT64_MIN + now. A request
 * the decoder gets that far with is consumed to its last byte, so the
 * field is the u64 that ends 4 bytes before the end (a u32 follows). True
 * when data could reach the overflow, given the wall clock now_ms. */
static inline bool mq_known_bug_reqcodec_wall(const uint8_t *data, size_t len, int64_t now_ms) {
  if (len < 12)
    return false;
  uint64_t w = 0;
  for (int i = 0; i < 8; i++)
    w |= (uint64_t)data[len - 12 + i] << (8 * i);
  /* a day of margin for the clock read inside the decoder */
  return (int64_t)w < INT64_MIN + now_ms + 86400000;
}

#endif
