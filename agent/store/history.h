/* The event history of one shard (internal to agent/store): the most recent
 * events, deep-copied, in revision order, bounded by a count and a byte
 * budget, so a watcher that reconnects can resume after its last revision.
 * Every revision makes exactly one event, so the retained events are always
 * the contiguous revisions (revision - count, revision]. */
#ifndef MQ_STORE_HISTORY_H
#define MQ_STORE_HISTORY_H

#include "store/types.h"
#include "util/buf.h"

#include <stddef.h>
#include <stdint.h>

/* Each event is kept as one compact record (history.c): varints and its
 * bytes, about 20 bytes beside the key and value instead of the 168 of a
 * struct mq_event, so a byte budget holds nearly twice the events. The
 * records lie back to back in one circular buffer, oldest first, which
 * grows up to the byte budget and an eighth (room lost where a record does
 * not fit before the end): no allocation per event, and nothing left
 * scattered among the pages of records that were freed. */
struct mq_hist_slot {
  size_t off;   /* in buf */
  uint32_t len; /* kept here: evicting must not read the cold record */
};

struct mq_hist {
  struct mq_hist_slot *ring;
  size_t head, count, cap;
  size_t max_events;
  uint64_t max_bytes; /* 0: unlimited */
  uint64_t bytes;     /* retained records (max_bytes bounds it) */
  uint64_t mem;       /* memory held: the buffer and the ring */
  uint8_t *buf;
  size_t buf_cap;
  struct mq_buf scratch;
};

void mq_hist_init(struct mq_hist *h, size_t max_events, uint64_t max_bytes);
void mq_hist_close(struct mq_hist *h);
void mq_hist_clear(struct mq_hist *h);

/* Appends a copy of ev, evicting the oldest events over the bounds.
 * Returns 0 or MQ_ENOMEM; on failure the history is cleared, because a
 * history with a gap would hand a watcher a silently incomplete stream. */
int mq_hist_push(struct mq_hist *h, const struct mq_event *ev);

/* The i-th retained event, oldest first, into *ev; its keys and values
 * point into the history and stay valid until the next push or clear. */
void mq_hist_get(const struct mq_hist *h, size_t i, struct mq_event *ev);

#endif
