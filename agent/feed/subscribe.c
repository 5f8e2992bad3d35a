/* Parsing of the subscribe message (DESIGN.md section 8):
 *
 *   {"subscribe": {"prefix": "user:123:", "topics": ["t1"], "from": {"7": 1042}}}
 *
 * jsmn (strict mode) tokenizes; this file checks the shape and decodes JSON
 * strings (RFC 8259 section 7, including \u surrogate pairs). Every field is
 * optional; unknown fields are refused so a typo ("topic") is not silently
 * ignored. Nothing here trusts the input: every error gets a message. */
#include "feed/internal.h"

#include "util/utf8.h"

#define JSMN_STATIC
#define JSMN_STRICT
#include <jsmn.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct parse {
  const char *js;
  jsmntok_t *t;
  int n;
  struct mq_status *st;
};

/* Index of the token after the subtree rooted at i, or p->n + 1 when the
 * tokens end inside it. jsmn, even in strict mode, takes {"a" "b"} for an
 * object of two keys and no values; mq_feed_sub_parse() refuses anything
 * whose counts do not add up, so the walks below stay inside p->t. */
static int skip(const struct parse *p, int i) {
  if (i >= p->n)
    return p->n + 1;
  int end = i + 1;
  int todo = p->t[i].type == JSMN_OBJECT  ? 2 * p->t[i].size
             : p->t[i].type == JSMN_ARRAY ? p->t[i].size
                                          : 0;
  while (todo-- > 0 && end <= p->n)
    end = skip(p, end);
  return end;
}

static bool tok_is(const struct parse *p, int i, const char *s) {
  size_t n = strlen(s);
  return p->t[i].type == JSMN_STRING && (size_t)(p->t[i].end - p->t[i].start) == n &&
         memcmp(p->js + p->t[i].start, s, n) == 0;
}

/* Decodes string token i into a new NUL-terminated buffer. */
static int str_dup(const struct parse *p, int i, const char *what, char **out, size_t *len) {
  if (p->t[i].type != JSMN_STRING)
    return mq_status_set(p->st, MQ_EINVAL, "%s must be a string", what);
  const char *s = p->js + p->t[i].start;
  size_t n = (size_t)(p->t[i].end - p->t[i].start);
  char *o = malloc(n + 1); /* decoding never grows the text */
  if (!o)
    return mq_status_set(p->st, MQ_ENOMEM, "out of memory");
  size_t k = 0;
  for (size_t j = 0; j < n; j++) {
    if (s[j] != '\\') {
      o[k++] = s[j];
      continue;
    }
    j++; /* jsmn guarantees a character after the backslash */
    char c = s[j];
    switch (c) {
    case '"':
    case '\\':
    case '/':
      o[k++] = c;
      break;
    case 'b':
      o[k++] = '\b';
      break;
    case 'f':
      o[k++] = '\f';
      break;
    case 'n':
      o[k++] = '\n';
      break;
    case 'r':
      o[k++] = '\r';
      break;
    case 't':
      o[k++] = '\t';
      break;
    case 'u': {
      uint32_t cp;
      size_t used;
      if (mq_utf16_escape(s + j + 1, n - j - 1, &cp, &used))
        goto bad;
      j += used;
      k += mq_utf8_encode(cp, o + k);
      break;
    }
    default:
      goto bad;
    }
  }
  o[k] = '\0';
  *out = o;
  *len = k;
  return 0;
bad:
  free(o);
  return mq_status_set(p->st, MQ_EINVAL, "%s has a bad escape sequence", what);
}

/* A non-negative decimal integer token (string or number) that fits in
 * int64_t. */
static int int_tok(const struct parse *p, int i, jsmntype_t type, int64_t *out) {
  const char *s = p->js + p->t[i].start;
  size_t n = (size_t)(p->t[i].end - p->t[i].start);
  if (p->t[i].type != type || n == 0 || n > 19)
    return -1;
  int64_t v = 0;
  for (size_t j = 0; j < n; j++) {
    if (s[j] < '0' || s[j] > '9')
      return -1;
    int d = s[j] - '0';
    if (v > (INT64_MAX - d) / 10) /* 19 digits can pass INT64_MAX */
      return -1;
    v = v * 10 + d;
  }
  if (n > 1 && s[0] == '0')
    return -1;
  *out = v;
  return 0;
}

static int parse_topics(struct parse *p, int i, struct mq_feed_sub *sub) {
  if (p->t[i].type != JSMN_ARRAY)
    return mq_status_set(p->st, MQ_EINVAL, "\"topics\" must be an array of strings");
  if (p->t[i].size > MQ_FEED_MAX_TOPICS)
    return mq_status_set(p->st, MQ_EINVAL, "\"topics\" names %d topics; at most %d are allowed",
                         p->t[i].size, MQ_FEED_MAX_TOPICS);
  int j = i + 1;
  for (int k = 0; k < p->t[i].size; k++, j = skip(p, j)) {
    char *s;
    size_t n;
    if (str_dup(p, j, "each of \"topics\"", &s, &n))
      return p->st->code;
    bool dup = false;
    for (int m = 0; m < sub->n_topics; m++)
      dup |= sub->topic_lens[m] == n && memcmp(sub->topics[m], s, n) == 0;
    if (dup) {
      free(s);
      continue;
    }
    sub->topics[sub->n_topics] = s;
    sub->topic_lens[sub->n_topics++] = n;
  }
  return 0;
}

