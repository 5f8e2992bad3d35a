/* A log rate limit (util/ratelimit.h). */
#include "util/ratelimit.h"

bool mq_ratelimit_pass(struct mq_ratelimit *r, int64_t now, int64_t every_ms, unsigned *held) {
  if (r->last_ms != 0 && now - r->last_ms < every_ms) {
    r->held++;
    return false;
  }
  *held = r->held;
  r->held = 0;
  r->last_ms = now;
  return true;
}
