/* The gRPC server's lifecycle: create and bind, the completion-queue
 * threads, the pools of outstanding call requests per method, the registry
 * of live streams, the readiness poller, and the ordered shutdown.
 *
 * Each registered method keeps API_SLOTS outstanding
 * grpc_server_request_registered_call() requests; a slot that delivers a
 * call hands it to the method's handler and is posted again at once.
 * Unregistered methods would otherwise wait forever in the C core, so a
 * few grpc_server_request_call() slots answer them with UNIMPLEMENTED. */
#include "api/internal.h"
#include "grpc/cq.h"
#include "grpc/slots.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/ratelimit.h"

#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define API_SLOTS 16
#define API_UNREGISTERED_SLOTS 4
#define API_GRACE_MS 5000
#define API_NODE_WAIT_MS 1000
#define API_POLL_MS 200

/* ------------------------------------------------------------------------ */
/* Request slots (grpc/slots.h): s->slots counts those in flight. */

static bool slot_acquire(void *owner) {
  struct mq_api_server *s = owner;
  pthread_mutex_lock(&s->mu);
  bool ok = !s->shutting_down;
  if (ok)
    s->slots++;
  pthread_mutex_unlock(&s->mu);
  return ok;
}

static void slot_release(void *owner) {
  struct mq_api_server *s = owner;
  pthread_mutex_lock(&s->mu);
  s->slots--;
  pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
}

/* True when a call of api_methods[method] must be refused because
 * --max-calls calls are live. Health checks are never refused: a probe
 * that fails under load would restart a busy agent. */
static bool over_call_limit(struct mq_api_server *s, int method, long *live) {
  if (strncmp(api_methods[method].path, "/grpc.health.", 13) == 0)
    return false;
  unsigned held = 0;
  pthread_mutex_lock(&s->mu);
  *live = s->live;
  bool over = s->live >= s->cfg->max_calls;
  bool say = over && mq_ratelimit_pass(&s->refusals, mq_clock_mono_ms(), 10000, &held);
  pthread_mutex_unlock(&s->mu);
  if (say)
    mq_warn("grpc",
            "a call refused (and %u more since the last line): %ld calls are being served, "
            "the --max-calls limit",
            held, *live);
  return over;
}

static void slot_start(void *owner, int method, const char *name, grpc_call *call,
                       gpr_timespec deadline, grpc_byte_buffer *payload) {
  struct mq_api_server *s = owner;
  long live;
  if (method >= 0 && over_call_limit(s, method, &live)) {
    char msg[200];
    snprintf(msg, sizeof msg,
             "this agent is serving %ld calls already (--max-calls %d); retry with backoff", live,
             s->cfg->max_calls);
    if (payload)
      grpc_byte_buffer_destroy(payload);
    api_reply_status(s, call, GRPC_STATUS_RESOURCE_EXHAUSTED, msg);
    return;
  }
  if (method >= 0)
    api_methods[method].start(s, &api_methods[method], call, deadline, payload);
  else
    api_unimplemented_start(s, call, name);
}

/* An address only this host reaches. */
static bool loopback(const char *bind) {
  return strncmp(bind, "127.", 4) == 0 || strcmp(bind, "::1") == 0 ||
         strcmp(bind, "localhost") == 0;
}

static const struct mq_grpc_slot_ops slot_ops = {slot_acquire, slot_release, slot_start};

static int slot_new(struct mq_api_server *s, int method) {
  void *handle = method >= 0 ? s->handles[method] : NULL;
  bool payload = method >= 0 && api_methods[method].kind != API_BIDI;
  return mq_grpc_slot_new(s->server, s->cq, handle, payload, method, &slot_ops, s);
}

/* ------------------------------------------------------------------------ */
/* Calls answered with a status only */

struct api_status_call {
  struct mq_grpc_tag tag;
  struct mq_api_server *s;
  grpc_call *call;
  grpc_slice details;
  int cancelled;
};

static void status_call_done(struct mq_grpc_tag *t, bool ok) {
  struct api_status_call *u = MQ_GRPC_CONTAINER(t, struct api_status_call, tag);
  struct mq_api_server *s = u->s;
  grpc_slice_unref(u->details);
  grpc_call_unref(u->call);
  free(u);
  api_live_add(s, -1);
}

