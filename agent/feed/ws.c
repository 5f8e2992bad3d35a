/* A websocket subscriber of the change feed (DESIGN.md section 8).
 *
 * Life of a connection: established -> one subscribe message -> watches
 * opened on the node (one for the prefix, one per topic) -> events sent one
 * per writable callback -> closed (by either side, by an ended watch, or by
 * shutdown).
 *
 * Flow control. The only buffers are the node's per-watch queues (bounded by
 * MQ_FEED_WATCH_QUEUE; overflow ends the watch with MQ_ENOSPACE, which
 * becomes close 4008) and one message in flight per connection: the next
 * event is taken from a queue only when lws says the socket is writable.
 * The core loop never waits on a subscriber.
 *
 * Wake-ups. A watch's notify runs on the core loop; it only puts the
 * connection on the feed's pending list and calls lws_cancel_service().
 * The service thread then asks for a writable callback. Notify fires when a
 * queue goes from empty to non-empty, so the writable callback keeps asking
 * for more until every queue is found empty. */
#include "feed/internal.h"

#include "util/log.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CLOSE_TRY_AGAIN_LATER 1013 /* RFC 6455 section 7.4.1, IANA registry */
#define COMPACTED_HINT                                                                             \
  "read current state with KV.Scan, then subscribe with from = the revisions it reports"

/* ------------------------------------------------------------------------ */
/* Lifetime */

static void conn_unref(struct mq_feed_conn *c) {
  if (atomic_fetch_sub(&c->refs, 1) != 1)
    return;
  struct mq_feed *f = c->feed;
  mq_buf_close(&c->in);
  mq_buf_close(&c->out);
  for (int i = 0; i < c->n_ctl; i++)
    free(c->ctl[i]);
  free(c);
  pthread_mutex_lock(&f->lock);
  f->live_conns--;
  pthread_cond_broadcast(&f->freed);
  pthread_mutex_unlock(&f->lock);
}

/* Core loop (or the closing thread once the loop has stopped): the watch is
 * gone and will not notify again. */
static void watch_closed(void *arg) { conn_unref(arg); }

/* Core loop: events were queued or a watch ended. Must not block. */
static void watch_notify(void *arg) { mq_feed_wake(arg); }

int mq_feed_ws_established(struct lws *wsi, struct mq_feed *f, struct mq_feed_pss *pss) {
  struct mq_feed_conn *c = calloc(1, sizeof *c);
  if (!c)
    return -1;
  c->feed = f;
  c->wsi = wsi;
  atomic_init(&c->refs, 1);
  mq_buf_init(&c->in);
  mq_buf_init(&c->out);
  pthread_mutex_lock(&f->lock);
  f->live_conns++;
  pthread_mutex_unlock(&f->lock);
  c->next = f->conns;
  if (f->conns)
    f->conns->prev = c;
  f->conns = c;
  pss->conn = c;
  atomic_fetch_add(&f->n_ws, 1);
  if (f->stop_begun)
    mq_feed_ws_close_later(c, LWS_CLOSE_STATUS_GOINGAWAY, "agent shutting down");
  return 0;
}

void mq_feed_ws_closed(struct mq_feed_pss *pss) {
  struct mq_feed_conn *c = pss->conn;
  if (!c)
    return;
  pss->conn = NULL;
  struct mq_feed *f = c->feed;
  pthread_mutex_lock(&f->lock);
  c->dead = true;
  if (c->pending) {
    if (c->pend_prev)
      c->pend_prev->pend_next = c->pend_next;
    else
      f->pend_head = c->pend_next;
    if (c->pend_next)
      c->pend_next->pend_prev = c->pend_prev;
    c->pending = false;
  }
  pthread_mutex_unlock(&f->lock);
  c->wsi = NULL;
  if (c->prev)
    c->prev->next = c->next;
  else
    f->conns = c->next;
  if (c->next)
    c->next->prev = c->prev;
  atomic_fetch_sub(&f->n_ws, 1);
  /* closed() may run right here if the core loop has already stopped, so
   * nothing of c is touched after the last close. */
  int n = c->n_watches;
  struct mq_watch *ws[MQ_FEED_MAX_WATCHES];
  memcpy(ws, c->watches, sizeof ws);
  conn_unref(c);
  for (int i = 0; i < n; i++)
    mq_watch_close(ws[i], watch_closed, c);
  if (f->stop_begun && atomic_load(&f->n_ws) == 0)
    mq_feed_exit_loop(f);
}

/* ------------------------------------------------------------------------ */
/* Control messages and closing */

static void ctl_push(struct mq_feed_conn *c, struct mq_buf *b) {
  char *s = mq_feed_strdup_buf(b, 0);
  if (s && c->n_ctl < MQ_FEED_MAX_CTL)
    c->ctl[c->n_ctl++] = s;
  else
    free(s);
}

