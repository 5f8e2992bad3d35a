/* Waiting on the core loop from the ingest thread: for a partition's
 * requests in flight to finish, and for every shard's position of a Kafka
 * partition. Both are bounded; the consumer is not polled meanwhile, so the
 * bounds stay far below max.poll.interval.ms. */
#include "ingest/internal.h"

#include "util/clock.h"
#include "util/log.h"

#include <poll.h>
#include <stdlib.h>

#define PROBE_TIMEOUT_MS 30000

static void wait_wake(struct mq_ingest *ing, int ms) {
  struct pollfd pfd = {.fd = ing->wake_fd, .events = POLLIN};
  (void)poll(&pfd, 1, ms);
}

int wait_outstanding(struct mq_ingest *ing, struct part *p, int64_t timeout_ms) {
  int64_t until = mq_clock_mono_ms() + timeout_ms;
  for (;;) {
    ingest_take_completions(ing);
    if (p->outstanding == 0)
      return 0;
    if (mq_clock_mono_ms() > until || atomic_load(&ing->stopping))
      return MQ_ETIMEDOUT;
    wait_wake(ing, 100);
  }
}

/* A probe is a NOOP proposed through the shard's log: its answer follows
 * every record committed before it, wherever it was proposed. */
int probe_positions(struct mq_ingest *ing, int32_t partition, int64_t *last) {
  int n = ing->n_shards;
  struct rec **probes = calloc((size_t)n, sizeof *probes);
  if (!probes)
    return MQ_ENOMEM;
  int rc = 0;
  for (int s = 0; s < n && !rc; s++) {
    probes[s] = calloc(1, sizeof **probes);
    if (!probes[s])
      rc = MQ_ENOMEM;
    else {
      probes[s]->ing = ing;
      probes[s]->shard = s;
      probes[s]->probe_partition = partition;
      probes[s]->probe_recorded = MQ_INGEST_UNKNOWN;
    }
  }
  int64_t until = mq_clock_mono_ms() + PROBE_TIMEOUT_MS;
  bool all = false;
  while (!rc && !all) {
    all = true;
    for (int s = 0; s < n; s++) {
      struct rec *r = probes[s];
      if (r->outstanding || r->probe_recorded != MQ_INGEST_UNKNOWN)
        continue;
      all = false;
      rec_submit(ing, r, -1);
    }
    if (all)
      break;
    while (!rc) {
      ingest_take_completions(ing);
      bool pending = false;
      for (int s = 0; s < n; s++)
        pending |= probes[s]->outstanding;
      if (!pending)
        break;
      if (mq_clock_mono_ms() > until || atomic_load(&ing->stopping))
        rc = MQ_ETIMEDOUT;
      else
        wait_wake(ing, 100);
    }
    bool failed = false;
    for (int s = 0; s < n; s++)
      failed |= probes[s]->probe_recorded == MQ_INGEST_UNKNOWN;
    if (!rc && failed && mq_clock_mono_ms() > until)
      rc = MQ_ETIMEDOUT;
    if (!rc && failed)
      wait_wake(ing, 50); /* a failed probe (no leader yet) is tried again */
  }
  for (int s = 0; s < n; s++) {
    struct rec *r = probes[s];
    if (!r)
      continue;
    if (!rc)
      last[s] = r->probe_recorded;
    if (r->outstanding)
      r->orphan = true; /* freed when it completes */
    else
      rec_free(r);
  }
  free(probes);
  if (rc)
    mq_warn(INGEST_LOG, "cannot learn the shards' positions of partition %d: %s", partition,
            mq_strerror(rc));
  return rc;
}