void api_reply_status(struct mq_api_server *s, grpc_call *call, int grpc_code, const char *msg) {
  struct api_status_call *u = calloc(1, sizeof *u);
  grpc_op ops[3];

  if (!u) {
    grpc_call_cancel_with_status(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory", NULL);
    grpc_call_unref(call);
    return;
  }
  api_live_add(s, 1);
  u->tag.fn = status_call_done;
  u->s = s;
  u->call = call;
  memset(ops, 0, sizeof ops);
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  mq_grpc_op_status(&ops[1], grpc_code, msg, &u->details);
  ops[2].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
  ops[2].data.recv_close_on_server.cancelled = &u->cancelled;
  if (grpc_call_start_batch(call, ops, 3, &u->tag, NULL) != GRPC_CALL_OK)
    status_call_done(&u->tag, false);
}

void api_unimplemented_start(struct mq_api_server *s, grpc_call *call, const char *method) {
  char msg[320];
  snprintf(msg, sizeof msg, "unknown method %s", method);
  api_reply_status(s, call, GRPC_STATUS_UNIMPLEMENTED, msg);
}

/* ------------------------------------------------------------------------ */
/* Accounting and streams */

void api_live_add(struct mq_api_server *s, long d) {
  pthread_mutex_lock(&s->mu);
  s->live += d;
  if (s->live == 0)
    pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
}

void api_stream_register(struct mq_api_server *s, struct api_stream *st, grpc_call *call) {
  st->srv = s;
  st->call = call;
  atomic_init(&st->refs, 1);
  pthread_mutex_lock(&s->mu);
  s->live++;
  st->next = s->streams.next;
  st->prev = &s->streams;
  s->streams.next->prev = st;
  s->streams.next = st;
  pthread_mutex_unlock(&s->mu);
}

void api_stream_ref(struct api_stream *st) {
  int old = atomic_fetch_add(&st->refs, 1);
  assert(old > 0); /* only holders of a reference take another */
  (void)old;
}

bool api_stream_tryref(struct api_stream *st) {
  int v = atomic_load(&st->refs);
  while (v > 0)
    if (atomic_compare_exchange_weak(&st->refs, &v, v + 1))
      return true;
  return false;
}

void api_stream_unref(struct api_stream *st) {
  if (atomic_fetch_sub(&st->refs, 1) != 1)
    return;
  struct mq_api_server *s = st->srv;
  pthread_mutex_lock(&s->mu);
  st->prev->next = st->next;
  st->next->prev = st->prev;
  pthread_mutex_unlock(&s->mu);
  grpc_call_unref(st->call);
  st->destroy(st);
  api_live_add(s, -1);
}

/* ------------------------------------------------------------------------ */
/* Threads */

static void *cq_thread(void *arg) {
  struct mq_api_server *s = arg;
  pthread_setname_np(pthread_self(), "mq-api");
  for (;;) {
    grpc_event ev = grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    if (ev.type == GRPC_QUEUE_SHUTDOWN)
      break;
    if (ev.type == GRPC_OP_COMPLETE)
      mq_grpc_tag_run(ev.tag, ev.success != 0);
  }
  return NULL;
}

static void abs_time(struct timespec *ts, int ms) {
  clock_gettime(CLOCK_MONOTONIC, ts);
  ts->tv_sec += ms / 1000;
  ts->tv_nsec += (long)(ms % 1000) * 1000000L;
  if (ts->tv_nsec >= 1000000000L) {
    ts->tv_sec++;
    ts->tv_nsec -= 1000000000L;
  }
}

/* Re-checks readiness and pokes the streams that care (health watchers). */
static void *poller_thread(void *arg) {
  struct mq_api_server *s = arg;
  pthread_setname_np(pthread_self(), "mq-api-poll");
  pthread_mutex_lock(&s->mu);
  while (!s->poller_stop) {
    pthread_mutex_unlock(&s->mu);
    bool r = mq_node_ready(s->node);
    pthread_mutex_lock(&s->mu);
    if (r != s->ready) {
      s->ready = r;
      for (struct api_stream *st = s->streams.next; st != &s->streams; st = st->next)
        if (st->poke)
          st->poke(st);
    }
    struct timespec ts;
    abs_time(&ts, API_POLL_MS);
    pthread_cond_timedwait(&s->poll_cv, &s->mu, &ts);
  }
  pthread_mutex_unlock(&s->mu);
  return NULL;
}

static void shutdown_fn(struct mq_grpc_tag *t, bool ok) {
  struct mq_api_server *s = MQ_GRPC_CONTAINER(t, struct mq_api_server, shutdown_tag);
  pthread_mutex_lock(&s->mu);
  s->shutdown_notified = true;
  pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
}

/* ------------------------------------------------------------------------ */
/* Start */

int mq_api_server_start(struct mq_api_server **out, struct mq_node *node,
                        const struct mq_config *cfg, struct mq_cq *loop_cq, struct mq_status *st) {
  struct mq_api_server *s;
  pthread_condattr_t ca;
  char addr[300];
  int rc;

  *out = NULL;
  rc = api_descdb_init();
  if (rc)
    return mq_status_set(st, rc, "cannot load the embedded reflection descriptors");
  s = calloc(1, sizeof *s);
  if (!s)
    return mq_status_set(st, MQ_ENOMEM, "out of memory");
  s->handles = calloc(api_n_methods, sizeof *s->handles);
  s->threads = calloc(cfg->grpc_threads > 0 ? (size_t)cfg->grpc_threads : 1, sizeof *s->threads);
  if (!s->handles || !s->threads) {
    rc = mq_status_set(st, MQ_ENOMEM, "out of memory");
    goto err_alloc;
  }
  s->node = node;
  s->cfg = cfg;
  s->streams.next = s->streams.prev = &s->streams;
  s->shutdown_tag.fn = shutdown_fn;
  pthread_mutex_init(&s->mu, NULL);
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&s->cv, &ca);
  pthread_cond_init(&s->poll_cv, &ca);
  pthread_condattr_destroy(&ca);
  if (cfg->api_tls_cert[0]) {
    struct mq_tls_files f = {
        .path = {cfg->api_tls_cert, cfg->api_tls_key, cfg->api_tls_ca},
        .flag = {"--api-tls-cert", "--api-tls-key", "--api-tls-ca"},
        .what = "API",
        .log = "grpc",
    };
    rc = mq_tls_init(&s->tls, &f, st);
    if (rc)
      goto err_tls;
    s->tls_on = true;
  } else if (!loopback(cfg->api_bind)) {
    mq_warn("grpc",
            "the API listens on %s without TLS: calls and data travel in clear text; set "
            "--api-tls-cert and --api-tls-key",
            cfg->api_bind);
  }

  grpc_init();
  grpc_arg args[2];
  args[0].type = GRPC_ARG_INTEGER;
  args[0].key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
  args[0].value.integer =
      cfg->max_request_bytes > (size_t)INT32_MAX ? INT32_MAX : (int)cfg->max_request_bytes;
  /* A port another process holds must be an error, not a shared socket. */
  args[1].type = GRPC_ARG_INTEGER;
  args[1].key = GRPC_ARG_ALLOW_REUSEPORT;
  args[1].value.integer = 0;
  grpc_channel_args chargs = {2, args};
  s->server = grpc_server_create(&chargs, NULL);
  /* With one gRPC thread the core loop polls the calls itself. */
  s->shared_cq = loop_cq != NULL;
  s->cq = loop_cq ? mq_cq_queue(loop_cq) : grpc_completion_queue_create_for_next(NULL);
  grpc_server_register_completion_queue(s->server, s->cq, NULL);
  for (size_t i = 0; i < api_n_methods; i++) {
    const struct api_method *m = &api_methods[i];
    s->handles[i] = grpc_server_register_method(
        s->server, m->path, NULL,
        m->kind == API_BIDI ? GRPC_SRM_PAYLOAD_NONE : GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0);
    if (!s->handles[i]) {
      rc = mq_status_set(st, MQ_EINTERNAL, "cannot register method %s", m->path);
      goto err_server;
    }
  }
  if (strchr(cfg->api_bind, ':'))
    snprintf(addr, sizeof addr, "[%s]:%d", cfg->api_bind, cfg->port);
  else
    snprintf(addr, sizeof addr, "%s:%d", cfg->api_bind, cfg->port);
  grpc_server_credentials *creds =
      s->tls_on ? mq_tls_server_creds(&s->tls) : grpc_insecure_server_credentials_create();
  if (!creds) {
    rc = mq_status_set(st, MQ_EINTERNAL, "API TLS: gRPC refused the server credentials");
    goto err_server;
  }
  s->port = grpc_server_add_http2_port(s->server, addr, creds);
  grpc_server_credentials_release(creds);
  if (s->port <= 0) {
    rc = mq_status_set(st, MQ_EIO,
                       "cannot listen on %s for the gRPC API (address in use or "
                       "not local?)",
                       addr);
    goto err_server;
  }
  grpc_server_start(s->server);

  int want = s->shared_cq ? 0 : cfg->grpc_threads > 0 ? cfg->grpc_threads : 1;
  for (int i = 0; i < want; i++) {
    if (pthread_create(&s->threads[i], NULL, cq_thread, s) != 0)
      break;
    s->n_threads++;
  }
  s->ready = mq_node_ready(node);
  if (s->n_threads == want && pthread_create(&s->poller, NULL, poller_thread, s) == 0)
    s->poller_started = true;
  if (!s->poller_started) {
    mq_api_server_free(s);
    return mq_status_set(st, MQ_ENOMEM, "cannot start gRPC threads");
  }
  for (size_t i = 0; i < api_n_methods; i++)
    for (int k = 0; k < API_SLOTS; k++)
      if (slot_new(s, (int)i))
        goto err_slots;
  for (int k = 0; k < API_UNREGISTERED_SLOTS; k++)
    if (slot_new(s, -1))
      goto err_slots;
  const char *tls = !s->tls_on           ? ""
                    : cfg->api_tls_ca[0] ? " (TLS, client certificates required)"
                                         : " (TLS)";
  if (s->shared_cq)
    mq_info("grpc", "API listening on %s:%d%s, calls served by the core loop", cfg->api_bind,
            s->port, tls);
  else
    mq_info("grpc", "API listening on %s:%d%s, %d completion-queue threads", cfg->api_bind, s->port,
            tls, s->n_threads);
  *out = s;
  return 0;

err_slots:
  mq_api_server_free(s);
  return mq_status_set(st, MQ_ENOMEM, "out of memory");
err_server:
  grpc_server_destroy(s->server);
  if (!s->shared_cq)
    mq_grpc_cq_close(s->cq, NULL, 0);
  grpc_shutdown();
  if (s->tls_on)
    mq_tls_close(&s->tls);
err_tls:
  pthread_cond_destroy(&s->cv);
  pthread_cond_destroy(&s->poll_cv);
  pthread_mutex_destroy(&s->mu);
err_alloc:
  free(s->threads);
  free(s->handles);
  free(s);
  return rc;
}

