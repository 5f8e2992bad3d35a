/* Decoding of Nacos answers (nacos_json.h). jsmn in strict mode tokenizes
 * into an array sized by a first counting pass; the walks below stay inside
 * that array whatever the token counts claim. String values that discovery
 * uses (ip, node id, token) never hold JSON escapes, so one that does is
 * refused rather than decoded. */
#include "discovery/nacos_json.h"

#include "config/values.h"
#include "util/utf8.h"

#define JSMN_STATIC
#define JSMN_STRICT
#include <jsmn.h>

#include <stdlib.h>
#include <string.h>

/* Enough for thousands of instances; a 4 MiB answer of tiny tokens would
 * otherwise cost 16 bytes of token per byte of input. */
#define MAX_TOKENS (1 << 19)

struct doc {
  const char *js;
  jsmntok_t *t;
  int n;
};

static int tokenize(struct doc *d, const char *js, size_t len, struct mq_status *st) {
  jsmn_parser p;
  d->js = js;
  d->t = NULL;
  d->n = 0;
  if (len > MQ_NACOS_MAX_BODY)
    return mq_status_set(st, MQ_EINVAL, "answer of %zu bytes is larger than %u", len,
                         MQ_NACOS_MAX_BODY);
  jsmn_init(&p);
  int n = jsmn_parse(&p, js, len, NULL, 0);
  if (n == JSMN_ERROR_PART)
    return mq_status_set(st, MQ_EINVAL, "answer is truncated JSON");
  if (n <= 0)
    return mq_status_set(st, MQ_EINVAL, "answer is not JSON");
  if (n > MAX_TOKENS)
    return mq_status_set(st, MQ_EINVAL, "answer has more than %d JSON tokens", MAX_TOKENS);
  d->t = calloc((size_t)n, sizeof *d->t);
  if (!d->t)
    return mq_status_set(st, MQ_ENOMEM, "out of memory");
  jsmn_init(&p);
  int got = jsmn_parse(&p, js, len, d->t, (unsigned)n);
  if (got != n) { /* only the second pass sees unclosed brackets */
    free(d->t);
    d->t = NULL;
    return mq_status_set(st, MQ_EINVAL, "answer is %s",
                         got == JSMN_ERROR_PART ? "truncated JSON" : "not JSON");
  }
  d->n = n;
  if (d->t[0].type != JSMN_OBJECT) {
    free(d->t);
    d->t = NULL;
    return mq_status_set(st, MQ_EINVAL, "answer is not a JSON object");
  }
  return 0;
}

/* The index after the value at i: tokens come in document order and a
 * container's children start inside its span. */
static int after(const struct doc *d, int i) {
  int j = i + 1;
  while (j < d->n && d->t[j].start < d->t[i].end)
    j++;
  return j;
}

static bool is(const struct doc *d, int i, const char *s) {
  size_t n = strlen(s);
  return d->t[i].type == JSMN_STRING && (size_t)(d->t[i].end - d->t[i].start) == n &&
         memcmp(d->js + d->t[i].start, s, n) == 0;
}

/* The value of key in the object at obj, or -1. */
static int member(const struct doc *d, int obj, const char *key) {
  if (obj < 0 || obj >= d->n || d->t[obj].type != JSMN_OBJECT)
    return -1;
  int j = obj + 1;
  for (int k = 0; k < d->t[obj].size && j + 1 < d->n; k++) {
    if (d->t[j].start >= d->t[obj].end)
      break;
    if (is(d, j, key))
      return j + 1;
    j = after(d, j + 1);
  }
  return -1;
}

/* A string value without escapes, copied with its NUL; false when absent,
 * not a string, escaped or too long. */
static bool plain_str(const struct doc *d, int i, char *out, size_t cap) {
  if (i < 0 || d->t[i].type != JSMN_STRING)
    return false;
  size_t n = (size_t)(d->t[i].end - d->t[i].start);
  const char *s = d->js + d->t[i].start;
  if (n >= cap || memchr(s, '\\', n))
    return false;
  memcpy(out, s, n);
  out[n] = '\0';
  return true;
}

/* A non-negative integer, as a JSON number or a string of digits (Nacos
 * metadata values are strings). */
static bool uint_val(const struct doc *d, int i, uint64_t max, uint64_t *out) {
  if (i < 0 || (d->t[i].type != JSMN_PRIMITIVE && d->t[i].type != JSMN_STRING))
    return false;
  const char *s = d->js + d->t[i].start;
  size_t n = (size_t)(d->t[i].end - d->t[i].start);
  if (n == 0 || n > 20)
    return false;
  uint64_t v = 0;
  for (size_t k = 0; k < n; k++) {
    if (s[k] < '0' || s[k] > '9')
      return false;
    unsigned digit = (unsigned)(s[k] - '0');
    if (v > (UINT64_MAX - digit) / 10)
      return false;
    v = v * 10 + digit;
  }
  if (v > max)
    return false;
  *out = v;
  return true;
}

/* true/false; def when absent. */
static bool bool_val(const struct doc *d, int i, bool def) {
  if (i < 0 || d->t[i].type != JSMN_PRIMITIVE)
    return def;
  return d->js[d->t[i].start] == 't';
}

