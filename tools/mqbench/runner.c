/* Closed-loop call runner: threads, completion queues and call slots. See
 * runner.h for the contract. */
#include "runner.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <grpc/support/time.h>

#include "client.h"
#include "util/err.h"

/* One outstanding call: everything about it, and the tag of its batch. */
struct bench_slot {
  struct bench_thread *t;
  int chan; /* index into cfg.channels */
  grpc_call *call;
  grpc_byte_buffer *send;
  grpc_byte_buffer *recv;
  grpc_metadata_array initial_md;
  grpc_metadata_array trailing_md;
  grpc_status_code status;
  grpc_slice details;
  uint64_t start_ns;
  int measured; /* started after measuring began */
};

struct bench_thread {
  struct mq_bench_runner *r;
  pthread_t thread;
  grpc_completion_queue *cq;
  struct bench_slot *slots;
  int nslots;
  uint64_t rng;
  uint64_t next_ns;         /* --rate: when this thread may start its next call */
  struct bench_slot **idle; /* slots waiting for their next start, a FIFO ring */
  int idle_head, n_idle;
  /* Owned by this thread until it exits. */
  struct mq_hist hist;
  uint64_t by_code[MQ_CODEC_NSTATUS];
  uint64_t bad_replies;
  uint64_t last_done_ns;
  char first_error[256];
  /* Read by the controlling thread for progress lines. */
  atomic_uint_fast64_t ops;
  atomic_uint_fast64_t errors;
};

static uint64_t next_rand(uint64_t *x) { /* xorshift64* */
  *x ^= *x >> 12;
  *x ^= *x << 25;
  *x ^= *x >> 27;
  return *x * 0x2545f4914f6cdd1dull;
}

/* --rate: whether the thread may start a call at now (each thread paces
 * its share of the rate); if so, the next start is one period later. */
static int pace_due(struct bench_thread *t, uint64_t now) {
  const struct mq_bench_run_cfg *cfg = &t->r->cfg;
  if (cfg->rate <= 0) return 1;
  uint64_t period = (uint64_t)(1e9 * cfg->threads / cfg->rate);
  if (!t->next_ns || t->next_ns + 1000 * period < now)
    t->next_ns = now; /* start, or far behind: do not burst to catch up */
  if (t->next_ns > now) return 0;
  t->next_ns += period;
  return 1;
}

/* Starts the slot's next call at now. Returns 1 if a call is now in
 * flight, 0 if the run is over for this slot. */
static int slot_start(struct bench_slot *s, uint64_t now) {
  struct bench_thread *t = s->t;
  struct mq_bench_runner *r = t->r;
  const struct mq_bench_run_cfg *cfg = &r->cfg;
  if (atomic_load_explicit(&r->stop, memory_order_relaxed)) return 0;

  int measured = now >= atomic_load_explicit(&r->measure_from_ns, memory_order_acquire);
  if (measured && cfg->count &&
      atomic_fetch_add_explicit(&r->tickets, 1, memory_order_relaxed) >= cfg->count)
    return 0;

  uint64_t key = cfg->sequential ? atomic_fetch_add_explicit(&r->seq, 1, memory_order_relaxed)
                                 : next_rand(&t->rng);
  s->send = cfg->drv->request(cfg->drv_state, key % cfg->keys);
  if (!s->send) {
    snprintf(t->first_error, sizeof(t->first_error), "out of memory building a request");
    return 0;
  }
  s->call = grpc_channel_create_registered_call(
      cfg->channels[s->chan], NULL, GRPC_PROPAGATE_DEFAULTS, t->cq, cfg->handles[s->chan],
      mq_client_deadline(cfg->timeout_ms), NULL);
  s->recv = NULL;
  s->status = GRPC_STATUS_UNKNOWN;
  s->details = grpc_empty_slice();
  s->start_ns = now;
  s->measured = measured;

  grpc_op ops[6];
  memset(ops, 0, sizeof(ops));
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[1].op = GRPC_OP_SEND_MESSAGE;
  ops[1].data.send_message.send_message = s->send;
  ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
  ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
  ops[3].data.recv_initial_metadata.recv_initial_metadata = &s->initial_md;
  ops[4].op = GRPC_OP_RECV_MESSAGE;
  ops[4].data.recv_message.recv_message = &s->recv;
  ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  ops[5].data.recv_status_on_client.trailing_metadata = &s->trailing_md;
  ops[5].data.recv_status_on_client.status = &s->status;
  ops[5].data.recv_status_on_client.status_details = &s->details;
  if (!s->call || grpc_call_start_batch(s->call, ops, 6, s, NULL) != GRPC_CALL_OK) {
    snprintf(t->first_error, sizeof(t->first_error), "cannot start a call");
    if (s->call) grpc_call_unref(s->call);
    s->call = NULL;
    grpc_byte_buffer_destroy(s->send);
    s->send = NULL;
    return 0;
  }
  return 1;
}

