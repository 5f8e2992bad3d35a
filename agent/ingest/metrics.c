/* Ingestion metrics in the Prometheus text format, appended to the HTTP
 * port's /metrics (feed/feed.h). Counters are relaxed atomics; partition
 * figures are copied under a lock by the ingest thread at each commit. */
#include "ingest/internal.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>

void ingest_publish_figures(struct mq_ingest *ing) {
  pthread_mutex_lock(&ing->mlock);
  int32_t n = 0;
  for (int32_t i = 0; i < ing->n_parts; i++) {
    const struct part *p = &ing->parts[i];
    if (p->assigned)
      ing->figures[n++] = (struct part_figures){i, p->frontier, p->high};
  }
  ing->n_figures = n;
  pthread_mutex_unlock(&ing->mlock);
}

static void put(struct mq_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct mq_buf *b, const char *fmt, ...) {
  char line[512];
  va_list ap;
  va_start(ap, fmt);
  int len = vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (len > 0)
    mq_buf_put(b, line, (size_t)len < sizeof line ? (size_t)len : sizeof line - 1);
}

static void counter(struct mq_buf *b, const char *name, const char *help, uint64_t v) {
  char line[512];
  int len = snprintf(line, sizeof line, "# HELP %s %s\n# TYPE %s counter\n%s %" PRIu64 "\n", name,
                     help, name, name, v);
  mq_buf_put(b, line, (size_t)len);
}

static void gauge(struct mq_buf *b, const char *name, const char *help) {
  char line[512];
  int len = snprintf(line, sizeof line, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name);
  mq_buf_put(b, line, (size_t)len);
}

void mq_ingest_metrics(struct mq_ingest *ing, struct mq_buf *b) {
  if (!ing)
    return;
  counter(b, "memquorum_kafka_records_ingested_total",
          "Kafka records their shard took from this agent (applied, or held already from an "
          "earlier delivery).",
          atomic_load(&ing->m_ingested));
  counter(b, "memquorum_kafka_bad_records_total",
          "Kafka records refused for their contents (bad key, value too big).",
          atomic_load(&ing->m_bad));
  counter(b, "memquorum_kafka_dlq_records_total", "Bad records written to the DLQ topic.",
          atomic_load(&ing->m_dlq));
  counter(b, "memquorum_kafka_dlq_failures_total", "Bad records the DLQ topic did not take.",
          atomic_load(&ing->m_dlq_failed));
  counter(b, "memquorum_kafka_refused_total",
          "Records a shard refused because one before them had not arrived.",
          atomic_load(&ing->m_refused));
  counter(b, "memquorum_kafka_rewinds_total",
          "Times a partition's records were resent after asking the shards their positions.",
          atomic_load(&ing->m_rewinds));
  counter(b, "memquorum_kafka_commit_latency_ms_sum",
          "Sum of the times from proposing a record to its Raft commit, ms.",
          atomic_load(&ing->m_latency_ms_sum));
  counter(b, "memquorum_kafka_commit_latency_ms_count", "Records the sum above counts.",
          atomic_load(&ing->m_latency_count));
  gauge(b, "memquorum_kafka_in_flight", "Record requests submitted and not completed.");
  put(b, "memquorum_kafka_in_flight %" PRIu64 "\n", (uint64_t)atomic_load(&ing->m_in_flight));
  gauge(b, "memquorum_kafka_connected", "1 while the Kafka brokers answer.");
  put(b, "memquorum_kafka_connected %d\n", atomic_load(&ing->m_connected) ? 1 : 0);
  gauge(b, "memquorum_kafka_committed_offset",
        "Per assigned partition: the offset below which every record is committed in Raft.");
  pthread_mutex_lock(&ing->mlock);
  for (int32_t i = 0; i < ing->n_figures; i++)
    put(b, "memquorum_kafka_committed_offset{partition=\"%d\"} %lld\n", ing->figures[i].partition,
        (long long)ing->figures[i].committed);
  pthread_mutex_unlock(&ing->mlock);
  gauge(b, "memquorum_kafka_lag",
        "Per assigned partition: records on the broker not committed here.");
  pthread_mutex_lock(&ing->mlock);
  for (int32_t i = 0; i < ing->n_figures; i++) {
    int64_t lag = ing->figures[i].high - ing->figures[i].committed;
    put(b, "memquorum_kafka_lag{partition=\"%d\"} %lld\n", ing->figures[i].partition,
        (long long)(lag > 0 ? lag : 0));
  }
  pthread_mutex_unlock(&ing->mlock);
}
