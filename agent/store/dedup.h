/* Request-id table of one shard (internal to agent/store): makes a retried
 * write apply at most once (Raft dissertation section 6.3).
 *
 * A client (an agent) numbers the writes entering it and forwards several
 * at once, so they can commit out of order: seq 10 after seq 11. The table
 * therefore keeps, per client, a sliding window like IPsec's anti-replay
 * window (RFC 4303 section 3.4.3): the highest seq recorded (max_seq) and
 * the outcomes of the seqs in (max_seq - MQ_DEDUP_WINDOW, max_seq] that
 * were applied. A seq above max_seq or inside the window without an
 * outcome is new; inside the window with one it is a duplicate; at or below
 * the window's low edge it cannot be told apart and is refused.
 *
 * The outcomes sit in a ring indexed by seq modulo its capacity, each slot
 * tagged with its seq. The ring starts at MQ_DEDUP_RING_MIN slots and
 * doubles (up to MQ_DEDUP_WINDOW, where no two seqs of a window can share a
 * slot) when a new seq would land on a slot that still holds a seq of the
 * window. Cost per client: about 64 bytes plus 48 bytes a slot, so 0.8 KiB
 * to 48 KiB, plus the message of each failed request kept (at most
 * MQ_STATUS_MSG_MAX bytes). The capacity is not part of the behaviour or
 * of the snapshot, which holds only the window's outcomes.
 *
 * Clients are evicted least recently recorded beyond a fixed count; since
 * the table changes only on apply, eviction is the same on every replica.
 * An evicted client's requests count as new again. The table is part of
 * the snapshot. */
#ifndef MQ_STORE_DEDUP_H
#define MQ_STORE_DEDUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MQ_DEDUP_WINDOW 1024 /* seqs per client told apart; a power of two */
#define MQ_DEDUP_RING_MIN 16 /* first ring capacity; a power of two */

/* What mq_apply_result needs to answer a retry as the first attempt was
 * answered. */
struct mq_dedup_outcome {
  uint64_t seq; /* 0: slot unused */
  int64_t revision;
  int64_t offset;
  int64_t timestamp;
  char *msg; /* owned; NULL when code == 0 or no message */
  int code;
  bool deleted;
  bool skipped;
};

struct mq_dedup_client {
  uint64_t id;
  uint64_t max_seq;
  struct mq_dedup_outcome *ring; /* cap slots; slot of seq: seq & (cap - 1) */
  size_t cap;
  struct mq_dedup_client *hnext;       /* hash chain */
  struct mq_dedup_client *prev, *next; /* LRU list; head = most recent */
};

struct mq_dedup {
  struct mq_dedup_client **buckets;
  size_t nbuckets; /* power of two */
  size_t count, max;
  struct mq_dedup_client *lru_head, *lru_tail;
  uint64_t mem;
};

enum mq_dedup_verdict {
  MQ_DEDUP_NEW,       /* never applied as far as the table knows: apply, record */
  MQ_DEDUP_DUPLICATE, /* applied before: answer with its outcome */
  MQ_DEDUP_TOO_OLD,   /* seq <= max_seq - MQ_DEDUP_WINDOW: cannot tell; refuse */
};

int mq_dedup_init(struct mq_dedup *d, size_t max_clients);
void mq_dedup_close(struct mq_dedup *d);

struct mq_dedup_client *mq_dedup_find(const struct mq_dedup *d, uint64_t id);

/* Classifies request seq (> 0) of client id. On MQ_DEDUP_DUPLICATE *out is
 * the recorded outcome (borrowed until the next record), else NULL. */
enum mq_dedup_verdict mq_dedup_check(const struct mq_dedup *d, uint64_t id, uint64_t seq,
                                     const struct mq_dedup_outcome **out);

/* Records the outcome (copied, msg too) of request o->seq of client id,
 * for which mq_dedup_check() said MQ_DEDUP_NEW, and makes the client the
 * most recently used (evicting the least recent one when full). Returns 0
 * or MQ_ENOMEM, with the table unchanged. */
int mq_dedup_record(struct mq_dedup *d, uint64_t id, const struct mq_dedup_outcome *o);

/* Fills out[0 .. MQ_DEDUP_WINDOW) with the outcomes of c's window in
 * increasing seq order (borrowed until the next record) and returns how
 * many; the last is max_seq's. */
size_t mq_dedup_window(const struct mq_dedup_client *c, const struct mq_dedup_outcome **out);

#endif
