/* Plain HTTP on the feed's port: routing of GET requests to the probes,
 * /metrics and the actuator documents, and sending a response.
 *
 * A response is rendered whole when the request arrives (a few KB at most),
 * its headers are written at once, and the body follows in 4 KB pieces from
 * LWS_CALLBACK_HTTP_WRITEABLE, one lws_write per callback, so a slow reader
 * holds memory for one response and nothing else. */
#include "feed/internal.h"

#include "util/log.h"

#include <stdlib.h>
#include <string.h>

#define CT_TEXT "text/plain; charset=utf-8"
#define CT_JSON "application/json"
#define CT_PROM "text/plain; version=0.0.4; charset=utf-8"
#define CHUNK 4096

static int add_header(struct lws *wsi, const char *name, const char *value, unsigned char **p,
                      unsigned char *end) {
  return lws_add_http_header_by_name(wsi, (const unsigned char *)name, (const unsigned char *)value,
                                     (int)strlen(value), p, end);
}

/* Writes the headers now and queues the body (taken from b) for the
 * writable callback. */
static int respond(struct lws *wsi, struct mq_feed_pss *pss, unsigned status, const char *ctype,
                   struct mq_buf *b, const char *xname, const char *xvalue) {
  if (b->err) {
    mq_buf_reset(b);
    status = 500;
    ctype = CT_TEXT;
    mq_feed_puts(b, "out of memory\n");
    if (b->err)
      return -1;
  }
  unsigned char hdr[LWS_PRE + 1024];
  unsigned char *start = hdr + LWS_PRE, *p = start, *end = hdr + sizeof hdr - 1;
  if (lws_add_http_common_headers(wsi, status, ctype, b->len, &p, end) ||
      add_header(wsi, "cache-control:", "no-store", &p, end) ||
      (xname && add_header(wsi, xname, xvalue, &p, end)) ||
      lws_finalize_write_http_header(wsi, start, &p, end))
    return -1;
  pss->body = mq_buf_steal(b, &pss->body_len);
  pss->body_off = 0;
  lws_callback_on_writable(wsi);
  return 0;
}

int mq_feed_http_reply_now(struct lws *wsi, unsigned status, const char *ctype, const char *body,
                           const char *xname, const char *xvalue) {
  size_t blen = strlen(body);
  unsigned char buf[LWS_PRE + 2048];
  unsigned char *start = buf + LWS_PRE, *p = start, *end = buf + sizeof buf - 1;
  if (lws_add_http_common_headers(wsi, status, ctype, blen, &p, end) ||
      add_header(wsi, "cache-control:", "no-store", &p, end) ||
      (xname && add_header(wsi, xname, xvalue, &p, end)) || lws_finalize_http_header(wsi, &p, end))
    return -1;
  if ((size_t)(end - p) < blen)
    return -1;
  memcpy(p, body, blen);
  p += blen;
  return lws_write(wsi, start, (size_t)(p - start), LWS_WRITE_HTTP_HEADERS) < 0 ? -1 : 0;
}

static bool starts_with(const char *s, const char *prefix) {
  return strncmp(s, prefix, strlen(prefix)) == 0;
}

int mq_feed_http(struct lws *wsi, struct mq_feed *f, struct mq_feed_pss *pss, const char *path) {
  struct mq_buf b;
  mq_buf_init(&b);
  int rc;
  if (lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) <= 0) {
    /* The request body, if any, is not read: close after answering. */
    pss->close_after = true;
    mq_feed_puts(&b, "method not allowed: this port answers GET only\n");
    rc = respond(wsi, pss, 405, CT_TEXT, &b, "allow:", "GET");
    goto out;
  }
  if (strcmp(path, "/healthz") == 0) {
    mq_feed_puts(&b, "ok\n");
    rc = respond(wsi, pss, 200, CT_TEXT, &b, NULL, NULL);
  } else if (strcmp(path, "/readyz") == 0) {
    char why[300];
    bool ready = mq_feed_is_ready(f, why, sizeof why);
    mq_feed_printf(&b, "%s\n", why);
    rc = respond(wsi, pss, ready ? 200 : 503, CT_TEXT, &b, NULL, NULL);
  } else if (strcmp(path, "/metrics") == 0) {
    mq_feed_prometheus(f, &b);
    rc = respond(wsi, pss, 200, CT_PROM, &b, NULL, NULL);
  } else if (strcmp(path, "/actuator/health") == 0) {
    bool up;
    mq_feed_actuator_health(f, &b, &up);
    rc = respond(wsi, pss, up ? 200 : 503, CT_JSON, &b, NULL, NULL);
  } else if (strcmp(path, "/actuator/info") == 0) {
    mq_feed_actuator_info(f, &b);
    rc = respond(wsi, pss, 200, CT_JSON, &b, NULL, NULL);
  } else if (strcmp(path, "/actuator/metrics") == 0) {
    mq_feed_actuator_names(f, &b);
    rc = respond(wsi, pss, 200, CT_JSON, &b, NULL, NULL);
  } else if (starts_with(path, "/actuator/metrics/") &&
             mq_feed_actuator_metric(f, path + strlen("/actuator/metrics/"), &b)) {
    rc = respond(wsi, pss, 200, CT_JSON, &b, NULL, NULL);
  } else if (strcmp(path, "/v1/watch") == 0) {
    mq_buf_reset(&b);
    mq_feed_puts(&b, "the change feed is a websocket: connect with ws://host:port/v1/watch\n");
    rc = respond(wsi, pss, 426, CT_TEXT, &b, "upgrade:", "websocket");
  } else {
    mq_buf_reset(&b);
    mq_feed_puts(&b, "not found; try /healthz /readyz /metrics /actuator/health "
                     "/actuator/info /actuator/metrics /v1/watch\n");
    rc = respond(wsi, pss, 404, CT_TEXT, &b, NULL, NULL);
  }
out:
  mq_buf_close(&b);
  return rc;
}

int mq_feed_http_writeable(struct lws *wsi, struct mq_feed_pss *pss) {
  if (!pss->body)
    return 0;
  unsigned char buf[LWS_PRE + CHUNK];
  size_t n = pss->body_len - pss->body_off;
  if (n > CHUNK)
    n = CHUNK;
  memcpy(buf + LWS_PRE, pss->body + pss->body_off, n);
  pss->body_off += n;
  bool last = pss->body_off == pss->body_len;
  if (lws_write(wsi, buf + LWS_PRE, n, last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) < 0)
    return -1;
  if (!last) {
    lws_callback_on_writable(wsi);
    return 0;
  }
  mq_feed_http_drop(pss);
  if (pss->close_after)
    return -1;
  return lws_http_transaction_completed(wsi) ? -1 : 0;
}

void mq_feed_http_drop(struct mq_feed_pss *pss) {
  free(pss->body);
  pss->body = NULL;
  pss->body_len = pss->body_off = 0;
}
