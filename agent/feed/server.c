/* The feed's libwebsockets context and its service thread: creating and
 * destroying the context, the one protocol callback that dispatches HTTP
 * and websocket events to http.c and ws.c, the cross-thread wake-up of
 * connections with pending events, lws logging routed to mq_log, and an
 * orderly stop (close every websocket with 1001, then leave the loop).
 *
 * Threads: only the service thread calls into lws, except
 * lws_cancel_service(), which lws documents as safe from any thread. */
#include "feed/internal.h"

#include "util/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define STOP_GRACE_US (3 * LWS_US_PER_SEC)

/* ------------------------------------------------------------------------ */
/* Logging */

/* lws lines look like "[2024/01/15 10:30:45:1234] W: message\n"; keep the
 * message. */
static void lws_log_emit(int level, const char *line) {
  const char *p = line;
  if (*p == '[') {
    const char *q = strstr(p, "] ");
    if (q)
      p = q + 2;
  }
  if (p[0] && p[1] == ':' && p[2] == ' ')
    p += 3;
  size_t n = strlen(p);
  while (n && (p[n - 1] == '\n' || p[n - 1] == '\r'))
    n--;
  mq_log(level & LLL_ERR ? MQ_LOG_ERROR : MQ_LOG_WARN, "http", "%.*s", (int)n, p);
}

/* ------------------------------------------------------------------------ */
/* Wake-ups from other threads */

void mq_feed_wake(struct mq_feed_conn *c) {
  struct mq_feed *f = c->feed;
  bool wake = false;
  pthread_mutex_lock(&f->lock);
  if (!c->dead && !c->pending) {
    c->pending = true;
    c->pend_prev = NULL;
    c->pend_next = f->pend_head;
    if (f->pend_head)
      f->pend_head->pend_prev = c;
    f->pend_head = c;
    wake = true;
  }
  pthread_mutex_unlock(&f->lock);
  if (wake)
    lws_cancel_service(f->ctx);
}

void mq_feed_exit_loop(struct mq_feed *f) {
  f->exit_loop = true;
  /* Timers run before lws polls again: without this wake-up, lws_service()
   * would sleep until its next deadline before the loop sees exit_loop. */
  lws_cancel_service(f->ctx);
}

static void stop_timer_fired(lws_sorted_usec_list_t *sul) {
  struct mq_feed *f = lws_container_of(sul, struct mq_feed, stop_timer);
  if (atomic_load(&f->n_ws))
    mq_warn("http", "%d websocket(s) did not finish closing in time", atomic_load(&f->n_ws));
  mq_feed_exit_loop(f);
}

/* Service thread, after lws_cancel_service(): ask for writable callbacks
 * on marked connections, and begin stopping if main asked. */
static void on_cancelled(struct mq_feed *f) {
  pthread_mutex_lock(&f->lock);
  struct mq_feed_conn *c = f->pend_head;
  f->pend_head = NULL;
  for (; c; c = c->pend_next) {
    c->pending = false;
    if (!c->dead)
      lws_callback_on_writable(c->wsi);
  }
  pthread_mutex_unlock(&f->lock);

  if (atomic_load(&f->stopping) && !f->stop_begun) {
    f->stop_begun = true;
    for (struct mq_feed_conn *k = f->conns; k; k = k->next)
      mq_feed_ws_close_later(k, LWS_CLOSE_STATUS_GOINGAWAY, "agent shutting down");
    if (!f->conns)
      mq_feed_exit_loop(f);
    else
      lws_sul_schedule(f->ctx, 0, &f->stop_timer, stop_timer_fired, STOP_GRACE_US);
  }
}

/* ------------------------------------------------------------------------ */
/* The protocol callback */

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len) {
  struct mq_feed *f = lws_context_user(lws_get_context(wsi));
  struct mq_feed_pss *pss = user;
  const char *why;
  unsigned status;

  switch (reason) {
  case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
    if (f)
      on_cancelled(f);
    return 0;

  /* ---- HTTP ---- */
  case LWS_CALLBACK_HTTP:
    return mq_feed_http(wsi, f, pss, in ? (const char *)in : "/") ? -1 : 0;
  case LWS_CALLBACK_HTTP_BODY:
    return 0; /* non-GET bodies are not read: the 405 closes the connection */
  case LWS_CALLBACK_HTTP_WRITEABLE:
    return mq_feed_http_writeable(wsi, pss);
  case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
  case LWS_CALLBACK_CLOSED_HTTP:
    if (pss)
      mq_feed_http_drop(pss);
    return 0;

  /* ---- websocket upgrade ---- */
  case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
    /* Refuse with a real HTTP status so clients can tell 401 from 403. */
    status = mq_feed_guard(wsi, f, &why);
    if (!status)
      return 0;
    mq_info("http", "refused a websocket upgrade with %u: %s", status, why);
    if (mq_feed_http_reply_now(wsi, status, "text/plain; charset=utf-8", why,
                               status == 401 ? "www-authenticate:" : NULL, "Bearer"))
      return -1;
    return 1;
  case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
    /* Second line: the same checks, should a path skip the one above. */
    return mq_feed_guard(wsi, f, &why) ? -1 : 0;

  /* ---- websocket ---- */
  case LWS_CALLBACK_ESTABLISHED:
    memset(pss, 0, sizeof *pss);
    return mq_feed_ws_established(wsi, f, pss);
  case LWS_CALLBACK_RECEIVE:
    return mq_feed_ws_receive(wsi, pss, in, len);
  case LWS_CALLBACK_SERVER_WRITEABLE:
    return mq_feed_ws_writeable(wsi, pss);
  case LWS_CALLBACK_CLOSED:
    mq_feed_ws_closed(pss);
    return 0;

  default:
    return 0;
  }
}

