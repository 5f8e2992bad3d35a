/* The completion queue the core loop polls (cq.h).
 *
 * A wake-up is a zero-op batch on a call that never sends anything:
 * grpc_call_start_batch(call, NULL, 0, tag, NULL) completes tag on the
 * call's queue at once, from any thread, which is the one public way to
 * post an event to a queue. The call belongs to a channel that is never
 * connected. */
#include "grpc/cq.h"
#include "grpc/pack.h"
#include "grpc/tag.h"
#include "util/clock.h"
#include "util/log.h"

#include <grpc/grpc_security.h>

#include <pthread.h>
#include <stdlib.h>
#include <sys/random.h>

struct mq_cq {
  grpc_completion_queue *cq;
  grpc_channel *ch;
  grpc_call *waker;
  struct mq_grpc_tag wake_tag;
  pthread_mutex_t mu; /* waker against its release */
};

static void woken(struct mq_grpc_tag *t, bool ok) {
  (void)t;
  (void)ok;
}

void mq_grpc_tag_run(void *tag, bool ok) {
  struct mq_grpc_tag *t = tag;
  struct mq_grpc_tag_group *g = t->group;
  t->fn(t, ok); /* may free t */
  if (g)
    g->end(g);
}

int mq_cq_new(struct mq_cq **out, struct mq_status *st) {
  struct mq_cq *q = calloc(1, sizeof *q);
  if (!q)
    return mq_status_set(st, MQ_ENOMEM, "out of memory creating the completion queue");
  grpc_init();
  q->cq = grpc_completion_queue_create_for_next(NULL);
  grpc_channel_credentials *creds = grpc_insecure_credentials_create();
  q->ch = grpc_channel_create("unix:/memquorum-never-connected", creds, NULL);
  grpc_channel_credentials_release(creds);
  if (q->ch)
    q->waker = grpc_channel_create_call(q->ch, NULL, GRPC_PROPAGATE_DEFAULTS, q->cq,
                                        grpc_slice_from_static_string("/memquorum.internal/Wake"),
                                        NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
  if (!q->waker) {
    if (q->ch)
      grpc_channel_destroy(q->ch);
    mq_grpc_cq_close(q->cq, NULL, 0);
    grpc_shutdown();
    free(q);
    return mq_status_set(st, MQ_EINTERNAL, "cannot create the completion queue's wake-up call");
  }
  q->wake_tag.fn = woken;
  pthread_mutex_init(&q->mu, NULL);
  *out = q;
  return 0;
}

grpc_completion_queue *mq_cq_queue(struct mq_cq *q) { return q->cq; }

int mq_cq_poll(struct mq_cq *q, int timeout_ms, int max) {
  gpr_timespec until = timeout_ms > 0 ? gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                                                     gpr_time_from_millis(timeout_ms, GPR_TIMESPAN))
                                      : gpr_inf_past(GPR_CLOCK_MONOTONIC);
  int n = 0;
  while (n < max) {
    grpc_event ev = grpc_completion_queue_next(q->cq, until, NULL);
    if (ev.type == GRPC_QUEUE_SHUTDOWN)
      return n > 0 ? n : -1;
    if (ev.type != GRPC_OP_COMPLETE)
      break;
    mq_grpc_tag_run(ev.tag, ev.success != 0);
    n++;
    until = gpr_inf_past(GPR_CLOCK_MONOTONIC);
  }
  return n;
}

void mq_cq_wake(struct mq_cq *q) {
  pthread_mutex_lock(&q->mu);
  if (q->waker) {
    grpc_call_error e = grpc_call_start_batch(q->waker, NULL, 0, &q->wake_tag, NULL);
    if (e != GRPC_CALL_OK)
      mq_error("core", "cannot wake the core loop (call error %d)", (int)e);
  }
  pthread_mutex_unlock(&q->mu);
}

void mq_cq_shutdown(struct mq_cq *q) {
  if (!q)
    return;
  pthread_mutex_lock(&q->mu);
  grpc_call *waker = q->waker;
  q->waker = NULL;
  pthread_mutex_unlock(&q->mu);
  if (!waker)
    return;
  grpc_call_unref(waker);
  grpc_channel_destroy(q->ch);
  q->ch = NULL;
  grpc_completion_queue_shutdown(q->cq);
}

void mq_cq_free(struct mq_cq *q) {
  if (!q)
    return;
  grpc_completion_queue_destroy(q->cq);
  pthread_mutex_destroy(&q->mu);
  free(q);
  grpc_shutdown();
}

/* ---- the queue as the core loop's io (cluster/io.h) ---------------------- */

static int io_poll(struct mq_loop_io *io, int timeout_ms, int max) {
  return mq_cq_poll(io->impl, timeout_ms, max);
}

static void io_wake(struct mq_loop_io *io) { mq_cq_wake(io->impl); }

static void io_shutdown(struct mq_loop_io *io) { mq_cq_shutdown(io->impl); }

static int64_t io_mono(struct mq_loop_io *io) {
  (void)io;
  return mq_clock_mono_ms();
}

static int64_t io_wall(struct mq_loop_io *io) {
  (void)io;
  return mq_clock_wall_ms();
}

static uint64_t io_random(struct mq_loop_io *io) {
  (void)io;
  uint64_t v = 0;
  if (getrandom(&v, sizeof v, 0) != sizeof v)
    v = mq_clock_wall_ns() * 0x9e3779b97f4a7c15ULL;
  return v;
}

void mq_cq_loop_io(struct mq_cq *q, struct mq_loop_io *io) {
  *io = (struct mq_loop_io){.impl = q,
                            .poll = io_poll,
                            .wake = io_wake,
                            .shutdown = io_shutdown,
                            .mono_ms = io_mono,
                            .wall_ms = io_wall,
                            .random = io_random};
}