/* An address a peer transport can dial: host name, IPv4 or IPv6 text. */
static bool host_chars(const char *s) {
  if (!*s)
    return false;
  for (; *s; s++)
    if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
          strchr(".-_:%", *s)))
      return false;
  return true;
}

static bool instance(const struct doc *d, int h, struct mq_nacos_instance *in) {
  uint64_t port = 0;
  memset(in, 0, sizeof *in);
  if (d->t[h].type != JSMN_OBJECT || !plain_str(d, member(d, h, "ip"), in->ip, sizeof in->ip) ||
      !host_chars(in->ip) || !uint_val(d, member(d, h, "port"), 65535, &port) || port == 0)
    return false;
  in->port = (int)port;
  in->healthy = bool_val(d, member(d, h, "healthy"), true);
  in->enabled = bool_val(d, member(d, h, "enabled"), true);
  int meta = member(d, h, "metadata");
  if (!plain_str(d, member(d, meta, "node_id"), in->node_id, sizeof in->node_id) ||
      !mq_config_valid_node_id(in->node_id))
    in->node_id[0] = '\0';
  if (!uint_val(d, member(d, meta, "incarnation"), UINT64_MAX, &in->incarnation))
    in->incarnation = 0;
  return true;
}

int mq_nacos_parse_list(const char *js, size_t len, struct mq_nacos_instance *out, size_t cap,
                        size_t *n, size_t *skipped, struct mq_status *st) {
  struct doc d;
  *n = 0;
  *skipped = 0;
  int rc = tokenize(&d, js, len, st);
  if (rc)
    return rc;
  int hosts = member(&d, 0, "hosts");
  if (hosts < 0) { /* v3: {"code": 0, "data": [...]} or "data": {"hosts": [...]} */
    int data = member(&d, 0, "data");
    hosts = data >= 0 && d.t[data].type == JSMN_ARRAY ? data : member(&d, data, "hosts");
  }
  if (hosts < 0 || d.t[hosts].type != JSMN_ARRAY) {
    rc = mq_status_set(st, MQ_EINVAL, "answer has no \"hosts\" array");
    goto out;
  }
  int j = hosts + 1;
  for (int k = 0; k < d.t[hosts].size && j < d.n && d.t[j].start < d.t[hosts].end; k++) {
    if (*n < cap && instance(&d, j, &out[*n]))
      (*n)++;
    else if (*n < cap)
      (*skipped)++;
    j = after(&d, j);
  }
out:
  free(d.t);
  return rc;
}

int mq_nacos_parse_beat(const char *js, size_t len, int *code, int64_t *interval_ms,
                        struct mq_status *st) {
  struct doc d;
  int rc = tokenize(&d, js, len, st);
  if (rc)
    return rc;
  uint64_t v;
  *code = uint_val(&d, member(&d, 0, "code"), 99999, &v) ? (int)v : 0;
  int obj = member(&d, 0, "data") >= 0 ? member(&d, 0, "data") : 0; /* v2/v3 wrap it */
  if (uint_val(&d, member(&d, obj, "clientBeatInterval"), 3600000, &v) && v >= 100)
    *interval_ms = (int64_t)v;
  free(d.t);
  return 0;
}

int mq_nacos_parse_login(const char *js, size_t len, char *token, size_t cap, int64_t *ttl_s,
                         struct mq_status *st) {
  struct doc d;
  if (cap)
    token[0] = '\0';
  int rc = tokenize(&d, js, len, st);
  if (rc)
    return rc;
  uint64_t v;
  if (!plain_str(&d, member(&d, 0, "accessToken"), token, cap) || !token[0]) {
    token[0] = '\0';
    rc = mq_status_set(st, MQ_EINVAL, "login answer has no accessToken");
  } else {
    *ttl_s = uint_val(&d, member(&d, 0, "tokenTtl"), INT32_MAX, &v) && v > 0 ? (int64_t)v : 18000;
  }
  free(d.t);
  return rc;
}

/* Compares one field of a listener line, URL-decoding as it goes; *pos ends
 * on the byte after the field's separator (\x02 or \x01, encoded or not). */
static bool field_is(const char *b, size_t len, size_t *pos, const char *want, char *sep) {
  size_t i = *pos, w = 0;
  bool same = true;
  *sep = '\0';
  while (i < len) {
    char c = b[i++];
    if (c == '%' && i + 1 < len && mq_hex_digit(b[i]) >= 0 && mq_hex_digit(b[i + 1]) >= 0) {
      c = (char)(mq_hex_digit(b[i]) * 16 + mq_hex_digit(b[i + 1]));
      i += 2;
    } else if (c == '+') {
      c = ' ';
    }
    if (c == '\x01' || c == '\x02' || c == '\n') {
      *sep = c;
      break;
    }
    if (!want[w] || want[w] != c)
      same = false;
    else
      w++;
  }
  *pos = i;
  return same && !want[w];
}

bool mq_nacos_listener_changed(const char *body, size_t len, const char *data_id,
                               const char *group) {
  size_t pos = 0;
  while (pos < len) {
    char sep;
    bool id = field_is(body, len, &pos, data_id, &sep);
    if (sep != '\x02')
      continue; /* an empty line or a line without a group */
    bool grp = field_is(body, len, &pos, group, &sep);
    while (sep == '\x02') /* a tenant field: skip it */
      field_is(body, len, &pos, "", &sep);
    if (id && grp)
      return true;
  }
  return false;
}