static const struct lws_protocols protocols[] = {
    {"memquorum.v1.watch", callback, sizeof(struct mq_feed_pss), 4096, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

/* ------------------------------------------------------------------------ */
/* Thread and lifecycle */

static void *service_main(void *arg) {
  struct mq_feed *f = arg;
  pthread_setname_np(pthread_self(), "mq-feed");
  while (!f->exit_loop)
    if (lws_service(f->ctx, 0) < 0)
      break;
  lws_sul_cancel(&f->stop_timer);
  /* Closes whatever is left; CLOSED callbacks close their watches. */
  lws_context_destroy(f->ctx);
  f->ctx = NULL;
  return NULL;
}

int mq_feed_start(struct mq_feed **out, struct mq_node *node, const struct mq_config *cfg,
                  struct mq_status *st) {
  *out = NULL;
  if (cfg->http_port < 0)
    return 0;
  struct mq_feed *f = calloc(1, sizeof *f);
  if (!f)
    return mq_status_set(st, MQ_ENOMEM, "out of memory starting the HTTP server");
  f->node = node;
  f->cfg = cfg;
  f->start_time_s = mq_feed_process_start_time();
  f->max_conns = MQ_FEED_MAX_CONNS;
  /* Tests reach the cap without opening a thousand sockets. */
  const char *cap = getenv("MEMQUORUM_TEST_FEED_MAX_CONNS");
  if (cap && atoi(cap) > 0 && atoi(cap) < MQ_FEED_MAX_CONNS) {
    f->max_conns = atoi(cap);
    mq_warn("http", "test limit on: at most %d change feed subscribers", f->max_conns);
  }
  pthread_mutex_init(&f->lock, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&f->freed, &ca);
  pthread_condattr_destroy(&ca);

  lws_set_log_level(LLL_ERR | LLL_WARN, lws_log_emit);

  struct lws_context_creation_info info;
  memset(&info, 0, sizeof info);
  info.port = cfg->http_port;
  info.iface = NULL; /* every interface; see feed.h */
  info.protocols = protocols;
  info.user = f;
  info.gid = -1;
  info.uid = -1;
  info.options = LWS_SERVER_OPTION_DISABLE_IPV6 | LWS_SERVER_OPTION_VALIDATE_UTF8;
  info.vhost_name = "default";
  f->ctx = lws_create_context(&info);
  if (!f->ctx) {
    int rc = mq_status_set(st, MQ_EIO, "cannot listen on 0.0.0.0:%d (in use?)", cfg->http_port);
    mq_feed_free(f);
    return rc;
  }
  f->port = lws_get_vhost_listen_port(lws_get_vhost_by_name(f->ctx, "default"));
  if (f->port <= 0) {
    int rc = mq_status_set(st, MQ_EIO, "cannot listen on 0.0.0.0:%d", cfg->http_port);
    mq_feed_free(f);
    return rc;
  }
  int err = pthread_create(&f->thread, NULL, service_main, f);
  if (err) {
    int rc = mq_status_set(st, mq_err_from_errno(err), "cannot start the HTTP thread: %s",
                           strerror(err));
    mq_feed_free(f);
    return rc;
  }
  f->thread_started = true;
  if (!cfg->feed_token[0])
    mq_warn("http",
            "the websocket change feed on 0.0.0.0:%d needs no token: anyone who can reach "
            "this port can read every change; set --feed-token unless the network is trusted",
            f->port);
  *out = f;
  return 0;
}

int mq_feed_port(const struct mq_feed *f) { return f ? f->port : -1; }

void mq_feed_set_draining(struct mq_feed *f) {
  if (f)
    atomic_store(&f->draining, true);
}

void mq_feed_stop(struct mq_feed *f) {
  if (!f || !f->thread_started)
    return;
  atomic_store(&f->draining, true);
  atomic_store(&f->stopping, true);
  lws_cancel_service(f->ctx);
  pthread_join(f->thread, NULL);
  f->thread_started = false;
  /* Watch closes complete on the core loop; wait for their callbacks so no
   * connection outlives the feed. */
  struct timespec until;
  clock_gettime(CLOCK_MONOTONIC, &until);
  until.tv_sec += 5;
  pthread_mutex_lock(&f->lock);
  while (f->live_conns > 0)
    if (pthread_cond_timedwait(&f->freed, &f->lock, &until) == ETIMEDOUT)
      break;
  pthread_mutex_unlock(&f->lock);
}

void mq_feed_free(struct mq_feed *f) {
  if (!f)
    return;
  mq_feed_stop(f);
  if (f->ctx) /* the thread never ran */
    lws_context_destroy(f->ctx);
  pthread_mutex_lock(&f->lock);
  int live = f->live_conns;
  pthread_mutex_unlock(&f->lock);
  if (live > 0) {
    /* A watch close never completed (core loop stuck): leaking the feed is
     * better than freeing memory a callback may still use. */
    mq_warn("http", "%d feed connection(s) still referenced at exit; not freeing", live);
    return;
  }
  pthread_cond_destroy(&f->freed);
  pthread_mutex_destroy(&f->lock);
  free(f);
}
