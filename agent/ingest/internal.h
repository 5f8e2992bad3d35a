/* Shared by the files of agent/ingest. Everything here belongs to the
 * ingest thread, except what is marked otherwise. */
#ifndef MQ_INGEST_INTERNAL_H
#define MQ_INGEST_INTERNAL_H

#include "ingest/ingest.h"
#include "store/sm.h"

#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define INGEST_LOG "ingest"
#define MAX_PARTITIONS 1024

/* One Kafka record (or a position probe) on its way to a shard. Records
 * of a partition are kept in Kafka order until they, and every record
 * before them, are done: a rewind resends from that list, and the commit
 * frontier is its head. */
struct rec {
  struct mq_req req;
  struct mq_ingest *ing;
  struct part *part; /* NULL for a probe */
  int32_t shard;
  int64_t offset;
  int64_t timestamp;
  bool tombstone;       /* null value (kv target: a delete) */
  bool outstanding;     /* submitted, done() not handled yet */
  bool ok;              /* the shard holds it (applied, skipped) or it is bad */
  bool bad;             /* refused for its contents: never resent */
  bool orphan;          /* its partition was revoked while it was in flight */
  bool checked;         /* rec_check ran */
  int64_t submitted_ms; /* CLOCK_MONOTONIC */
  struct rec *next;     /* the partition's list */
  struct rec *done_next;
  char *key;
  size_t key_len;
  uint8_t *value;
  size_t value_len;
  /* a probe: the Kafka partition asked about, and the answer */
  int32_t probe_partition;
  int64_t probe_recorded;
};

struct part {
  int32_t id;
  bool assigned;
  bool paused;       /* by backpressure */
  bool needs_rewind; /* a record failed: resend after asking the shards */
  struct rec *head, *tail;
  size_t queued;      /* records in the list */
  size_t outstanding; /* requests not done, this and earlier assignments */
  int64_t *last;      /* per shard: offset of the last record sent there, -1 none */
  int64_t frontier;   /* every record below it is done; -1: unknown yet */
  int64_t committed;  /* last offset committed to Kafka; -1 none */
  int64_t high;       /* broker's high watermark, last known */
  int rewinds_in_row;
};

struct mq_ingest {
  struct mq_node *node;
  const struct mq_config *cfg;
  struct mq_store_limits limits;
  int n_shards;
  bool kv; /* --kafka-target kv */
  /* Fault injection for the tests (env MEMQUORUM_TEST_KAFKA_DROP_EVERY=N):
   * one record request in N on average, picked by a fixed pseudo-random
   * sequence, is lost before it reaches the node, as a proposal lost in a
   * leader change, and reported unavailable. 0: off. Not a fixed stride:
   * a rewind that resends a multiple of N records would have its first
   * record lost every time, and never get past it. */
  unsigned drop_every;
  uint64_t drop_rng;
  rd_kafka_t *rk;
  rd_kafka_t *dlq; /* NULL without --kafka-dlq-topic */
  pthread_t thread;
  bool thread_started;
  int wake_fd;     /* eventfd: completions queued, or stop */
  int kafka_fd[2]; /* the consumer queue's io event pipe */
  atomic_bool stopping;

  struct part parts[MAX_PARTITIONS];
  int32_t n_parts; /* highest partition id seen + 1 */
  size_t queued;   /* records held in all lists: the backpressure count */
  bool paused;
  bool broker_down; /* logged once until it comes back */
  bool was_up;      /* it answered once since the start */
  bool down_logged; /* the WARN for this outage went out */
  int64_t next_commit_ms;

  /* completions, from the core loop */
  pthread_mutex_t lock;
  struct rec *done_head, *done_tail;

  /* metrics, any thread */
  atomic_uint_fast64_t m_ingested, m_skipped, m_bad, m_dlq, m_dlq_failed, m_refused, m_rewinds;
  atomic_uint_fast64_t m_commits, m_commit_failures, m_latency_ms_sum, m_latency_count;
  atomic_uint_fast64_t m_in_flight;
  atomic_bool m_connected;
  pthread_mutex_t mlock; /* guards the partition figures below */
  struct part_figures {
    int32_t partition;
    int64_t committed, high;
  } figures[MAX_PARTITIONS];
  int32_t n_figures;
};

/* records.c */
int rec_new(struct mq_ingest *ing, const rd_kafka_message_t *m, struct rec **out);
void rec_free(struct rec *r);
/* Validates and routes a record: false (and r->bad, counted, logged, sent
 * to the DLQ) when MemQuorum cannot take it. */
bool rec_check(struct mq_ingest *ing, struct rec *r);
void rec_submit(struct mq_ingest *ing, struct rec *r, int64_t prev);
void ingest_take_completions(struct mq_ingest *ing);

/* part.c */
void part_push(struct mq_ingest *ing, struct part *p, struct rec *r);
void part_advance(struct mq_ingest *ing, struct part *p);
void part_drop(struct mq_ingest *ing, struct part *p);
int part_rewind(struct mq_ingest *ing, struct part *p);
void part_take(struct mq_ingest *ing, const rd_kafka_message_t *m);

/* probe.c: asks every shard its position of `partition`; fills last[0..n_shards). */
int probe_positions(struct mq_ingest *ing, int32_t partition, int64_t *last);
/* Waits until p has nothing outstanding, handling completions; bounded. */
int wait_outstanding(struct mq_ingest *ing, struct part *p, int64_t timeout_ms);

/* rebalance.c */
void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *parts,
                  void *opaque);
void commit_due(struct mq_ingest *ing, bool now);

/* dlq.c */
int dlq_new(struct mq_ingest *ing, struct mq_status *st);
void dlq_send(struct mq_ingest *ing, const struct rec *r, const char *why);
void dlq_close(struct mq_ingest *ing);

/* metrics */
void ingest_publish_figures(struct mq_ingest *ing);

#endif
