/* Request-id table of one shard (internal to agent/store): makes a retried
 * write apply at most once (Raft dissertation section 6.3). For each client
 * session it keeps the highest seq applied and the outcomes of its last
 * MQ_DEDUP_WINDOW requests, so a client with a few requests in flight gets
 * each one's first outcome back. Sessions are evicted least recently used
 * beyond a fixed count; since the table changes only on apply, eviction is
 * the same on every replica. The table is part of the snapshot. */
#ifndef MQ_STORE_DEDUP_H
#define MQ_STORE_DEDUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MQ_DEDUP_WINDOW 4

struct mq_dedup_outcome {
  uint64_t seq; /* 0: slot unused */
  int code;
  bool deleted;
  bool skipped;
  int64_t revision;
  int64_t offset;
  int64_t timestamp;
  char *msg; /* owned; NULL when code == 0 or no message */
};

struct mq_dedup_client {
  uint64_t id;
  uint64_t last_seq;
  struct mq_dedup_outcome win[MQ_DEDUP_WINDOW]; /* ring, newest at pos - 1 */
  unsigned pos;
  struct mq_dedup_client *hnext;      /* hash chain */
  struct mq_dedup_client *prev, *next; /* LRU list; head = most recent */
};

struct mq_dedup {
  struct mq_dedup_client **buckets;
  size_t nbuckets; /* power of two */
  size_t count, max;
  struct mq_dedup_client *lru_head, *lru_tail;
  uint64_t mem;
};

int mq_dedup_init(struct mq_dedup *d, size_t max_clients);
void mq_dedup_close(struct mq_dedup *d);

struct mq_dedup_client *mq_dedup_find(const struct mq_dedup *d, uint64_t id);
/* The recorded outcome of seq, or NULL if it is no longer kept. */
const struct mq_dedup_outcome *mq_dedup_outcome(const struct mq_dedup_client *c, uint64_t seq);

/* Records the outcome (copied, msg too) of request seq of client id, making
 * the client the most recently used (evicting the least recent one when
 * full). seq must be above the client's last_seq. Returns 0 or MQ_ENOMEM. */
int mq_dedup_record(struct mq_dedup *d, uint64_t id, const struct mq_dedup_outcome *o);

#endif