void mq_feed_ws_close_later(struct mq_feed_conn *c, int code, const char *reason) {
  if (!c->close_code) {
    c->close_code = code;
    snprintf(c->close_reason, sizeof c->close_reason, "%s", reason);
  }
  if (c->wsi)
    lws_callback_on_writable(c->wsi);
}

/* Sends {"error": kind, "message": msg, ...extra} and then closes. */
static void fail(struct mq_feed_conn *c, const char *kind, const char *msg, const char *extra,
                 int code, const char *reason) {
  struct mq_buf b;
  mq_buf_init(&b);
  mq_feed_printf(&b, "{\"error\":\"%s\",\"message\":", kind);
  mq_feed_json_str(&b, msg, strlen(msg));
  if (extra)
    mq_feed_puts(&b, extra);
  mq_feed_puts(&b, "}");
  ctl_push(c, &b);
  mq_buf_close(&b);
  mq_feed_ws_close_later(c, code, reason);
}

/* A watch ended with code: tell the subscriber why and close. */
static void watch_ended(struct mq_feed_conn *c, int code, const struct mq_status *st) {
  char extra[160];
  switch (code) {
  case MQ_ECOMPACTED: {
    long long rev = -1;
    int shard = -1;
    if (sscanf(st->msg, "revision %lld of shard %d", &rev, &shard) != 2)
      shard = -1;
    snprintf(extra, sizeof extra, ",\"shard\":%d,\"snapshot_then_resume\":\"%s\"", shard,
             COMPACTED_HINT);
    fail(c, "compacted", st->msg, extra, 4000, "revision compacted");
    break;
  }
  case MQ_ENOSPACE:
    fail(c, "too_slow", st->msg, NULL, 4008, "subscriber too slow");
    break;
  case MQ_EUNAVAIL:
    if (atomic_load(&c->feed->stopping) || strstr(st->msg, "shutting down"))
      mq_feed_ws_close_later(c, LWS_CLOSE_STATUS_GOINGAWAY, "agent shutting down");
    else /* e.g. a shard this agent holds no replica of: retry elsewhere */
      fail(c, "unavailable", st->msg, NULL, CLOSE_TRY_AGAIN_LATER, "unavailable here");
    break;
  case MQ_ERANGE:
    fail(c, "out_of_range", st->msg, NULL, LWS_CLOSE_STATUS_POLICY_VIOLATION, "bad start revision");
    break;
  default:
    fail(c, "internal", st->msg, NULL, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, mq_strerror(code));
    break;
  }
}

/* ------------------------------------------------------------------------ */
/* Subscribe */

static int open_watch(struct mq_feed_conn *c, const struct mq_feed_sub *sub, const char *topic,
                      size_t topic_len, struct mq_status *st) {
  struct mq_watch_params p = {
      .prefix = sub->prefix ? sub->prefix : "",
      .prefix_len = sub->prefix ? sub->prefix_len : 0,
      .topic = topic,
      .topic_len = topic_len,
      .starts = sub->starts,
      .n_starts = sub->n_starts,
      .max_queued = MQ_FEED_WATCH_QUEUE,
  };
  atomic_fetch_add(&c->refs, 1);
  struct mq_watch *w;
  int rc = mq_node_watch_open(c->feed->node, &p, watch_notify, c, &w, st);
  if (rc) {
    atomic_fetch_sub(&c->refs, 1); /* the connection's own reference remains */
    return rc;
  }
  c->watches[c->n_watches++] = w;
  return 0;
}

static void subscribe(struct mq_feed_conn *c, const char *js, size_t len) {
  struct mq_feed_sub sub;
  struct mq_status st;
  mq_status_clear(&st);
  if (mq_feed_sub_parse(js, len, &sub, &st)) {
    fail(c, "bad_request", st.msg, NULL, LWS_CLOSE_STATUS_POLICY_VIOLATION, "bad subscription");
    return;
  }
  int rc = 0;
  if (sub.prefix || sub.n_topics == 0)
    rc = open_watch(c, &sub, NULL, 0, &st);
  for (int i = 0; i < sub.n_topics && rc == 0; i++)
    rc = open_watch(c, &sub, sub.topics[i], sub.topic_lens[i], &st);
  if (rc) {
    /* Watches already open are closed when the connection closes. */
    if (rc == MQ_EUNAVAIL)
      mq_feed_ws_close_later(c, LWS_CLOSE_STATUS_GOINGAWAY, "agent shutting down");
    else
      fail(c, "bad_request", st.msg, NULL, LWS_CLOSE_STATUS_POLICY_VIOLATION, "bad subscription");
    mq_feed_sub_free(&sub);
    return;
  }
  c->subscribed = true;
  struct mq_buf b;
  mq_buf_init(&b);
  mq_feed_puts(&b, "{\"subscribed\":{\"prefix\":");
  if (sub.prefix || sub.n_topics == 0)
    mq_feed_json_str(&b, sub.prefix ? sub.prefix : "", sub.prefix ? sub.prefix_len : 0);
  else
    mq_feed_puts(&b, "null");
  mq_feed_puts(&b, ",\"topics\":[");
  for (int i = 0; i < sub.n_topics; i++) {
    if (i)
      mq_feed_puts(&b, ",");
    mq_feed_json_str(&b, sub.topics[i], sub.topic_lens[i]);
  }
  mq_feed_printf(&b, "],\"from\":{");
  for (size_t i = 0; i < sub.n_starts; i++)
    mq_feed_printf(&b, "%s\"%" PRId32 "\":%" PRId64, i ? "," : "", sub.starts[i].shard,
                   sub.starts[i].revision);
  mq_feed_printf(&b, "},\"watches\":%d}}", c->n_watches);
  ctl_push(c, &b);
  mq_buf_close(&b);
  mq_feed_sub_free(&sub);
  lws_callback_on_writable(c->wsi);
}

