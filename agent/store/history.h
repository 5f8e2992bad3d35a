/* The event history of one shard (internal to agent/store): the most recent
 * events, deep-copied, in revision order, bounded by a count and a byte
 * budget, so a watcher that reconnects can resume after its last revision.
 * Every revision makes exactly one event, so the retained events are always
 * the contiguous revisions (revision - count, revision]. */
#ifndef MQ_STORE_HISTORY_H
#define MQ_STORE_HISTORY_H

#include "store/types.h"

#include <stddef.h>
#include <stdint.h>

struct mq_hist_slot {
  struct mq_event *ev;
  size_t payload; /* kept here: evicting must not read the cold event */
};

struct mq_hist {
  struct mq_hist_slot *ring;
  size_t head, count, cap;
  size_t max_events;
  uint64_t max_bytes; /* 0: unlimited */
  uint64_t bytes;     /* retained events: headers and payloads (max_bytes bounds it) */
  uint64_t mem;       /* approximate memory held */
};

void mq_hist_init(struct mq_hist *h, size_t max_events, uint64_t max_bytes);
void mq_hist_close(struct mq_hist *h);
void mq_hist_clear(struct mq_hist *h);

/* Appends a deep copy of ev, evicting the oldest events over the bounds.
 * Returns 0 or MQ_ENOMEM; on failure the history is cleared, because a
 * history with a gap would hand a watcher a silently incomplete stream. */
int mq_hist_push(struct mq_hist *h, const struct mq_event *ev);

/* The i-th retained event, oldest first. */
static inline const struct mq_event *mq_hist_at(const struct mq_hist *h, size_t i) {
  return h->ring[(h->head + i) % h->cap].ev;
}

/* Deep copy of an event in one allocation (free() it). */
struct mq_event *mq_event_clone(const struct mq_event *ev, size_t *payload);

#endif
