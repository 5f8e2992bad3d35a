/* Records: a Kafka message copied into a request for its shard, the check
 * that MemQuorum can take it, and the completions coming back from the
 * core loop. */
#include "ingest/internal.h"

#include "cluster/sharding.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/ratelimit.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

int rec_new(struct mq_ingest *ing, const rd_kafka_message_t *m, struct rec **out) {
  struct rec *r = calloc(1, sizeof *r);
  if (!r)
    return MQ_ENOMEM;
  r->ing = ing;
  r->offset = m->offset;
  rd_kafka_timestamp_type_t tt;
  int64_t ts = rd_kafka_message_timestamp(m, &tt);
  r->timestamp = ts > 0 ? ts : 0; /* 0: the proposer's clock */
  r->tombstone = m->payload == NULL;
  r->key_len = m->key ? m->key_len : 0;
  r->value_len = m->payload ? m->len : 0;
  r->key = malloc(r->key_len + 1);
  r->value = malloc(r->value_len + 1);
  if (!r->key || !r->value) {
    rec_free(r);
    return MQ_ENOMEM;
  }
  if (r->key_len)
    memcpy(r->key, m->key, r->key_len);
  r->key[r->key_len] = '\0';
  if (r->value_len)
    memcpy(r->value, m->payload, r->value_len);
  *out = r;
  return 0;
}

void rec_free(struct rec *r) {
  if (!r)
    return;
  mq_req_clear(&r->req);
  free(r->key);
  free(r->value);
  free(r);
}

static void reject(struct mq_ingest *ing, struct rec *r, const char *why) {
  static struct mq_ratelimit rl; /* ingest thread only */
  unsigned held;
  r->bad = true;
  r->ok = true;
  atomic_fetch_add(&ing->m_bad, 1);
  if (mq_ratelimit_pass(&rl, mq_clock_mono_ms(), 1000, &held))
    mq_warn(INGEST_LOG, "bad record %s/%d@%lld: %s%s (%u more since the last such line)",
            ing->cfg->kafka_topic, r->part ? r->part->id : -1, (long long)r->offset, why,
            ing->dlq ? "; sent to the DLQ" : "", held);
  dlq_send(ing, r, why);
}

bool rec_check(struct mq_ingest *ing, struct rec *r) {
  if (r->checked)
    return !r->bad;
  r->checked = true;
  struct mq_status st;
  mq_status_clear(&st);
  if (r->key_len == 0) {
    reject(ing, r, "no key: the key picks the shard");
    return false;
  }
  if (mq_store_check_key(&ing->limits, r->key, r->key_len, &st) ||
      mq_store_check_value(&ing->limits, r->value_len, &st)) {
    reject(ing, r, st.msg);
    return false;
  }
  r->shard = mq_shard_of_key(r->key, r->key_len, ing->n_shards);
  if (r->shard < 0 || r->shard >= ing->n_shards) {
    reject(ing, r, "no shard for the key");
    return false;
  }
  return true;
}

/* Core loop thread: queue and wake the ingest thread. */
static void rec_done(struct mq_req *req) {
  struct rec *r = req->arg;
  struct mq_ingest *ing = r->ing;
  pthread_mutex_lock(&ing->lock);
  r->done_next = NULL;
  if (ing->done_tail)
    ing->done_tail->done_next = r;
  else
    ing->done_head = r;
  ing->done_tail = r;
  pthread_mutex_unlock(&ing->lock);
  uint64_t one = 1;
  ssize_t w = write(ing->wake_fd, &one, sizeof one);
  (void)w; /* a full counter still wakes the thread */
}

/* The test fault: true for about one call in drop_every (xorshift64). */
static bool drop_next(struct mq_ingest *ing) {
  uint64_t x = ing->drop_rng;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  ing->drop_rng = x;
  return x % ing->drop_every == 0;
}

