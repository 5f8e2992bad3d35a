/* JSON output for the feed: text appended to an mq_buf, string escaping
 * (RFC 8259 section 7), base64 (RFC 4648 section 4) and the encoding of
 * one change event. UTF-8 is checked with util/utf8.h. */
#include "feed/internal.h"

#include "util/utf8.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void mq_feed_puts(struct mq_buf *b, const char *s) { mq_buf_put(b, s, strlen(s)); }

void mq_feed_printf(struct mq_buf *b, const char *fmt, ...) {
  char small[256];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(small, sizeof small, fmt, ap);
  va_end(ap);
  if (n < 0)
    return;
  if ((size_t)n < sizeof small) {
    mq_buf_put(b, small, (size_t)n);
    return;
  }
  if (mq_buf_reserve(b, (size_t)n + 1))
    return;
  va_start(ap, fmt);
  vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
}

void mq_feed_json_str(struct mq_buf *b, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  const uint8_t *p = (const uint8_t *)s;
  mq_buf_put_u8(b, '"');
  size_t i = 0;
  while (i < n) {
    uint8_t c = p[i];
    if (c == '"' || c == '\\') {
      mq_buf_put_u8(b, '\\');
      mq_buf_put_u8(b, c);
      i++;
    } else if (c < 0x20) {
      const char *esc = NULL;
      switch (c) {
      case '\n':
        esc = "\\n";
        break;
      case '\r':
        esc = "\\r";
        break;
      case '\t':
        esc = "\\t";
        break;
      case '\b':
        esc = "\\b";
        break;
      case '\f':
        esc = "\\f";
        break;
      default:
        break;
      }
      if (esc) {
        mq_buf_put(b, esc, 2);
      } else {
        char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
        mq_buf_put(b, u, 6);
      }
      i++;
    } else if (c < 0x80) {
      mq_buf_put_u8(b, c);
      i++;
    } else {
      size_t k = mq_utf8_seq(p + i, n - i);
      if (k) {
        mq_buf_put(b, p + i, k);
        i += k;
      } else {
        mq_buf_put(b, "\\ufffd", 6);
        i++;
      }
    }
  }
  mq_buf_put_u8(b, '"');
}

void mq_feed_base64(struct mq_buf *b, const uint8_t *p, size_t n) {
  static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  if (mq_buf_reserve(b, (n + 2) / 3 * 4))
    return;
  size_t i = 0;
  for (; i + 3 <= n; i += 3) {
    uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
    char q[4] = {tab[v >> 18], tab[(v >> 12) & 63], tab[(v >> 6) & 63], tab[v & 63]};
    mq_buf_put(b, q, 4);
  }
  if (n - i == 1) {
    uint32_t v = (uint32_t)p[i] << 16;
    char q[4] = {tab[v >> 18], tab[(v >> 12) & 63], '=', '='};
    mq_buf_put(b, q, 4);
  } else if (n - i == 2) {
    uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
    char q[4] = {tab[v >> 18], tab[(v >> 12) & 63], tab[(v >> 6) & 63], '='};
    mq_buf_put(b, q, 4);
  }
}

/* "name":"text" for UTF-8 bytes, else "name":"base64" plus
 * "name_encoding":"base64". */
static void bytes_field(struct mq_buf *b, const char *name, const uint8_t *p, size_t n) {
  if (mq_utf8_valid(p, n)) {
    mq_feed_printf(b, ",\"%s\":", name);
    mq_feed_json_str(b, (const char *)p, n);
    return;
  }
  mq_feed_printf(b, ",\"%s\":\"", name);
  mq_feed_base64(b, p, n);
  mq_feed_printf(b, "\",\"%s_encoding\":\"base64\"", name);
}

static const char *type_name(enum mq_event_type t) {
  switch (t) {
  case MQ_EV_PUT:
    return "PUT";
  case MQ_EV_DELETE:
    return "DELETE";
  case MQ_EV_EXPIRE:
    return "EXPIRE";
  case MQ_EV_PRODUCE:
    return "PRODUCE";
  }
  return "UNKNOWN";
}

void mq_feed_event_json(struct mq_buf *b, const struct mq_event *ev) {
  mq_feed_printf(b, "{\"shard\":%" PRId32 ",\"revision\":%" PRId64 ",\"type\":\"%s\"", ev->shard,
                 ev->revision, type_name(ev->type));
  if (ev->type == MQ_EV_PRODUCE) {
    const struct mq_entry *e = &ev->entry;
    mq_feed_puts(b, ",\"topic\":");
    mq_feed_json_str(b, ev->topic, ev->topic_len);
    bytes_field(b, "key", (const uint8_t *)e->key, e->key_len);
    bytes_field(b, "value", e->value, e->value_len);
    mq_feed_printf(b,
                   ",\"partition\":%" PRId32 ",\"offset\":%" PRId64 ",\"timestamp\":%" PRId64 "}",
                   e->partition, e->offset, e->timestamp);
    return;
  }
  const struct mq_kv *kv = &ev->kv;
  bytes_field(b, "key", (const uint8_t *)kv->key, kv->key_len);
  bytes_field(b, "value", kv->value, kv->value_len);
  mq_feed_printf(
      b,
      ",\"create_revision\":%" PRId64 ",\"mod_revision\":%" PRId64 ",\"version\":%" PRId64
      ",\"expires_at_ms\":%" PRId64 ",\"timestamp\":%" PRId64 "}",
      kv->create_revision, kv->mod_revision, kv->version, kv->expires_at_ms, ev->entry.timestamp);
}

char *mq_feed_strdup_buf(const struct mq_buf *b, size_t off) {
  if (b->err || b->len < off)
    return NULL;
  char *s = malloc(b->len - off + 1);
  if (!s)
    return NULL;
  memcpy(s, b->data + off, b->len - off);
  s[b->len - off] = '\0';
  return s;
}
