/* The closed-loop load runner of mqbench.
 *
 * `inflight` calls are always outstanding: as soon as one completes, its
 * slot starts the next. The slots are spread over `threads` threads; each
 * thread owns one completion queue, its slots, a histogram and counters.
 * A slot (struct in runner.c) holds the whole state of its current call
 * and is the tag of that call's batch, so no per-call state is shared.
 *
 * Phases: calls that start before mq_bench_runner_measure() are warmup and
 * are not counted; afterwards every completion is counted (latency of OK
 * calls into the histogram, everything else into the error counts). The run
 * ends when `count` measured calls have been started and finished, or after
 * mq_bench_runner_stop() once the calls in flight have finished.
 *
 * Threads: the runner's threads touch only their own thread struct, except
 * the atomics documented below, which the controlling thread reads for
 * progress lines. */
#ifndef MQ_BENCH_RUNNER_H
#define MQ_BENCH_RUNNER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include <grpc/grpc.h>

#include "codec.h"
#include "driver.h"
#include "hist.h"

struct mq_bench_run_cfg {
  grpc_channel **channels; /* borrowed; slots use them round-robin */
  void **handles;          /* the op's registered method, per channel */
  int nchannels;
  const struct mq_bench_driver *drv;
  void *drv_state; /* borrowed, read-only while running */
  int threads;     /* >= 1 */
  int inflight;    /* >= threads */
  int timeout_ms;  /* per call */
  uint64_t keys;   /* key numbers are drawn from [0, keys) */
  int sequential;  /* 1: key = n-th started call (preload); 0: uniform random */
  uint64_t count;  /* measured calls to run; 0: until stopped */
  int warmup;      /* 1: calls are warmup until mq_bench_runner_measure() */
  uint64_t seed;
  double rate; /* calls started per second over all threads; 0: no pacing */
};

struct bench_thread; /* runner.c */

/* What a finished (or snapshotted) run measured. */
struct mq_bench_result {
  uint64_t ops;                       /* measured completions, OK or not */
  uint64_t errors;                    /* non-OK status or bad reply */
  uint64_t by_code[MQ_CODEC_NSTATUS]; /* errors per gRPC status */
  uint64_t bad_replies;               /* OK status, reply failed check() */
  uint64_t start_ns, end_ns;          /* measured window (CLOCK_MONOTONIC) */
  struct mq_hist hist;                /* latency of OK calls, ns */
  char first_error[256];              /* first error seen, for people */
};

struct mq_bench_runner {
  struct mq_bench_run_cfg cfg;
  struct bench_thread *threads;
  atomic_bool stop;
  atomic_uint_fast64_t measure_from_ns; /* UINT64_MAX until measuring */
  atomic_uint_fast64_t tickets;         /* measured calls started */
  atomic_uint_fast64_t seq;             /* next key when sequential */
  atomic_int running;                   /* threads not yet finished */
  int done_fd;                          /* eventfd, readable once running == 0 */
};

/* Starts the threads and the first `inflight` calls. Returns 0 or an MQ_E*
 * code (nothing is left running then). */
int mq_bench_runner_start(struct mq_bench_runner *r, const struct mq_bench_run_cfg *cfg);

/* Counts calls from now on. */
void mq_bench_runner_measure(struct mq_bench_runner *r);

/* Starts no more calls; the run ends when those in flight finish. */
void mq_bench_runner_stop(struct mq_bench_runner *r);

/* Measured completions and errors so far, summed over threads; cheap and
 * safe while running. */
void mq_bench_runner_progress(struct mq_bench_runner *r, uint64_t *ops, uint64_t *errors);

/* Waits for the threads, merges their results into *out and frees the
 * runner. */
void mq_bench_runner_finish(struct mq_bench_runner *r, struct mq_bench_result *out);

#endif
