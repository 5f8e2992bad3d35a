/* Guards on the websocket upgrade: the path, the bearer token, the Origin
 * allow-list and the connection limit. Probes and metrics never pass
 * through here.
 *
 * The token may come as `Authorization: Bearer <token>` (RFC 6750 section
 * 2.1) or as the `token` query parameter (section 2.3), since browsers cannot
 * set headers on a websocket. Tokens are compared in constant time. An
 * Origin (RFC 6454) is checked only when the client sends one: browsers
 * always do, and non-browser clients are held by the token instead. */
#include "feed/internal.h"

#include <string.h>
#include <strings.h>

static bool same_secret(const char *a, size_t an, const char *b, size_t bn) {
  unsigned char diff = an != bn;
  for (size_t i = 0; i < an; i++)
    diff |= (unsigned char)(a[i] ^ b[i % (bn ? bn : 1)]);
  return diff == 0 && bn != 0;
}

static bool token_ok(struct lws *wsi, const char *want) {
  size_t want_len = strlen(want);
  char buf[600];
  int n = lws_hdr_copy(wsi, buf, sizeof buf, WSI_TOKEN_HTTP_AUTHORIZATION);
  if (n > 7 && strncasecmp(buf, "Bearer ", 7) == 0) {
    const char *t = buf + 7;
    while (*t == ' ')
      t++;
    size_t len = strlen(t);
    while (len && t[len - 1] == ' ')
      len--;
    if (same_secret(t, len, want, want_len))
      return true;
  }
  const char *q = lws_get_urlarg_by_name(wsi, "token=", buf, (int)sizeof buf);
  return q && same_secret(q, strlen(q), want, want_len);
}

/* True when origin (n bytes) is one of the comma-separated entries of list,
 * compared without case and surrounding spaces. */
static bool origin_listed(const char *list, const char *origin, size_t n) {
  const char *p = list;
  while (*p) {
    while (*p == ' ' || *p == ',')
      p++;
    const char *e = p;
    while (*e && *e != ',')
      e++;
    const char *t = e;
    while (t > p && t[-1] == ' ')
      t--;
    if ((size_t)(t - p) == n && strncasecmp(p, origin, n) == 0)
      return true;
    p = e;
  }
  return false;
}

unsigned mq_feed_guard(struct lws *wsi, struct mq_feed *f, const char **why) {
  char path[64];
  if (lws_hdr_copy(wsi, path, sizeof path, WSI_TOKEN_GET_URI) <= 0 ||
      strcmp(path, "/v1/watch") != 0) {
    *why = "no websocket here; the change feed is at /v1/watch";
    return 404;
  }
  if (f->cfg->feed_token[0] && !token_ok(wsi, f->cfg->feed_token)) {
    *why = "the change feed needs a token: send 'Authorization: Bearer <token>' or ?token=";
    return 401;
  }
  if (f->cfg->feed_allowed_origins[0]) {
    char origin[512];
    int n = lws_hdr_total_length(wsi, WSI_TOKEN_ORIGIN);
    if (n > 0) {
      if (n >= (int)sizeof origin ||
          lws_hdr_copy(wsi, origin, sizeof origin, WSI_TOKEN_ORIGIN) != n ||
          !origin_listed(f->cfg->feed_allowed_origins, origin, (size_t)n)) {
        *why = "this Origin is not allowed to use the change feed";
        return 403;
      }
    }
  }
  if (atomic_load(&f->stopping)) {
    *why = "agent shutting down";
    return 503;
  }
  if (atomic_load(&f->n_ws) >= f->max_conns) {
    *why = "too many change feed subscribers on this agent; retry later or use another agent";
    return 503;
  }
  return 0;
}
