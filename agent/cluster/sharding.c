/* Sharding function of DESIGN.md section 2. */
#include "cluster/sharding.h"

#include <assert.h>
#include <string.h>

/* Decodes one UTF-8 code point starting at s[*i]; advances *i. Malformed
 * sequences yield U+FFFD and consume one byte. */
static uint32_t next_code_point(const unsigned char *s, size_t len, size_t *i) {
  unsigned char c = s[*i];
  size_t need;
  uint32_t cp;
  if (c < 0x80) {
    (*i)++;
    return c;
  } else if ((c & 0xe0) == 0xc0 && c >= 0xc2) {
    need = 1;
    cp = c & 0x1f;
  } else if ((c & 0xf0) == 0xe0) {
    need = 2;
    cp = c & 0x0f;
  } else if ((c & 0xf8) == 0xf0 && c <= 0xf4) {
    need = 3;
    cp = c & 0x07;
  } else {
    (*i)++;
    return 0xfffd;
  }
  if (*i + need >= len) {
    (*i)++;
    return 0xfffd;
  }
  for (size_t k = 1; k <= need; k++) {
    if ((s[*i + k] & 0xc0) != 0x80) {
      (*i)++;
      return 0xfffd;
    }
    cp = (cp << 6) | (s[*i + k] & 0x3f);
  }
  /* Overlong forms, surrogates and values past U+10FFFF are malformed. */
  if ((need == 2 && cp < 0x800) || (need == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
      (cp >= 0xd800 && cp <= 0xdfff)) {
    (*i)++;
    return 0xfffd;
  }
  *i += need + 1;
  return cp;
}

int32_t mq_java_string_hash(const char *s, size_t len) {
  const unsigned char *u = (const unsigned char *)s;
  uint32_t h = 0;
  size_t i = 0;
  while (i < len) {
    uint32_t cp = next_code_point(u, len, &i);
    if (cp >= 0x10000) {
      cp -= 0x10000;
      h = 31 * h + (0xd800 + (cp >> 10));
      h = 31 * h + (0xdc00 + (cp & 0x3ff));
    } else {
      h = 31 * h + cp;
    }
  }
  return (int32_t)h;
}

void mq_shard_id_of_key(const char *key, size_t len, const char **id, size_t *id_len) {
  static const char prefix[] = "user:";
  const size_t plen = sizeof prefix - 1;
  if (len > plen && memcmp(key, prefix, plen) == 0) {
    const char *start = key + plen;
    const char *colon = memchr(start, ':', len - plen);
    *id = start;
    *id_len = colon ? (size_t)(colon - start) : len - plen;
    return;
  }
  *id = key;
  *id_len = len;
}

int mq_shard_of_key(const char *key, size_t len, int shards_total) {
  assert(shards_total > 0);
  const char *id;
  size_t id_len;
  mq_shard_id_of_key(key, len, &id, &id_len);
  int32_t h = mq_java_string_hash(id, id_len);
  int m = (int)(h % shards_total);
  return m < 0 ? m + shards_total : m;
}