int mq_feed_ws_receive(struct lws *wsi, struct mq_feed_pss *pss, const void *in, size_t len) {
  struct mq_feed_conn *c = pss->conn;
  if (!c || c->close_code)
    return 0; /* closing: ignore what else arrives */
  if (lws_frame_is_binary(wsi)) {
    fail(c, "bad_request", "send the subscription as a JSON text message", NULL,
         LWS_CLOSE_STATUS_UNACCEPTABLE_OPCODE, "binary messages are not supported");
    return 0;
  }
  if (c->in.len + len > MQ_FEED_MAX_IN) {
    fail(c, "bad_request", "the subscribe message is larger than 64 KiB", NULL,
         LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, "message too big");
    return 0;
  }
  mq_buf_put(&c->in, in, len);
  if (c->in.err)
    return -1;
  if (!lws_is_final_fragment(wsi))
    return 0;
  if (c->subscribed) {
    fail(c, "bad_request", "one subscription per connection; open another connection", NULL,
         LWS_CLOSE_STATUS_POLICY_VIOLATION, "already subscribed");
  } else {
    subscribe(c, (const char *)c->in.data, c->in.len);
  }
  mq_buf_reset(&c->in);
  return 0;
}

/* ------------------------------------------------------------------------ */
/* Writing */

static int send_text(struct mq_feed_conn *c, const char *s, size_t n) {
  mq_buf_reset(&c->out);
  mq_buf_reserve(&c->out, LWS_PRE + n);
  c->out.len = LWS_PRE;
  mq_buf_put(&c->out, s, n);
  if (c->out.err)
    return -1;
  if (lws_write(c->wsi, c->out.data + LWS_PRE, n, LWS_WRITE_TEXT) < (int)n)
    return -1;
  return 0;
}

/* Takes at most one event (or end) from the watches, round robin. Returns
 * 1 when something was sent or handled, 0 when every queue was empty, -1 on
 * a write error. */
static int pump(struct mq_feed_conn *c) {
  for (int k = 0; k < c->n_watches; k++) {
    int i = (c->rr + k) % c->n_watches;
    if (c->ended[i])
      continue;
    struct mq_watch_event *ev;
    struct mq_status st;
    mq_status_clear(&st);
    int rc = mq_watch_pop(c->watches[i], &ev, &st);
    if (rc == 1)
      continue;
    c->rr = i + 1;
    if (rc < 0) {
      c->ended[i] = true;
      watch_ended(c, rc, &st);
      return 1;
    }
    mq_buf_reset(&c->out);
    mq_buf_reserve(&c->out, LWS_PRE + 256 + ev->ev.kv.key_len + ev->ev.kv.value_len * 4 / 3 +
                                ev->ev.entry.value_len * 4 / 3);
    c->out.len = LWS_PRE;
    mq_feed_event_json(&c->out, &ev->ev);
    mq_watch_event_free(ev);
    if (c->out.err)
      return -1;
    size_t n = c->out.len - LWS_PRE;
    return lws_write(c->wsi, c->out.data + LWS_PRE, n, LWS_WRITE_TEXT) < (int)n ? -1 : 1;
  }
  return 0;
}

int mq_feed_ws_writeable(struct lws *wsi, struct mq_feed_pss *pss) {
  struct mq_feed_conn *c = pss->conn;
  if (!c)
    return -1;
  if (c->n_ctl) {
    char *s = c->ctl[0];
    memmove(c->ctl, c->ctl + 1, (size_t)(c->n_ctl - 1) * sizeof c->ctl[0]);
    c->n_ctl--;
    int rc = send_text(c, s, strlen(s));
    free(s);
    if (rc)
      return -1;
    lws_callback_on_writable(wsi);
    return 0;
  }
  if (c->close_code) {
    lws_close_reason(wsi, (enum lws_close_status)c->close_code, (unsigned char *)c->close_reason,
                     strlen(c->close_reason));
    return -1;
  }
  if (!c->subscribed)
    return 0;
  int rc = pump(c);
  if (rc < 0)
    return -1;
  if (rc > 0)
    lws_callback_on_writable(wsi);
  return 0;
}
