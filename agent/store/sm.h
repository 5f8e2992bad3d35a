/* The shard state machine: one per shard replica (DESIGN.md section 2).
 *
 * It holds the shard's KV map (key -> value, create/mod revision, version,
 * optional expiry), its topic logs (per topic, an append-only log with
 * offsets 0, 1, 2, ... and retention by entries, bytes and age), the shard
 * revision (every committed mutation takes the next one), a bounded history
 * of recent events for watchers that resume, the request-id table that
 * makes retried writes apply at most once, and the highest Kafka offset
 * applied per source partition.
 *
 * Mutations happen only through mq_sm_apply() of a committed command, so
 * replicas that apply the same log hold the same contents (and the same
 * mq_sm_digest()). Reads take the reader's clock (now_ms) only to hide keys
 * whose TTL has passed but whose EXPIRE command is not applied yet.
 *
 * Thread: owned by the core loop thread; not thread-safe.
 * Memory: the state machine owns copies of everything it stores; pointers it
 * hands out (struct mq_kv, mq_entry, mq_event) are borrowed and valid until
 * the next mq_sm_apply/mq_sm_restore/mq_sm_close on the same object. */
#ifndef MQ_STORE_SM_H
#define MQ_STORE_SM_H

#include "store/cmd.h"
#include "store/types.h"
#include "util/buf.h"
#include "util/err.h"

#include <stdbool.h>
#include <stdint.h>

struct mq_store_limits {
  size_t max_key_bytes;       /* default 4096 */
  size_t max_value_bytes;     /* default 1 MiB */
  size_t max_topic_bytes;     /* default 255; topic names [A-Za-z0-9._-]+ */
  uint64_t retention_entries; /* per (topic, partition); 0: unlimited */
  uint64_t retention_bytes;   /* per (topic, partition); 0: unlimited */
  int64_t retention_ms;       /* entry age; 0: unlimited */
  size_t history_events;      /* events kept for watch resume; default 10000 */
  uint64_t history_bytes;     /* bytes of those events; default 64 MiB; 0: unlimited.
                                 The newest event is always kept. */
  size_t dedup_clients;       /* request-id sessions kept; default 10000 */
};

/* Fills l with the defaults above (retention: 1,000,000 entries, 64 MiB,
 * 7 days). Retention bytes count entry keys and values. */
void mq_store_limits_default(struct mq_store_limits *l);

/* Validates a key / topic name / value size against the limits; on error
 * returns MQ_EINVAL (oversize included: it is a bad argument, not a
 * resource running out) with a message naming the problem in st ("key is
 * empty", "key is 5000 bytes, the limit is 4096", "value is 2000000 bytes,
 * the limit is 1048576", "topic \"a b\" has invalid character ' ' ...").
 * Keys must be valid UTF-8 without NUL bytes. */
int mq_store_check_key(const struct mq_store_limits *l, const char *key, size_t len,
                       struct mq_status *st);
int mq_store_check_topic(const struct mq_store_limits *l, const char *topic, size_t len,
                         struct mq_status *st);
int mq_store_check_value(const struct mq_store_limits *l, size_t len, struct mq_status *st);

struct mq_sm; /* opaque */

/* Creates an empty state machine for shard `shard`. limits is copied.
 * Returns 0 or MQ_ENOMEM. */
int mq_sm_new(struct mq_sm **out, int32_t shard, const struct mq_store_limits *limits);
void mq_sm_free(struct mq_sm *sm);

/* Outcome of applying one command. */
struct mq_apply_result {
  struct mq_status status; /* 0, MQ_EPRECOND, MQ_EINVAL, ... with message */
  int64_t revision;        /* revision taken by the mutation; 0 if none */
  bool deleted;            /* DELETE: the key existed and was removed */
  bool duplicate;          /* a retried request: the first outcome is returned;
                              also set with MQ_ECOMPACTED for a request id too
                              old to tell, which had no effect */
  bool skipped;            /* Kafka redelivery or a stale EXPIRE: no effect */
  int64_t ingest_recorded; /* a command with an ingest position: the shard's
                              position for its (source, partition) after it,
                              -1 for none (MQ_EOUTOFSEQ: the one that refused it) */
  int64_t offset;          /* PRODUCE: offset of the entry */
  int64_t timestamp;       /* PRODUCE: the entry's timestamp */
  bool has_previous;       /* PUT with return_previous and a previous value */
  struct mq_kv previous;   /* borrowed, valid until the next apply */
  bool has_event;
  struct mq_event event; /* the change event, borrowed until the next apply */
};

/* Applies a committed command at Raft log index `index` (strictly
 * increasing across calls; 0 allowed in tests that have no log). The
 * command has been validated by the proposer, but apply re-checks what it
 * relies on and turns anything invalid into a result error, never a crash
 * or a corrupt shard. A failed precondition consumes no revision. */
void mq_sm_apply(struct mq_sm *sm, uint64_t index, const struct mq_cmd *c,
                 struct mq_apply_result *res);

/* The Raft index of the last applied command (or of the restored snapshot). */
uint64_t mq_sm_applied_index(const struct mq_sm *sm);
int64_t mq_sm_revision(const struct mq_sm *sm);
int32_t mq_sm_shard(const struct mq_sm *sm);
uint64_t mq_sm_key_count(const struct mq_sm *sm);
/* Approximate bytes of memory held (keys, values, entries, overheads). */
uint64_t mq_sm_bytes(const struct mq_sm *sm);
/* The bytes a memory budget counts: all of mq_sm_bytes() but the watch
 * history, which its own caps bound (limits.history_*). A delete adds an
 * event to the history; were the history counted, a full budget could not
 * be freed by deleting. */
