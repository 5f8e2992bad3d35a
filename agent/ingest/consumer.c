/* The ingest thread: the librdkafka consumer, its loop and its lifetime.
 *
 * The loop waits on two wake-ups — request completions (an eventfd the
 * core loop writes) and the consumer queue's io event — and on a 100 ms
 * timer, and calls rd_kafka_consumer_poll() (never the batch API) at every
 * round, so an idle topic or a paused partition never goes past
 * max.poll.interval.ms. */
#include "ingest/internal.h"

#include "util/clock.h"
#include "util/log.h"
#include "util/ratelimit.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <syslog.h>
#include <unistd.h>

#define ROUND_MS 100

/* librdkafka's own lines: its errors repeat every reconnect, so they go to
 * debug; the state a person needs is logged once by on_error(). */
static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
  (void)rk;
  if (level <= LOG_CRIT)
    mq_error(INGEST_LOG, "librdkafka %s: %s", fac, buf);
  else
    mq_debug(INGEST_LOG, "librdkafka %s: %s", fac, buf);
}

static void set_connected(struct mq_ingest *ing, bool up) {
  atomic_store(&ing->m_connected, up);
  if (up && ing->broker_down) {
    ing->broker_down = false;
    mq_info(INGEST_LOG, "Kafka at %s answers%s", ing->cfg->kafka_bootstrap,
            ing->was_up ? " again" : "");
    ing->was_up = true;
    ing->down_logged = false;
  }
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque) {
  (void)rk;
  struct mq_ingest *ing = opaque;
  if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN || err == RD_KAFKA_RESP_ERR__TRANSPORT ||
      err == RD_KAFKA_RESP_ERR__RESOLVE) {
    atomic_store(&ing->m_connected, false);
    if (!ing->down_logged)
      mq_warn(INGEST_LOG, "Kafka at %s unreachable (%s); the API keeps serving, retrying",
              ing->cfg->kafka_bootstrap, reason);
    ing->broker_down = true;
    ing->down_logged = true;
    return;
  }
  mq_warn(INGEST_LOG, "Kafka: %s", reason);
}

static void on_commit(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                      rd_kafka_topic_partition_list_t *offsets, void *opaque) {
  (void)rk;
  struct mq_ingest *ing = opaque;
  if (err == RD_KAFKA_RESP_ERR__NO_OFFSET)
    return;
  if (!err) {
    atomic_fetch_add(&ing->m_commits, 1);
    set_connected(ing, true);
    return;
  }
  atomic_fetch_add(&ing->m_commit_failures, 1);
  /* Commit again at the next round. */
  for (int i = 0; offsets && i < offsets->cnt; i++) {
    int32_t id = offsets->elems[i].partition;
    if (id >= 0 && id < MAX_PARTITIONS)
      ing->parts[id].committed = -1;
  }
}

static int conf_set(rd_kafka_conf_t *c, const char *k, const char *v, struct mq_status *st) {
  char err[256];
  if (rd_kafka_conf_set(c, k, v, err, sizeof err) != RD_KAFKA_CONF_OK)
    return mq_status_set(st, MQ_EINVAL, "Kafka setting %s=%s: %s", k, v, err);
  return 0;
}

static int make_consumer(struct mq_ingest *ing, struct mq_status *st) {
  const struct mq_config *cfg = ing->cfg;
  char session[16], client[300];
  snprintf(session, sizeof session, "%d", cfg->kafka_session_timeout_ms);
  snprintf(client, sizeof client, "memquorum-%s", cfg->node_id);
  rd_kafka_conf_t *c = rd_kafka_conf_new();
  if (conf_set(c, "bootstrap.servers", cfg->kafka_bootstrap, st) ||
      conf_set(c, "group.id", cfg->kafka_group, st) || conf_set(c, "client.id", client, st) ||
      conf_set(c, "enable.auto.commit", "false", st) ||
      conf_set(c, "enable.auto.offset.store", "false", st) ||
      /* Start positions are always given explicitly (rebalance.c); this
       * applies only when one is below the log start (retention removed
       * the records), where the earliest kept record is the right one. */
      conf_set(c, "auto.offset.reset", "earliest", st) ||
      conf_set(c, "partition.assignment.strategy", "roundrobin", st) ||
      conf_set(c, "session.timeout.ms", session, st) ||
      conf_set(c, "max.poll.interval.ms", "300000", st) ||
      conf_set(c, "queued.max.messages.kbytes", "16384", st) ||
      /* A topic created after the agents started (or partitions added) is
       * seen at the next metadata refresh: 10 s, not librdkafka's 5 min. */
      conf_set(c, "topic.metadata.refresh.interval.ms", "10000", st) ||
      conf_set(c, "log.connection.close", "false", st)) {
    rd_kafka_conf_destroy(c);
    return st->code;
  }
  rd_kafka_conf_set_opaque(c, ing);
  rd_kafka_conf_set_log_cb(c, on_log);
  rd_kafka_conf_set_error_cb(c, on_error);
  rd_kafka_conf_set_rebalance_cb(c, rebalance_cb);
  rd_kafka_conf_set_offset_commit_cb(c, on_commit);
  char err[256];
  ing->rk = rd_kafka_new(RD_KAFKA_CONSUMER, c, err, sizeof err);
  if (!ing->rk) {
    rd_kafka_conf_destroy(c);
    return mq_status_set(st, MQ_EIO, "Kafka consumer: %s", err);
  }
  rd_kafka_poll_set_consumer(ing->rk);
  rd_kafka_queue_t *q = rd_kafka_queue_get_consumer(ing->rk);
  rd_kafka_queue_io_event_enable(q, ing->kafka_fd[1], "1", 1);
  rd_kafka_queue_destroy(q);
  rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(topics, cfg->kafka_topic, RD_KAFKA_PARTITION_UA);
  rd_kafka_resp_err_t e = rd_kafka_subscribe(ing->rk, topics);
  rd_kafka_topic_partition_list_destroy(topics);
  if (e)
    return mq_status_set(st, MQ_EIO, "Kafka subscribe to %s: %s", cfg->kafka_topic,
                         rd_kafka_err2str(e));
  return 0;
}

