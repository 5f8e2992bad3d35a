/* Shared between the files of agent/feed: the feed object, the per-
 * connection state of a websocket subscriber, and the helpers each file
 * exposes to the others. Not part of the agent's public API (see feed.h).
 *
 * Ownership and threads:
 *   - struct mq_feed: created and freed by main; `lock` guards the pending
 *     list and each connection's `pending` and `dead` flags; the counters are
 *     atomics; the rest belongs to the service thread.
 *   - struct mq_feed_conn: one per websocket, owned by the service thread,
 *     except that watch notify callbacks (core loop) may take `feed->lock`
 *     and touch `pending`/`dead`/the pending links. It is reference counted:
 *     one reference for the live connection, one per watch until that
 *     watch's closed callback has run, so a notify never sees freed memory. */
#ifndef MQ_FEED_INTERNAL_H
#define MQ_FEED_INTERNAL_H

#include "feed/feed.h"

#include "cluster/node.h"
#include "config/config.h"
#include "util/buf.h"

#include <libwebsockets.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifndef MQ_VERSION
#define MQ_VERSION "0.0.0"
#endif

#define MQ_FEED_MAX_TOPICS 16                        /* topics per subscription */
#define MQ_FEED_MAX_WATCHES (MQ_FEED_MAX_TOPICS + 1) /* + the prefix watch */
#define MQ_FEED_MAX_STARTS 4096                      /* shards named in "from" */
#define MQ_FEED_MAX_IN (64 * 1024)                   /* largest subscribe message */
#define MQ_FEED_MAX_CONNS 1024                       /* websocket subscribers */
#define MQ_FEED_WATCH_QUEUE 10000                    /* events queued per watch */
#define MQ_FEED_MAX_CTL 2                            /* control messages queued */

struct mq_feed_conn;

struct mq_feed {
  struct mq_node *node;
  const struct mq_config *cfg;
  struct lws_context *ctx;
  int port;
  pthread_t thread;
  bool thread_started;
  double start_time_s; /* process start, seconds since the epoch */

  atomic_bool draining;
  atomic_bool stopping; /* main asked the service thread to stop */
  atomic_int n_ws;      /* established websockets */
  int max_conns;        /* MQ_FEED_MAX_CONNS; lower for the tests */

  /* service thread only */
  bool stop_begun;
  bool exit_loop;
  struct mq_feed_conn *conns; /* every live websocket */
  lws_sorted_usec_list_t stop_timer;

  /* guarded by lock */
  pthread_mutex_t lock;
  mq_feed_metrics_fn extra_metrics; /* mq_feed_set_extra_metrics */
  void *extra_arg;
  pthread_cond_t freed;           /* signalled when a connection is freed */
  struct mq_feed_conn *pend_head; /* connections with events to send */
  int live_conns;                 /* allocated connections not yet freed */
};

struct mq_feed_conn {
  struct mq_feed *feed;
  struct lws *wsi; /* NULL once the connection closed */
  atomic_int refs;

  /* under feed->lock */
  bool pending;
  bool dead;
  struct mq_feed_conn *pend_next, *pend_prev;

  /* service thread only */
  struct mq_feed_conn *next, *prev; /* feed->conns */
  bool subscribed;
  struct mq_watch *watches[MQ_FEED_MAX_WATCHES];
  bool ended[MQ_FEED_MAX_WATCHES];
  int n_watches;
  int rr;                     /* next watch to take from (round robin) */
  struct mq_buf in;           /* the incoming message so far */
  struct mq_buf out;          /* LWS_PRE bytes, then the message being sent */
  char *ctl[MQ_FEED_MAX_CTL]; /* control messages (ack, error) to send first */
  int n_ctl;
  int close_code; /* nonzero: close once ctl is sent */
  char close_reason[124];
};

/* Per-session data lws allocates for every connection of our protocol. */
struct mq_feed_pss {
  struct mq_feed_conn *conn; /* websocket */
  uint8_t *body;             /* HTTP response body being sent */
  size_t body_len, body_off;
  bool close_after; /* HTTP: close instead of keep-alive */
};

