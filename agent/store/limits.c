/* Limits of the store and the validation of keys, values and topic names.
 * The messages name the offending value so a person can act on them. */
#include "store/sm.h"

#include "store/fmt.h"
#include "util/utf8.h"

#include <stdio.h>
#include <string.h>

void mq_store_limits_default(struct mq_store_limits *l) {
  memset(l, 0, sizeof *l);
  l->max_key_bytes = 4096;
  l->max_value_bytes = 1024 * 1024;
  l->max_topic_bytes = 255;
  l->retention_entries = 1000000;
  l->retention_bytes = 64ull * 1024 * 1024;
  l->retention_ms = 7ll * 24 * 3600 * 1000;
  l->history_events = 10000;
  l->history_bytes = 64ull * 1024 * 1024;
  l->dedup_clients = 10000;
}

int mq_store_check_key(const struct mq_store_limits *l, const char *key, size_t len,
                       struct mq_status *st) {
  if (len == 0)
    return mq_status_set(st, MQ_EINVAL, "key is empty");
  if (len > l->max_key_bytes)
    return mq_status_set(st, MQ_EINVAL, "key is %zu bytes, the limit is %zu", len,
                         l->max_key_bytes);
  const uint8_t *s = (const uint8_t *)key;
  for (size_t i = 0; i < len;) {
    if (s[i] == 0)
      return mq_status_set(st, MQ_EINVAL, "key contains a NUL byte at offset %zu", i);
    size_t n = mq_utf8_seq(s + i, len - i);
    if (n == 0)
      return mq_status_set(st, MQ_EINVAL, "key is not valid UTF-8 (byte 0x%02x at offset %zu)",
                           s[i], i);
    i += n;
  }
  return 0;
}

int mq_store_check_value(const struct mq_store_limits *l, size_t len, struct mq_status *st) {
  if (len > l->max_value_bytes)
    return mq_status_set(st, MQ_EINVAL, "value is %zu bytes, the limit is %zu", len,
                         l->max_value_bytes);
  return 0;
}

static bool topic_char(uint8_t c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-';
}

int mq_store_check_topic(const struct mq_store_limits *l, const char *topic, size_t len,
                         struct mq_status *st) {
  if (len == 0)
    return mq_status_set(st, MQ_EINVAL, "topic is empty");
  if (len > l->max_topic_bytes)
    return mq_status_set(st, MQ_EINVAL, "topic is %zu bytes, the limit is %zu", len,
                         l->max_topic_bytes);
  for (size_t i = 0; i < len; i++) {
    uint8_t c = (uint8_t)topic[i];
    if (!topic_char(c)) {
      char shown[80], ch[8];
      mq_fmt_key(shown, sizeof shown, topic, len);
      if (c >= 0x20 && c < 0x7f)
        snprintf(ch, sizeof ch, "'%c'", c);
      else
        snprintf(ch, sizeof ch, "0x%02x", c);
      return mq_status_set(st, MQ_EINVAL,
                           "topic \"%s\" has invalid character %s at offset %zu; "
                           "allowed are A-Z a-z 0-9 . _ -",
                           shown, ch, i);
    }
  }
  return 0;
}