static void note_error(struct bench_thread *t, const char *what, grpc_slice details) {
  if (t->first_error[0]) return;
  if (GRPC_SLICE_LENGTH(details) == 0)
    snprintf(t->first_error, sizeof(t->first_error), "%s", what);
  else
    snprintf(t->first_error, sizeof(t->first_error), "%s: %.*s", what,
             (int)GRPC_SLICE_LENGTH(details), (const char *)GRPC_SLICE_START_PTR(details));
}

/* Accounts for the slot's finished call and releases it. */
static void slot_done(struct bench_slot *s, int ok) {
  struct bench_thread *t = s->t;
  const struct mq_bench_run_cfg *cfg = &t->r->cfg;
  uint64_t end = mq_mono_ns();
  if (s->measured) {
    grpc_status_code code = s->status;
    if (!ok && code == GRPC_STATUS_OK) code = GRPC_STATUS_INTERNAL;
    if (end > t->last_done_ns) t->last_done_ns = end;
    if (code == GRPC_STATUS_OK && cfg->drv->check(cfg->drv_state, s->recv) == 0) {
      mq_hist_record(&t->hist, end - s->start_ns);
    } else {
      if (code == GRPC_STATUS_OK) {
        t->bad_replies++;
        note_error(t, "OK reply is not a valid response message for the op", grpc_empty_slice());
      } else {
        t->by_code[(int)code >= 0 && (int)code < MQ_CODEC_NSTATUS ? code : GRPC_STATUS_UNKNOWN]++;
        note_error(t, mq_codec_status_name(code), s->details);
      }
      atomic_fetch_add_explicit(&t->errors, 1, memory_order_relaxed);
    }
    atomic_fetch_add_explicit(&t->ops, 1, memory_order_relaxed);
  }
  grpc_byte_buffer_destroy(s->send);
  s->send = NULL;
  if (s->recv) grpc_byte_buffer_destroy(s->recv);
  s->recv = NULL;
  grpc_slice_unref(s->details);
  grpc_metadata_array_destroy(&s->initial_md);
  grpc_metadata_array_destroy(&s->trailing_md);
  grpc_metadata_array_init(&s->initial_md);
  grpc_metadata_array_init(&s->trailing_md);
  grpc_call_unref(s->call);
  s->call = NULL;
}

static void idle_push(struct bench_thread *t, struct bench_slot *s) {
  t->idle[(t->idle_head + t->n_idle++) % t->nslots] = s;
}

static struct bench_slot *idle_pop(struct bench_thread *t) {
  struct bench_slot *s = t->idle[t->idle_head];
  t->idle_head = (t->idle_head + 1) % t->nslots;
  t->n_idle--;
  return s;
}

/* A slot whose call finished waits in the idle FIFO until the pace lets
 * it start again; meanwhile the thread keeps taking completions, so a
 * call's latency never includes another slot's wait for its turn. */
static void *thread_main(void *arg) {
  struct bench_thread *t = arg;
  struct mq_bench_runner *r = t->r;
  int active = 0;
  for (int i = 0; i < t->nslots; i++) idle_push(t, &t->slots[i]);
  for (;;) {
    uint64_t now = mq_mono_ns();
    while (t->n_idle > 0 && pace_due(t, now)) {
      active += slot_start(idle_pop(t), now);
      now = mq_mono_ns();
    }
    if (active == 0 && (t->n_idle == 0 || atomic_load_explicit(&r->stop, memory_order_relaxed)))
      break;
    gpr_timespec until = gpr_inf_future(GPR_CLOCK_MONOTONIC);
    if (t->n_idle > 0) /* paced: wake for the next start */
      until = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                           gpr_time_from_nanos((int64_t)(t->next_ns - now), GPR_TIMESPAN));
    grpc_event ev = grpc_completion_queue_next(t->cq, until, NULL);
    if (ev.type != GRPC_OP_COMPLETE) continue;
    struct bench_slot *s = ev.tag;
    slot_done(s, ev.success);
    active--;
    idle_push(t, s);
  }
  grpc_completion_queue_shutdown(t->cq);
  while (grpc_completion_queue_next(t->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
         GRPC_QUEUE_SHUTDOWN) {
  }
  if (atomic_fetch_sub(&r->running, 1) == 1) {
    uint64_t one = 1;
    if (write(r->done_fd, &one, sizeof(one)) != sizeof(one)) { /* eventfd cannot fail here */
    }
  }
  return NULL;
}

static void free_threads(struct mq_bench_runner *r) {
  for (int i = 0; i < r->cfg.threads; i++) {
    struct bench_thread *t = &r->threads[i];
    if (t->cq) grpc_completion_queue_destroy(t->cq);
    if (t->slots) {
      for (int k = 0; k < t->nslots; k++) {
        grpc_metadata_array_destroy(&t->slots[k].initial_md);
        grpc_metadata_array_destroy(&t->slots[k].trailing_md);
      }
    }
    free(t->slots);
    free(t->idle);
  }
  free(r->threads);
  r->threads = NULL;
  close(r->done_fd);
}