uint64_t mq_sm_budget_bytes(const struct mq_sm *sm);
/* The same, by structure (what /metrics and Cluster Status show). */
struct mq_sm_memory {
  uint64_t kv_records;    /* record headers, keys and values */
  uint64_t kv_index;      /* hash table, ordered index, expiry heap */
  uint64_t watch_history; /* events a watch can resume from */
  uint64_t request_ids;   /* outcomes kept for retried requests */
  uint64_t topic_logs;    /* topic log entries (and Kafka positions) */
};
void mq_sm_memory(const struct mq_sm *sm, struct mq_sm_memory *m);

/* Looks a key up. Returns 0 and fills *kv (borrowed) or MQ_ENOTFOUND if
 * absent or expired at now_ms. */
int mq_sm_get(const struct mq_sm *sm, const char *key, size_t key_len, int64_t now_ms,
              struct mq_kv *kv);

/* Calls fn for each live key (not expired at now_ms) with the given prefix
 * and key > start_after (if start_after_len > 0), in byte-wise key order,
 * until fn returns non-zero or `limit` keys were passed (limit 0: no
 * limit). *more is set when
 * at least one more matching key exists after the last one passed.
 * Returns the number of keys passed. */
typedef int (*mq_sm_kv_fn)(void *arg, const struct mq_kv *kv);
size_t mq_sm_scan(const struct mq_sm *sm, const char *prefix, size_t prefix_len,
                  const char *start_after, size_t start_after_len, size_t limit, int64_t now_ms,
                  mq_sm_kv_fn fn, void *arg, bool *more);

/* Reads up to `count` entries of `topic` from `offset`. Fills the log
 * bounds even on error. Returns the number of entries passed to fn, or
 * MQ_ERANGE (with a message) when offset < log start or > high watermark.
 * A topic never produced to has start = high watermark = 0. */
typedef int (*mq_sm_entry_fn)(void *arg, const struct mq_entry *e);
struct mq_log_bounds {
  int64_t log_start_offset;
  int64_t high_watermark; /* one past the last offset */
};
int mq_sm_read(const struct mq_sm *sm, const char *topic, size_t topic_len, int64_t offset,
               size_t count, mq_sm_entry_fn fn, void *arg, struct mq_log_bounds *bounds,
               struct mq_status *st);

/* Calls fn for every retained event with revision > after_revision, in
 * order. Returns 0, or MQ_ECOMPACTED if events after after_revision are no
 * longer all retained (after_revision + 1 < oldest retained revision). */
typedef int (*mq_sm_event_fn)(void *arg, const struct mq_event *ev);
int mq_sm_history(const struct mq_sm *sm, int64_t after_revision, mq_sm_event_fn fn, void *arg);

/* Keys whose TTL passed at now_ms, for the leader to propose EXPIRE
 * commands for: calls fn with each (borrowed kv) in deadline order, at most
 * `max` of them. Returns how many were passed. */
size_t mq_sm_expired(const struct mq_sm *sm, int64_t now_ms, size_t max, mq_sm_kv_fn fn, void *arg);
/* The earliest expiry deadline of any key, or 0 if none. */
int64_t mq_sm_next_deadline(const struct mq_sm *sm);

/* Serialises the whole state (KV, topic logs, revision, applied index,
 * dedup table, Kafka offsets, event history) to out. Returns 0 or
 * MQ_ENOMEM. */
int mq_sm_snapshot(const struct mq_sm *sm, struct mq_buf *out);

/* Replaces the state with a snapshot. On any error (MQ_ECORRUPT for bad
 * bytes, a checksum mismatch or a shard mismatch; MQ_ENOMEM) the state is
 * left exactly as it was. */
int mq_sm_restore(struct mq_sm *sm, const void *data, size_t len);

/* mq_sm_restore in steps, for an owner that decodes a large snapshot away
 * from the thread that owns the state machine (about 0.6 s per million
 * keys) and installs it in an instant:
 *
 *   mq_sm_image_decode  reads sm's shard number and limits only, which never
 *                       change after mq_sm_new: it may run on any thread
 *                       while the owner goes on using sm. 0 and *out, or
 *                       the errors of mq_sm_restore (*out NULL).
 *   mq_sm_image_swap    the owner's thread: sm takes the image's state and
 *                       the image the state sm had (what sm lent out is
 *                       released, as by an apply);
 *   mq_sm_image_free    any thread, so that a large replaced state is freed
 *                       away from the owner too. */
struct mq_sm_image; /* opaque */
int mq_sm_image_decode(const struct mq_sm *sm, const void *data, size_t len,
                       struct mq_sm_image **out);
void mq_sm_image_swap(struct mq_sm *sm, struct mq_sm_image *img);
uint64_t mq_sm_image_keys(const struct mq_sm_image *img);
void mq_sm_image_free(struct mq_sm_image *img);

/* A 64-bit digest of the contents that replicas must agree on (KV map,
 * topic logs, revision), independent of memory layout and of the order
 * things were inserted; formatted as 16 hex digits by the caller. */
uint64_t mq_sm_digest(const struct mq_sm *sm);

#endif
