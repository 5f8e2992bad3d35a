/* Kafka ingestion (DESIGN.md section 9): records of --kafka-topic land in
 * the shards exactly once, in Kafka order per user.
 *
 * A thread of its own runs a librdkafka consumer in the cluster's consumer
 * group (every agent derives the same group id, so each Kafka partition is
 * consumed by one agent at a time). Each record becomes a request — Produce
 * to the topic log of the same name (--kafka-target log) or Put/Delete
 * (kv) — submitted to the node like any API request, so it is routed (and
 * forwarded) to the leader of the record's shard; the core loop never
 * waits on Kafka.
 *
 * Exactly once. A request carries the record's (topic, partition, offset)
 * and the offset of the previous record of the same Kafka partition sent
 * to the same shard. The shard keeps the highest offset it applied per
 * Kafka partition: a redelivery is skipped, and a record whose previous
 * offset is not the recorded one is refused (a record before it was lost
 * in flight), after which this module waits for the partition's requests
 * in flight, asks every shard its position and resends what is missing.
 * Start positions after an assignment come from the shards (a probe through
 * each shard's log) and the group's committed offset, whichever is
 * further; offsets are committed to Kafka, as explicit lists, only up to
 * the records all of whose predecessors are committed in Raft.
 *
 * Threads: start and stop from main; everything else on the ingest
 * thread, except the request completions (core loop: they queue and wake)
 * and mq_ingest_metrics (any thread). */
#ifndef MQ_INGEST_INGEST_H
#define MQ_INGEST_INGEST_H

#include "cluster/node.h"
#include "config/config.h"
#include "util/buf.h"
#include "util/err.h"

struct mq_ingest;

/* Starts consuming when cfg->kafka_enabled (otherwise *out = NULL and 0).
 * node and cfg are borrowed until mq_ingest_stop(). The broker need not be
 * up: the consumer connects when it can. Returns 0, or MQ_EINVAL /
 * MQ_ENOMEM / MQ_EIO with st->msg saying why. */
int mq_ingest_start(struct mq_ingest **out, struct mq_node *node, const struct mq_config *cfg,
                    struct mq_status *st);

/* Commits what is committed in Raft, leaves the group, joins the thread
 * and frees. Call before the node stops. NULL is fine. */
void mq_ingest_stop(struct mq_ingest *ing);

/* Appends the ingestion metrics in the Prometheus text format to b. Any
 * thread; ing may be NULL (nothing appended). */
void mq_ingest_metrics(struct mq_ingest *ing, struct mq_buf *b);

#endif
