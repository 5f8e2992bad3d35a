/* Kafka ingestion positions of one shard (internal to agent/store): the
 * highest offset applied per (source topic, Kafka partition), so records
 * redelivered after a crash or a rebalance are skipped (DESIGN.md section
 * 9). Sorted by (source, partition) for snapshots; there are few. */
#ifndef MQ_STORE_INGESTPOS_H
#define MQ_STORE_INGESTPOS_H

#include <stddef.h>
#include <stdint.h>

struct mq_ingestpos {
  char *source;
  size_t source_len;
  int32_t partition;
  int64_t offset;
};

struct mq_ingestpos_set {
  struct mq_ingestpos *v;
  size_t n, cap;
};

void mq_ingestpos_init(struct mq_ingestpos_set *s);
void mq_ingestpos_close(struct mq_ingestpos_set *s);
/* The recorded position, or NULL. */
const struct mq_ingestpos *mq_ingestpos_find(const struct mq_ingestpos_set *s, const char *source,
                                             size_t len, int32_t partition);
/* Sets the position of (source, partition) to offset. Returns 0 or MQ_ENOMEM. */
int mq_ingestpos_set(struct mq_ingestpos_set *s, const char *source, size_t len, int32_t partition,
                     int64_t offset);

#endif