int mq_api_server_port(const struct mq_api_server *s) { return s->port; }

/* ------------------------------------------------------------------------ */
/* Shutdown */

/* Waits until cond(s) holds or ms pass; returns whether it holds. */
static bool wait_for(struct mq_api_server *s, bool (*cond)(struct mq_api_server *), int ms) {
  struct timespec ts;
  bool ok;
  abs_time(&ts, ms);
  pthread_mutex_lock(&s->mu);
  while (!(ok = cond(s)))
    if (ms >= 0 ? pthread_cond_timedwait(&s->cv, &s->mu, &ts) == ETIMEDOUT
                : pthread_cond_wait(&s->cv, &s->mu) != 0) {
      ok = cond(s);
      break;
    }
  pthread_mutex_unlock(&s->mu);
  return ok;
}

static bool server_quiet(struct mq_api_server *s) { return s->shutdown_notified && s->slots == 0; }
static bool no_calls(struct mq_api_server *s) { return s->live == 0; }

/* Destroys the server and our queue once no call object is left. */
static void finish(struct mq_api_server *s) {
  grpc_server_destroy(s->server);
  s->server = NULL;
  if (!s->shared_cq)
    mq_grpc_cq_close(s->cq, s->threads, s->n_threads);
  s->n_threads = 0;
  s->cq = NULL;
  s->cq_down = true;
}