void rec_submit(struct mq_ingest *ing, struct rec *r, int64_t prev) {
  struct mq_req *q = &r->req;
  mq_req_clear(q);
  if (r->part == NULL) {
    mq_req_init(q, MQ_REQ_INGEST_PROBE);
    q->partition = r->shard;
  } else if (!ing->kv) {
    /* As Produce with partition -1: the key picks the shard. */
    mq_req_init(q, MQ_REQ_PRODUCE);
    q->topic = ing->cfg->kafka_topic;
    q->topic_len = strlen(q->topic);
    q->partition = -1;
    q->timestamp = r->timestamp;
  } else {
    mq_req_init(q, r->tombstone ? MQ_REQ_DELETE : MQ_REQ_PUT);
  }
  if (r->part) {
    q->key = r->key;
    q->key_len = r->key_len;
    q->value = r->value;
    q->value_len = r->value_len;
    q->ingest_partition = r->part->id;
    q->ingest_offset = r->offset;
    q->ingest_prev = prev;
  } else {
    q->ingest_partition = r->probe_partition;
  }
  q->ingest_source = ing->cfg->kafka_topic;
  q->ingest_source_len = strlen(q->ingest_source);
  q->done = rec_done;
  q->arg = r;
  r->outstanding = true;
  r->ok = false;
  r->submitted_ms = mq_clock_mono_ms();
  if (r->part)
    r->part->outstanding++;
  atomic_fetch_add(&ing->m_in_flight, 1);
  if (r->part && ing->drop_every && drop_next(ing)) {
    mq_status_set(&q->status, MQ_EUNAVAIL, "lost on purpose (MEMQUORUM_TEST_KAFKA_DROP_EVERY)");
    rec_done(q);
    return;
  }
  if (mq_node_submit(ing->node, q)) {
    mq_status_set(&q->status, MQ_EUNAVAIL, "the agent is stopping");
    rec_done(q);
  }
}

/* The outcome of a record's request. */
static void judge(struct mq_ingest *ing, struct rec *r) {
  struct part *p = r->part;
  int code = r->req.status.code;
  if (code == 0 || r->req.ingest_recorded >= r->offset) {
    r->ok = true;
    p->rewinds_in_row = 0;
    atomic_fetch_add(&ing->m_ingested, code == 0);
    atomic_fetch_add(&ing->m_latency_ms_sum, (uint64_t)(mq_clock_mono_ms() - r->submitted_ms));
    atomic_fetch_add(&ing->m_latency_count, 1);
    return;
  }
  if (code == MQ_EINVAL) {
    /* The node's limits changed since the check: a bad record after all. */
    reject(ing, r, r->req.status.msg);
    return;
  }
  if (code == MQ_EOUTOFSEQ)
    atomic_fetch_add(&ing->m_refused, 1);
  mq_debug(INGEST_LOG, "record %d@%lld for shard %d not taken: %s", p->id, (long long)r->offset,
           r->shard, r->req.status.msg);
  p->needs_rewind = true;
}

void ingest_take_completions(struct mq_ingest *ing) {
  uint64_t v;
  ssize_t rd = read(ing->wake_fd, &v, sizeof v);
  (void)rd;
  pthread_mutex_lock(&ing->lock);
  struct rec *r = ing->done_head;
  ing->done_head = ing->done_tail = NULL;
  pthread_mutex_unlock(&ing->lock);
  while (r) {
    struct rec *next = r->done_next;
    r->outstanding = false;
    atomic_fetch_sub(&ing->m_in_flight, 1);
    struct part *p = r->part;
    if (!p) {
      /* A probe: its owner (probe.c) reads the answer, unless it gave up. */
      if (r->orphan)
        rec_free(r);
      else
        r->probe_recorded = r->req.status.code ? MQ_INGEST_UNKNOWN : r->req.ingest_recorded;
    } else {
      p->outstanding--;
      if (r->orphan) {
        rec_free(r);
      } else {
        judge(ing, r);
        part_advance(ing, p);
      }
    }
    r = next;
  }
}