int mq_bench_runner_start(struct mq_bench_runner *r, const struct mq_bench_run_cfg *cfg) {
  memset(r, 0, sizeof(*r));
  if (cfg->threads < 1 || cfg->inflight < cfg->threads || cfg->keys == 0 || cfg->nchannels < 1)
    return MQ_EINVAL;
  r->cfg = *cfg;
  atomic_init(&r->stop, 0);
  atomic_init(&r->measure_from_ns, cfg->warmup ? UINT64_MAX : mq_mono_ns());
  atomic_init(&r->tickets, 0);
  atomic_init(&r->seq, 0);
  atomic_init(&r->running, cfg->threads);
  r->done_fd = eventfd(0, EFD_CLOEXEC);
  if (r->done_fd < 0) return MQ_EIO;
  r->threads = calloc((size_t)cfg->threads, sizeof(*r->threads));
  if (!r->threads) {
    close(r->done_fd);
    return MQ_ENOMEM;
  }

  int slot_no = 0;
  for (int i = 0; i < cfg->threads; i++) {
    struct bench_thread *t = &r->threads[i];
    t->r = r;
    t->rng = (cfg->seed + 1) * 0x9e3779b97f4a7c15ull ^ (uint64_t)(i + 1) * 0xbf58476d1ce4e5b9ull;
    if (t->rng == 0) t->rng = 1;
    atomic_init(&t->ops, 0);
    atomic_init(&t->errors, 0);
    mq_hist_init(&t->hist);
    t->nslots = cfg->inflight / cfg->threads + (i < cfg->inflight % cfg->threads);
    t->slots = calloc((size_t)t->nslots, sizeof(*t->slots));
    t->idle = calloc((size_t)t->nslots, sizeof(*t->idle));
    t->cq = grpc_completion_queue_create_for_next(NULL);
    if (!t->slots || !t->idle || !t->cq) goto free_threads;
    for (int k = 0; k < t->nslots; k++, slot_no++) {
      t->slots[k].t = t;
      t->slots[k].chan = slot_no % cfg->nchannels;
      grpc_metadata_array_init(&t->slots[k].initial_md);
      grpc_metadata_array_init(&t->slots[k].trailing_md);
    }
  }
  for (int i = 0; i < cfg->threads; i++) {
    if (pthread_create(&r->threads[i].thread, NULL, thread_main, &r->threads[i]) != 0) {
      /* Threads already running stop at their next completion. */
      atomic_store(&r->stop, 1);
      atomic_fetch_sub(&r->running, cfg->threads - i);
      for (int k = 0; k < i; k++) pthread_join(r->threads[k].thread, NULL);
      goto free_threads;
    }
  }
  return 0;

free_threads:
  free_threads(r);
  return MQ_ENOMEM;
}

void mq_bench_runner_measure(struct mq_bench_runner *r) {
  atomic_store_explicit(&r->measure_from_ns, mq_mono_ns(), memory_order_release);
}

void mq_bench_runner_stop(struct mq_bench_runner *r) { atomic_store(&r->stop, 1); }

void mq_bench_runner_progress(struct mq_bench_runner *r, uint64_t *ops, uint64_t *errors) {
  *ops = *errors = 0;
  for (int i = 0; i < r->cfg.threads; i++) {
    *ops += atomic_load_explicit(&r->threads[i].ops, memory_order_relaxed);
    *errors += atomic_load_explicit(&r->threads[i].errors, memory_order_relaxed);
  }
}

void mq_bench_runner_finish(struct mq_bench_runner *r, struct mq_bench_result *out) {
  memset(out, 0, sizeof(*out));
  mq_hist_init(&out->hist);
  uint64_t from = atomic_load(&r->measure_from_ns);
  out->start_ns = out->end_ns = from == UINT64_MAX ? mq_mono_ns() : from;
  for (int i = 0; i < r->cfg.threads; i++) {
    struct bench_thread *t = &r->threads[i];
    pthread_join(t->thread, NULL);
    mq_hist_merge(&out->hist, &t->hist);
    for (int c = 0; c < MQ_CODEC_NSTATUS; c++) out->by_code[c] += t->by_code[c];
    out->bad_replies += t->bad_replies;
    out->ops += atomic_load(&t->ops);
    out->errors += atomic_load(&t->errors);
    if (t->last_done_ns > out->end_ns) out->end_ns = t->last_done_ns;
    if (!out->first_error[0] && t->first_error[0])
      snprintf(out->first_error, sizeof(out->first_error), "%s", t->first_error);
  }
  free_threads(r);
}
