/* One assigned Kafka partition: its records in Kafka order, the offset
 * last sent to each shard (the "previous offset" a record carries), the
 * commit frontier, and the rewind after a record was not taken. */
#include "ingest/internal.h"

#include "util/log.h"

#include <stdlib.h>
#include <time.h>

void part_push(struct mq_ingest *ing, struct part *p, struct rec *r) {
  r->part = p;
  r->next = NULL;
  if (p->tail)
    p->tail->next = r;
  else
    p->head = r;
  p->tail = r;
  p->queued++;
  ing->queued++;
  if (p->frontier < 0)
    p->frontier = r->offset;
}

/* Frees the records at the head that are done: every record below the new
 * frontier is held by its shard (or was bad), so the frontier may be
 * committed to Kafka. */
void part_advance(struct mq_ingest *ing, struct part *p) {
  while (p->head && p->head->ok && !p->head->outstanding) {
    struct rec *r = p->head;
    p->head = r->next;
    if (!p->head)
      p->tail = NULL;
    p->frontier = r->offset + 1;
    p->queued--;
    ing->queued--;
    rec_free(r);
  }
}

/* Sends r to its shard, after the last record sent there. A record at or
 * below that offset is held by the shard already. */
static void send_rec(struct mq_ingest *ing, struct part *p, struct rec *r) {
  if (!rec_check(ing, r))
    return;
  int64_t *last = &p->last[r->shard];
  if (r->offset <= *last) {
    r->ok = true;
    return;
  }
  int64_t prev = *last;
  *last = r->offset;
  rec_submit(ing, r, prev);
}

void part_take(struct mq_ingest *ing, const rd_kafka_message_t *m) {
  if (m->partition < 0 || m->partition >= MAX_PARTITIONS)
    return;
  struct part *p = &ing->parts[m->partition];
  if (!p->assigned)
    return; /* fetched before a revocation */
  struct rec *r;
  if (rec_new(ing, m, &r)) {
    /* Records are never fetched twice within an assignment (no seek: see
     * README), so one dropped here would break the partition's chain for
     * good. A restart resumes from the shards' positions, exactly once. */
    mq_error(INGEST_LOG, "out of memory taking record %d@%lld: exiting", p->id,
             (long long)m->offset);
    abort();
  }
  part_push(ing, p, r);
  if (!p->needs_rewind)
    send_rec(ing, p, r); /* otherwise the rewind sends it, in order */
  part_advance(ing, p);
}

void part_drop(struct mq_ingest *ing, struct part *p) {
  struct rec *r = p->head;
  while (r) {
    struct rec *next = r->next;
    ing->queued--;
    if (r->outstanding)
      r->orphan = true; /* freed when its request completes */
    else
      rec_free(r);
    r = next;
  }
  p->head = p->tail = NULL;
  p->queued = 0;
  p->assigned = false;
  p->paused = false;
  p->needs_rewind = false;
}

static void sleep_ms(int64_t ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* A record of p was refused (a gap: one before it never arrived) or its
 * outcome is unknown (no leader, deadline). Wait until nothing of p is in
 * flight, ask every shard how far it got, and send again, in Kafka order,
 * every record not held yet. Records of one user go to one shard, so their
 * order holds: the shard refuses anything but the next one. */
int part_rewind(struct mq_ingest *ing, struct part *p) {
  if (p->rewinds_in_row > 2) /* the cluster is not taking writes: do not spin */
    sleep_ms(p->rewinds_in_row > 20 ? 2000 : 100 * p->rewinds_in_row);
  p->rewinds_in_row++;
  if (wait_outstanding(ing, p, 30000))
    return MQ_ETIMEDOUT;
  if (!p->assigned)
    return 0;
  if (probe_positions(ing, p->id, p->last))
    return MQ_EUNAVAIL;
  p->needs_rewind = false;
  atomic_fetch_add(&ing->m_rewinds, 1);
  size_t resent = 0;
  for (struct rec *r = p->head; r; r = r->next) {
    if (r->ok)
      continue;
    send_rec(ing, p, r);
    resent += r->outstanding;
  }
  mq_info(INGEST_LOG, "partition %d: resent %zu records from offset %lld after asking the shards",
          p->id, resent, p->head ? (long long)p->head->offset : -1LL);
  part_advance(ing, p);
  return 0;
}