/* ---- server.c ---- */
/* Wakes the service thread; it will ask lws for a writable callback on c.
 * Any thread. */
void mq_feed_wake(struct mq_feed_conn *c);
/* Service thread: leave the service loop (stopping). */
void mq_feed_exit_loop(struct mq_feed *f);

/* ---- http.c ---- */
int mq_feed_http(struct lws *wsi, struct mq_feed *f, struct mq_feed_pss *pss, const char *path);
int mq_feed_http_writeable(struct lws *wsi, struct mq_feed_pss *pss);
void mq_feed_http_drop(struct mq_feed_pss *pss);
/* Sends a complete small response from outside the writable callback (an
 * upgrade being refused). Returns 0 or -1. */
int mq_feed_http_reply_now(struct lws *wsi, unsigned status, const char *ctype, const char *body,
                           const char *extra_name, const char *extra_value);

/* ---- metrics.c ---- */
/* Readiness as /readyz reports it; why gets the sentence it prints. */
bool mq_feed_is_ready(struct mq_feed *f, char *why, size_t cap);
void mq_feed_prometheus(struct mq_feed *f, struct mq_buf *b);
void mq_feed_actuator_health(struct mq_feed *f, struct mq_buf *b, bool *up);
void mq_feed_actuator_info(struct mq_feed *f, struct mq_buf *b);
void mq_feed_actuator_names(struct mq_feed *f, struct mq_buf *b);
/* Returns false when name is not a metric. */
bool mq_feed_actuator_metric(struct mq_feed *f, const char *name, struct mq_buf *b);
double mq_feed_process_start_time(void);

/* ---- guard.c ---- */
/* Checks a websocket upgrade: path, token, Origin, connection limit.
 * Returns 0 to accept, else an HTTP status and a message in why. */
unsigned mq_feed_guard(struct lws *wsi, struct mq_feed *f, const char **why);

/* ---- ws.c ---- */
int mq_feed_ws_established(struct lws *wsi, struct mq_feed *f, struct mq_feed_pss *pss);
int mq_feed_ws_receive(struct lws *wsi, struct mq_feed_pss *pss, const void *in, size_t len);
int mq_feed_ws_writeable(struct lws *wsi, struct mq_feed_pss *pss);
void mq_feed_ws_closed(struct mq_feed_pss *pss);
/* Service thread: ask c to close with code and reason once its queued
 * control messages are sent. */
void mq_feed_ws_close_later(struct mq_feed_conn *c, int code, const char *reason);

/* ---- subscribe.c ---- */
struct mq_feed_sub {
  char *prefix; /* NULL when not given */
  size_t prefix_len;
  char *topics[MQ_FEED_MAX_TOPICS];
  size_t topic_lens[MQ_FEED_MAX_TOPICS];
  int n_topics;
  struct mq_watch_start *starts;
  size_t n_starts;
};
/* Parses a subscribe message. Returns 0, or MQ_EINVAL / MQ_ENOMEM with a
 * message in st. On success free with mq_feed_sub_free(). */
int mq_feed_sub_parse(const char *js, size_t len, struct mq_feed_sub *sub, struct mq_status *st);
void mq_feed_sub_free(struct mq_feed_sub *sub);

/* ---- json.c ---- */
void mq_feed_puts(struct mq_buf *b, const char *s);
void mq_feed_printf(struct mq_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A JSON string literal of s (which should be UTF-8; invalid bytes are
 * replaced by U+FFFD so the output is always valid JSON). */
void mq_feed_json_str(struct mq_buf *b, const char *s, size_t n);
void mq_feed_base64(struct mq_buf *b, const uint8_t *p, size_t n);
/* One change event as a JSON object. */
void mq_feed_event_json(struct mq_buf *b, const struct mq_event *ev);
/* NUL-terminated copy of b's text (from offset off), or NULL. */
char *mq_feed_strdup_buf(const struct mq_buf *b, size_t off);

#endif