static int parse_from(struct parse *p, int i, struct mq_feed_sub *sub) {
  if (p->t[i].type != JSMN_OBJECT)
    return mq_status_set(p->st, MQ_EINVAL,
                         "\"from\" must be an object of shard -> revision, like {\"7\": 1042}");
  int n = p->t[i].size;
  if (n > MQ_FEED_MAX_STARTS)
    return mq_status_set(p->st, MQ_EINVAL, "\"from\" names %d shards; at most %d are allowed", n,
                         MQ_FEED_MAX_STARTS);
  sub->starts = calloc(n ? (size_t)n : 1, sizeof *sub->starts);
  if (!sub->starts)
    return mq_status_set(p->st, MQ_ENOMEM, "out of memory");
  int j = i + 1;
  for (int k = 0; k < n; k++) {
    int64_t shard, rev;
    if (int_tok(p, j, JSMN_STRING, &shard) || shard > INT32_MAX)
      return mq_status_set(p->st, MQ_EINVAL,
                           "\"from\" keys must be shard numbers like \"7\", got \"%.*s\"",
                           p->t[j].end - p->t[j].start > 40 ? 40 : p->t[j].end - p->t[j].start,
                           p->js + p->t[j].start);
    j++;
    if (int_tok(p, j, JSMN_PRIMITIVE, &rev))
      return mq_status_set(p->st, MQ_EINVAL,
                           "\"from\" of shard %lld must be a non-negative integer revision",
                           (long long)shard);
    j = skip(p, j);
    for (size_t m = 0; m < sub->n_starts; m++)
      if (sub->starts[m].shard == shard)
        return mq_status_set(p->st, MQ_EINVAL, "\"from\" names shard %lld twice", (long long)shard);
    sub->starts[sub->n_starts].shard = (int32_t)shard;
    sub->starts[sub->n_starts++].revision = rev;
  }
  return 0;
}

static int parse_body(struct parse *p, int i, struct mq_feed_sub *sub) {
  if (p->t[i].type != JSMN_OBJECT)
    return mq_status_set(p->st, MQ_EINVAL, "\"subscribe\" must be an object");
  int j = i + 1;
  for (int k = 0; k < p->t[i].size; k++) {
    int v = j + 1;
    if (tok_is(p, j, "prefix")) {
      free(sub->prefix);
      sub->prefix = NULL;
      if (str_dup(p, v, "\"prefix\"", &sub->prefix, &sub->prefix_len))
        return p->st->code;
    } else if (tok_is(p, j, "topics")) {
      if (sub->n_topics)
        return mq_status_set(p->st, MQ_EINVAL, "\"topics\" given twice");
      if (parse_topics(p, v, sub))
        return p->st->code;
    } else if (tok_is(p, j, "from")) {
      if (sub->starts)
        return mq_status_set(p->st, MQ_EINVAL, "\"from\" given twice");
      if (parse_from(p, v, sub))
        return p->st->code;
    } else {
      int len = p->t[j].end - p->t[j].start;
      return mq_status_set(p->st, MQ_EINVAL,
                           "unknown field \"%.*s\" in \"subscribe\"; expected prefix, topics, from",
                           len > 40 ? 40 : len, p->js + p->t[j].start);
    }
    j = skip(p, v);
  }
  return 0;
}

int mq_feed_sub_parse(const char *js, size_t len, struct mq_feed_sub *sub, struct mq_status *st) {
  memset(sub, 0, sizeof *sub);
  jsmn_parser jp;
  jsmn_init(&jp);
  int n = jsmn_parse(&jp, js, len, NULL, 0);
  if (n <= 0)
    return mq_status_set(st, MQ_EINVAL, "the message is not valid JSON");
  struct parse p = {js, calloc((size_t)n, sizeof(jsmntok_t)), n, st};
  if (!p.t)
    return mq_status_set(st, MQ_ENOMEM, "out of memory");
  jsmn_init(&jp);
  int rc;
  if (jsmn_parse(&jp, js, len, p.t, (unsigned)n) != n || skip(&p, 0) != n) {
    rc = mq_status_set(st, MQ_EINVAL, "the message is not valid JSON");
    goto out;
  }
  if (p.t[0].type != JSMN_OBJECT || p.t[0].size != 1 || !tok_is(&p, 1, "subscribe")) {
    rc = mq_status_set(st, MQ_EINVAL,
                       "expected {\"subscribe\": {\"prefix\": ..., \"topics\": [...], "
                       "\"from\": {...}}}");
    goto out;
  }
  rc = parse_body(&p, 2, sub);
out:
  free(p.t);
  if (rc)
    mq_feed_sub_free(sub);
  return rc;
}

void mq_feed_sub_free(struct mq_feed_sub *sub) {
  free(sub->prefix);
  for (int i = 0; i < sub->n_topics; i++)
    free(sub->topics[i]);
  free(sub->starts);
  memset(sub, 0, sizeof *sub);
}
