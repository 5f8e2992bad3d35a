/* The dead-letter topic (--kafka-dlq-topic): records MemQuorum cannot take
 * are copied there, with headers naming where they came from and why, so
 * a partition never stops on them. Produce is asynchronous; the ingest
 * thread serves the delivery reports. */
#include "ingest/internal.h"

#include "util/log.h"

#include <stdio.h>
#include <string.h>

static void delivered(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
  (void)rk;
  struct mq_ingest *ing = opaque;
  if (m->err) {
    atomic_fetch_add(&ing->m_dlq_failed, 1);
    mq_warn(INGEST_LOG, "record not written to the DLQ topic %s: %s", ing->cfg->kafka_dlq_topic,
            rd_kafka_err2str(m->err));
  } else {
    atomic_fetch_add(&ing->m_dlq, 1);
  }
}

int dlq_new(struct mq_ingest *ing, struct mq_status *st) {
  if (!ing->cfg->kafka_dlq_topic[0])
    return 0;
  char err[256];
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  if (rd_kafka_conf_set(conf, "bootstrap.servers", ing->cfg->kafka_bootstrap, err, sizeof err) ||
      rd_kafka_conf_set(conf, "enable.idempotence", "true", err, sizeof err) ||
      rd_kafka_conf_set(conf, "log.connection.close", "false", err, sizeof err)) {
    rd_kafka_conf_destroy(conf);
    return mq_status_set(st, MQ_EINVAL, "DLQ producer: %s", err);
  }
  rd_kafka_conf_set_opaque(conf, ing);
  rd_kafka_conf_set_dr_msg_cb(conf, delivered);
  ing->dlq = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  if (!ing->dlq) {
    rd_kafka_conf_destroy(conf);
    return mq_status_set(st, MQ_EIO, "DLQ producer: %s", err);
  }
  return 0;
}

void dlq_send(struct mq_ingest *ing, const struct rec *r, const char *why) {
  if (!ing->dlq)
    return;
  char part[16], off[24];
  snprintf(part, sizeof part, "%d", r->part ? r->part->id : -1);
  snprintf(off, sizeof off, "%lld", (long long)r->offset);
  const char *src = ing->cfg->kafka_topic;
  rd_kafka_resp_err_t err = rd_kafka_producev(
      ing->dlq, RD_KAFKA_V_TOPIC(ing->cfg->kafka_dlq_topic),
      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(r->key, r->key_len),
      RD_KAFKA_V_VALUE(r->tombstone ? NULL : r->value, r->value_len),
      RD_KAFKA_V_HEADER("memquorum.source.topic", src, (ssize_t)strlen(src)),
      RD_KAFKA_V_HEADER("memquorum.source.partition", part, (ssize_t)strlen(part)),
      RD_KAFKA_V_HEADER("memquorum.source.offset", off, (ssize_t)strlen(off)),
      RD_KAFKA_V_HEADER("memquorum.error", why, (ssize_t)strlen(why)), RD_KAFKA_V_END);
  if (err) {
    atomic_fetch_add(&ing->m_dlq_failed, 1);
    mq_warn(INGEST_LOG, "record %s/%s@%s not queued for the DLQ: %s", src, part, off,
            rd_kafka_err2str(err));
  }
}

void dlq_close(struct mq_ingest *ing) {
  if (!ing->dlq)
    return;
  if (rd_kafka_flush(ing->dlq, 3000))
    mq_warn(INGEST_LOG, "%d records not delivered to the DLQ at shutdown",
            rd_kafka_outq_len(ing->dlq));
  rd_kafka_destroy(ing->dlq);
  ing->dlq = NULL;
}
