/* The inside of struct mq_sm, shared by the files that implement it (apply
 * and reads, snapshot, digest). Internal to agent/store. */
#ifndef MQ_STORE_SM_INTERNAL_H
#define MQ_STORE_SM_INTERNAL_H

#include "store/dedup.h"
#include "store/history.h"
#include "store/ingestpos.h"
#include "store/kv.h"
#include "store/sm.h"
#include "store/topic.h"

/* Everything a snapshot holds. A restore builds a second one and swaps it
 * in only when it is complete. */
struct mq_sm_state {
  uint64_t applied_index;
  int64_t revision;
  struct mq_kvmap kv;
  struct mq_topics topics;
  struct mq_hist hist;
  struct mq_dedup dedup;
  struct mq_ingestpos_set ingest;
};

struct mq_sm {
  int32_t shard;
  struct mq_store_limits limits;
  struct mq_sm_state s;
  /* What the last apply's result borrows beyond the live state: a record
   * it removed and a value it replaced. Freed by the next apply/restore. */
  struct mq_kvrec *dead;
  uint8_t *old_value;
};

int mq_sm_state_init(struct mq_sm_state *s, const struct mq_store_limits *l);
void mq_sm_state_close(struct mq_sm_state *s);
void mq_sm_release_borrowed(struct mq_sm *sm);

#endif