/* Pauses every assigned partition while the records held pass the bound,
 * resumes them once half are done. Only partitions paused here are
 * resumed (librdkafka 2.0.2 mishandles resuming one that is not paused). */
static void backpressure(struct mq_ingest *ing) {
  size_t max = (size_t)ing->cfg->kafka_max_in_flight;
  bool want = ing->queued >= max || (ing->paused && ing->queued > max / 2);
  rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(4);
  for (int32_t i = 0; i < ing->n_parts; i++) {
    struct part *p = &ing->parts[i];
    if (p->assigned && p->paused != want) {
      rd_kafka_topic_partition_list_add(list, ing->cfg->kafka_topic, i);
      p->paused = want;
    }
  }
  if (list->cnt) {
    if (want)
      rd_kafka_pause_partitions(ing->rk, list);
    else
      rd_kafka_resume_partitions(ing->rk, list);
    mq_debug(INGEST_LOG, "%s %d partitions: %zu records held", want ? "paused" : "resumed",
             list->cnt, ing->queued);
  }
  ing->paused = want;
  rd_kafka_topic_partition_list_destroy(list);
}

/* While the brokers were unreachable, an agent that owns no busy
 * partition sees no record that would tell it they are back: ask for
 * metadata now and then (this thread only; a second at most). */