void mq_api_server_shutdown(struct mq_api_server *s) {
  if (s->shut)
    return;
  s->shut = true;
  pthread_mutex_lock(&s->mu);
  s->shutting_down = true;
  s->poller_stop = true;
  pthread_cond_broadcast(&s->cv);
  pthread_cond_broadcast(&s->poll_cv);
  pthread_mutex_unlock(&s->mu);
  if (s->poller_started) {
    pthread_join(s->poller, NULL);
    s->poller_started = false;
  }

  grpc_server_shutdown_and_notify(s->server, s->cq, &s->shutdown_tag);
  pthread_mutex_lock(&s->mu);
  for (struct api_stream *st = s->streams.next; st != &s->streams; st = st->next)
    grpc_call_cancel_with_status(st->call, GRPC_STATUS_UNAVAILABLE, "agent shutting down", NULL);
  pthread_mutex_unlock(&s->mu);

  if (!wait_for(s, server_quiet, API_GRACE_MS)) {
    mq_warn("grpc", "calls still running after %d ms of shutdown; cancelling them", API_GRACE_MS);
    grpc_server_cancel_all_calls(s->server);
    wait_for(s, server_quiet, -1);
  }
  /* Unary calls whose request the node still holds stay alive past the
   * cancel until done(); give the node a moment, not another grace. */
  if (!wait_for(s, no_calls, API_NODE_WAIT_MS)) {
    /* Requests the node still holds: their done() needs the queue, so the
     * queue stays up until mq_api_server_free() (after the node stopped). */
    mq_warn("grpc", "%ld calls still wait for the node; finishing after it stops", s->live);
    return;
  }
  finish(s);
  mq_info("grpc", "API server stopped");
}

void mq_api_server_free(struct mq_api_server *s) {
  if (!s)
    return;
  mq_api_server_shutdown(s);
  if (!s->cq_down) {
    wait_for(s, no_calls, -1);
    finish(s);
  }
  grpc_shutdown();
  if (s->tls_on)
    mq_tls_close(&s->tls);
  pthread_cond_destroy(&s->cv);
  pthread_cond_destroy(&s->poll_cv);
  pthread_mutex_destroy(&s->mu);
  free(s->threads);
  free(s->handles);
  free(s);
}
