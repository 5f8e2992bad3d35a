/* Commands: the payload of a shard's Raft log entries.
 *
 * Every mutation of a shard state machine is one command, encoded to bytes by
 * the replica that proposes it and decoded by every replica that applies it.
 * A command carries everything its effect depends on — including the
 * proposer's wall clock (now_ms), from which TTL deadlines, produce
 * timestamps and retention by age are computed — so that every replica that
 * applies the same log reaches the same state (Raft paper section 5.1: the
 * state machine must be deterministic).
 *
 * The encoding is our own compact binary format (agent/util/buf.h), versioned
 * by a leading byte; decoding untrusted bytes never crashes: it returns
 * MQ_ECORRUPT. */
#ifndef MQ_STORE_CMD_H
#define MQ_STORE_CMD_H

#include "store/types.h"
#include "util/buf.h"

enum mq_cmd_type {
  MQ_CMD_NOOP = 0,    /* no effect, no revision (leader's election no-op) */
  MQ_CMD_PUT = 1,     /* key, value, ttl_ms, pre, return_previous */
  MQ_CMD_DELETE = 2,  /* key, pre */
  MQ_CMD_EXPIRE = 3,  /* key, expect_mod_revision: the TTL reaper's delete */
  MQ_CMD_PRODUCE = 4, /* topic, partition (== shard), entry key/value/timestamp */
};

struct mq_cmd {
  enum mq_cmd_type type;
  int64_t now_ms; /* proposer's wall clock, ms since the epoch */

  /* Request identity for at-most-once application of retried writes:
   * client_id != 0 names a client (an agent), seq >= 1 numbers its
   * requests, each with a new seq. Requests may commit out of order; a seq
   * more than MQ_DEDUP_WINDOW (agent/store/dedup.h) below the client's
   * highest applied one is refused with MQ_ECOMPACTED. 0/0: no
   * deduplication. */
  uint64_t client_id;
  uint64_t seq;

  /* Kafka ingestion position (DESIGN.md section 9); ingest_partition < 0
   * or an empty ingest_source: none (so a zeroed command carries none). A command whose offset is
   * <= the highest applied for its (source, partition) is skipped as a redelivery.
   * ingest_prev is the offset of the previous record of the same Kafka
   * partition routed to this shard (-1: none before it): a command whose
   * prev is not the shard's recorded position is refused, so a record lost
   * in flight is never jumped over (the way an idempotent producer's
   * sequence numbers work). A NOOP with a position is a probe: it applies
   * nothing and answers the recorded position. */
  const char *ingest_source; /* Kafka topic name */
  size_t ingest_source_len;
  int32_t ingest_partition;
  int64_t ingest_offset;
  int64_t ingest_prev; /* -1 <= prev < offset */

  const char *key;
  size_t key_len;
  const uint8_t *value;
  size_t value_len;
  int64_t ttl_ms;
  struct mq_precond pre;
  bool return_previous;
  int64_t expect_mod_revision; /* EXPIRE only */

  const char *topic;
  size_t topic_len;
  int32_t partition;
  int64_t timestamp; /* PRODUCE; 0 means now_ms */
};

/* Absolute caps of the codec, far above any configured limit: a decoder
 * never trusts a length beyond them. The configured limits are checked by
 * the proposer and again by mq_sm_apply(). */
#define MQ_CMD_MAX_KEY (64u * 1024)
#define MQ_CMD_MAX_VALUE (256u * 1024 * 1024)
#define MQ_CMD_MAX_TOPIC (64u * 1024)

/* Appends the encoding of c to out. Returns 0, MQ_ENOMEM, or MQ_EINVAL
 * (out unchanged) when c could not be decoded again: an unknown type or
 * precondition, or a field over the caps above. */
int mq_cmd_encode(const struct mq_cmd *c, struct mq_buf *out);

/* Decodes data into c. Pointers in c borrow from data. Returns 0 or
 * MQ_ECORRUPT (with c zeroed) for anything malformed, truncated, of an
 * unknown version or type, or with lengths over the absolute caps. */
int mq_cmd_decode(const void *data, size_t len, struct mq_cmd *c);

#endif