static void check_broker(struct mq_ingest *ing, int64_t *next_ms) {
  int64_t now = mq_clock_mono_ms();
  if (!ing->broker_down || now < *next_ms)
    return;
  *next_ms = now + 2000;
  const struct rd_kafka_metadata *md;
  if (rd_kafka_metadata(ing->rk, 0, NULL, &md, 1000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
    rd_kafka_metadata_destroy(md);
    set_connected(ing, true);
  }
}

static void on_message(struct mq_ingest *ing, rd_kafka_message_t *m) {
  if (!m->err) {
    set_connected(ing, true);
    part_take(ing, m);
    return;
  }
  if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
    return;
  if (m->err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN || m->err == RD_KAFKA_RESP_ERR__TRANSPORT) {
    on_error(ing->rk, m->err, rd_kafka_message_errstr(m), ing);
    return;
  }
  static struct mq_ratelimit rl;
  unsigned held;
  if (mq_ratelimit_pass(&rl, mq_clock_mono_ms(), 10000, &held))
    mq_warn(INGEST_LOG, "Kafka consumer: %s", rd_kafka_message_errstr(m));
}

static void drain_fd(int fd) {
  char buf[64];
  while (read(fd, buf, sizeof buf) > 0)
    ;
}

static void *run(void *arg) {
  struct mq_ingest *ing = arg;
  pthread_setname_np(pthread_self(), "mq-kafka");
  struct pollfd fds[2] = {{.fd = ing->wake_fd, .events = POLLIN},
                          {.fd = ing->kafka_fd[0], .events = POLLIN}};
  int64_t next_broker_check = 0;
  while (!atomic_load(&ing->stopping)) {
    (void)poll(fds, 2, ROUND_MS);
    drain_fd(ing->kafka_fd[0]);
    ingest_take_completions(ing);
    for (int taken = 0; taken < ing->cfg->kafka_max_poll_records; taken++) {
      rd_kafka_message_t *m = rd_kafka_consumer_poll(ing->rk, 0);
      if (!m)
        break;
      on_message(ing, m);
      rd_kafka_message_destroy(m);
      if (ing->queued >= (size_t)ing->cfg->kafka_max_in_flight)
        break;
    }
    for (int32_t i = 0; i < ing->n_parts && !atomic_load(&ing->stopping); i++)
      if (ing->parts[i].assigned && ing->parts[i].needs_rewind)
        (void)part_rewind(ing, &ing->parts[i]);
    backpressure(ing);
    commit_due(ing, false);
    if (ing->dlq)
      rd_kafka_poll(ing->dlq, 0);
    check_broker(ing, &next_broker_check);
  }
  /* Leaving the group: the revocation commits what Raft committed. */
  ingest_take_completions(ing);
  commit_due(ing, true);
  rd_kafka_consumer_close(ing->rk);
  return NULL;
}

int mq_ingest_start(struct mq_ingest **out, struct mq_node *node, const struct mq_config *cfg,
                    struct mq_status *st) {
  *out = NULL;
  if (!cfg->kafka_enabled)
    return 0;
  struct mq_ingest *ing = calloc(1, sizeof *ing);
  if (!ing)
    return mq_status_set(st, MQ_ENOMEM, "out of memory");
  ing->node = node;
  ing->cfg = cfg;
  ing->n_shards = mq_node_shards(node);
  ing->kv = strcmp(cfg->kafka_target, "kv") == 0;
  mq_store_limits_default(&ing->limits);
  ing->limits.max_key_bytes = (size_t)cfg->max_key_bytes;
  ing->limits.max_value_bytes = (size_t)cfg->max_value_bytes;
  ing->broker_down = true; /* until it answers (check_broker) */
  const char *drop = getenv("MEMQUORUM_TEST_KAFKA_DROP_EVERY");
  if (drop && atoi(drop) > 0) {
    ing->drop_every = (unsigned)atoi(drop);
    ing->drop_rng = 0x9e3779b97f4a7c15ULL; /* fixed: a failing run can be repeated */
    mq_warn(INGEST_LOG, "test fault on: one record request in %u is lost", ing->drop_every);
  }
  ing->wake_fd = -1;
  ing->kafka_fd[0] = ing->kafka_fd[1] = -1;
  pthread_mutex_init(&ing->lock, NULL);
  pthread_mutex_init(&ing->mlock, NULL);
  int rc;
  if (!ing->kv &&
      mq_store_check_topic(&ing->limits, cfg->kafka_topic, strlen(cfg->kafka_topic), st)) {
    rc = mq_status_set(st, MQ_EINVAL, "--kafka-topic %s cannot name a MemQuorum topic: %s",
                       cfg->kafka_topic, st->msg);
    goto fail;
  }
  ing->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (ing->wake_fd < 0 || pipe2(ing->kafka_fd, O_NONBLOCK | O_CLOEXEC)) {
    rc = mq_status_set(st, MQ_EIO, "cannot create the ingest thread's wake-up descriptors");
    goto fail;
  }
  if ((rc = make_consumer(ing, st)) || (rc = dlq_new(ing, st)))
    goto fail;
  if (pthread_create(&ing->thread, NULL, run, ing)) {
    rc = mq_status_set(st, MQ_EIO, "cannot start the ingest thread");
    goto fail;
  }
  ing->thread_started = true;
  mq_info(INGEST_LOG, "consuming %s from %s in group %s into the %s", cfg->kafka_topic,
          cfg->kafka_bootstrap, cfg->kafka_group, ing->kv ? "key space" : "topic log");
  *out = ing;
  return 0;
fail:
  mq_ingest_stop(ing);
  return rc;
}

void mq_ingest_stop(struct mq_ingest *ing) {
  if (!ing)
    return;
  atomic_store(&ing->stopping, true);
  if (ing->thread_started) {
    uint64_t one = 1;
    ssize_t w = write(ing->wake_fd, &one, sizeof one);
    (void)w;
    pthread_join(ing->thread, NULL);
  }
  /* Requests still in the core loop point at their records: wait for them
   * (they complete within their deadline, or at once if the node stops). */
  int64_t until = mq_clock_mono_ms() + 10000;
  while (atomic_load(&ing->m_in_flight) && mq_clock_mono_ms() < until) {
    struct pollfd pfd = {.fd = ing->wake_fd, .events = POLLIN};
    (void)poll(&pfd, 1, 50);
    ingest_take_completions(ing);
  }
  for (int32_t i = 0; i < MAX_PARTITIONS; i++) {
    if (ing->parts[i].head)
      part_drop(ing, &ing->parts[i]);
    free(ing->parts[i].last);
  }
  if (ing->rk)
    rd_kafka_destroy(ing->rk);
  dlq_close(ing);
  if (ing->wake_fd >= 0)
    close(ing->wake_fd);
  for (int i = 0; i < 2; i++)
    if (ing->kafka_fd[i] >= 0)
      close(ing->kafka_fd[i]);
  pthread_mutex_destroy(&ing->lock);
  pthread_mutex_destroy(&ing->mlock);
  free(ing);
}
