/* Group membership: start positions on assignment, commits on revocation
 * and on a timer.
 *
 * Eager assignment (roundrobin), not cooperative-sticky: librdkafka 2.0.2
 * has known bugs in the cooperative protocol's incremental rebalances and
 * in close with it (README, "Kafka ingestion"); a full revocation costs a
 * pause of every partition on each rebalance, which the positions kept in
 * the shards make safe. */
#include "ingest/internal.h"

#include "util/clock.h"
#include "util/log.h"

#include <stdlib.h>
#include <string.h>

#define COMMIT_EVERY_MS 500

/* Where consumption of p starts: after everything the group committed
 * (every record below it is held by its shard) and after the last record
 * every shard holds (a shard that holds none of p's records: from the
 * start). Either bound alone is safe; the further one saves redelivery. */
static int64_t start_of(struct mq_ingest *ing, const struct part *p, int64_t committed) {
  int64_t lowest = INT64_MAX;
  for (int s = 0; s < ing->n_shards; s++)
    if (p->last[s] + 1 < lowest)
      lowest = p->last[s] + 1;
  return committed > lowest ? committed : lowest;
}

static void assign(struct mq_ingest *ing, rd_kafka_topic_partition_list_t *list) {
  /* Records of an earlier assignment still in flight would move the
   * shards' positions after the probes below: wait for them first. */
  for (int i = 0; i < list->cnt; i++) {
    int32_t id = list->elems[i].partition;
    if (id >= 0 && id < MAX_PARTITIONS)
      (void)wait_outstanding(ing, &ing->parts[id], 30000);
  }
  rd_kafka_topic_partition_list_t *got = rd_kafka_topic_partition_list_copy(list);
  if (rd_kafka_committed(ing->rk, got, 10000) != RD_KAFKA_RESP_ERR_NO_ERROR)
    for (int i = 0; i < got->cnt; i++)
      got->elems[i].offset = RD_KAFKA_OFFSET_INVALID;
  for (int i = 0; i < list->cnt; i++) {
    rd_kafka_topic_partition_t *tp = &list->elems[i];
    if (tp->partition < 0 || tp->partition >= MAX_PARTITIONS) {
      mq_error(INGEST_LOG, "partition %d is beyond the %d this agent handles: not consumed",
               tp->partition, MAX_PARTITIONS);
      tp->offset = RD_KAFKA_OFFSET_END;
      continue;
    }
    struct part *p = &ing->parts[tp->partition];
    p->id = tp->partition;
    if (!p->last) {
      p->last = malloc((size_t)ing->n_shards * sizeof *p->last);
      if (!p->last) {
        mq_error(INGEST_LOG, "out of memory assigning partition %d: exiting", p->id);
        abort();
      }
      for (int s = 0; s < ing->n_shards; s++)
        p->last[s] = -1; /* nothing sent anywhere yet */
    }
    /* The cluster must answer before this partition can be consumed. */
    while (probe_positions(ing, p->id, p->last) && !atomic_load(&ing->stopping))
      ;
    int64_t committed = got->elems[i].offset >= 0 ? got->elems[i].offset : -1;
    tp->offset = start_of(ing, p, committed);
    p->assigned = true;
    p->paused = false;
    p->needs_rewind = false;
    p->rewinds_in_row = 0;
    p->frontier = tp->offset;
    p->committed = committed;
    if (p->id >= ing->n_parts)
      ing->n_parts = p->id + 1;
    mq_info(INGEST_LOG, "assigned %s/%d: starting at offset %lld (group committed %lld)",
            ing->cfg->kafka_topic, p->id, (long long)tp->offset, (long long)committed);
  }
  rd_kafka_topic_partition_list_destroy(got);
  rd_kafka_resp_err_t err = rd_kafka_assign(ing->rk, list);
  if (err)
    mq_error(INGEST_LOG, "cannot take the assignment: %s", rd_kafka_err2str(err));
}

static void revoke(struct mq_ingest *ing, rd_kafka_topic_partition_list_t *list) {
  commit_due(ing, true);
  for (int i = 0; i < list->cnt; i++) {
    int32_t id = list->elems[i].partition;
    if (id >= 0 && id < MAX_PARTITIONS && ing->parts[id].assigned) {
      part_drop(ing, &ing->parts[id]);
      mq_info(INGEST_LOG, "revoked %s/%d at offset %lld", ing->cfg->kafka_topic, id,
              (long long)ing->parts[id].frontier);
    }
  }
  rd_kafka_assign(ing->rk, NULL);
  ingest_publish_figures(ing);
}

void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *parts,
                  void *opaque) {
  (void)rk;
  struct mq_ingest *ing = opaque;
  if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS)
    assign(ing, parts);
  else
    revoke(ing, parts);
}

/* Commits each assigned partition's frontier that moved: explicit offsets,
 * never "what was consumed". Synchronous when now (revocation, close). */
void commit_due(struct mq_ingest *ing, bool now) {
  int64_t t = mq_clock_mono_ms();
  if (!now && t < ing->next_commit_ms)
    return;
  ing->next_commit_ms = t + COMMIT_EVERY_MS;
  rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(8);
  for (int32_t i = 0; i < ing->n_parts; i++) {
    struct part *p = &ing->parts[i];
    if (!p->assigned)
      continue;
    int64_t lo, hi;
    if (rd_kafka_get_watermark_offsets(ing->rk, ing->cfg->kafka_topic, i, &lo, &hi) == 0 && hi >= 0)
      p->high = hi;
    if (p->frontier > p->committed)
      rd_kafka_topic_partition_list_add(list, ing->cfg->kafka_topic, i)->offset = p->frontier;
  }
  if (list->cnt) {
    rd_kafka_resp_err_t err = rd_kafka_commit(ing->rk, list, now ? 0 : 1);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR || !now)
      for (int i = 0; i < list->cnt; i++)
        ing->parts[list->elems[i].partition].committed = list->elems[i].offset;
    if (err && now)
      mq_warn(INGEST_LOG, "cannot commit offsets: %s", rd_kafka_err2str(err));
  }
  rd_kafka_topic_partition_list_destroy(list);
  ingest_publish_figures(ing);
}
