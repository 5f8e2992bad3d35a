/* UTF-8 validation and encoding, and \uXXXX escapes (see utf8.h). */
#include "util/utf8.h"

#include "util/err.h"

#include <assert.h>

/* RFC 3629 section 4: the lead byte fixes the length and the range of the
 * second byte; that range is what rules out overlong forms (E0, F0),
 * surrogates (ED) and code points past U+10FFFF (F4). Later bytes are
 * plain continuation bytes 80..BF. */
size_t mq_utf8_seq(const uint8_t *p, size_t n) {
  uint8_t c = p[0];
  if (c < 0x80)
    return 1;
  size_t len;
  uint8_t lo = 0x80, hi = 0xbf; /* allowed range of the second byte */
  if (c >= 0xc2 && c <= 0xdf) {
    len = 2;
  } else if (c >= 0xe0 && c <= 0xef) {
    len = 3;
    if (c == 0xe0)
      lo = 0xa0; /* below: overlong */
    else if (c == 0xed)
      hi = 0x9f; /* above: surrogates */
  } else if (c >= 0xf0 && c <= 0xf4) {
    len = 4;
    if (c == 0xf0)
      lo = 0x90; /* below: overlong */
    else if (c == 0xf4)
      hi = 0x8f; /* above: past U+10FFFF */
  } else {
    return 0; /* continuation byte, C0/C1 (overlong) or F5..FF */
  }
  if (n < len || p[1] < lo || p[1] > hi)
    return 0;
  for (size_t i = 2; i < len; i++)
    if (p[i] < 0x80 || p[i] > 0xbf)
      return 0;
  return len;
}

bool mq_utf8_valid(const uint8_t *p, size_t n) {
  for (size_t i = 0; i < n;) {
    size_t k = mq_utf8_seq(p + i, n - i);
    if (k == 0)
      return false;
    i += k;
  }
  return true;
}

size_t mq_utf8_encode(uint32_t cp, char out[MQ_UTF8_MAX]) {
  assert(cp <= 0x10ffff && (cp < 0xd800 || cp > 0xdfff));
  if (cp < 0x80) {
    out[0] = (char)cp;
    return 1;
  }
  if (cp < 0x800) {
    out[0] = (char)(0xc0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3f));
    return 2;
  }
  if (cp < 0x10000) {
    out[0] = (char)(0xe0 | (cp >> 12));
    out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
    out[2] = (char)(0x80 | (cp & 0x3f));
    return 3;
  }
  out[0] = (char)(0xf0 | (cp >> 18));
  out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
  out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
  out[3] = (char)(0x80 | (cp & 0x3f));
  return 4;
}

int mq_hex_digit(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/* Four hex digits at s (n bytes available) as a 16-bit value. */
static bool hex4(const char *s, size_t n, uint32_t *out) {
  if (n < 4)
    return false;
  uint32_t v = 0;
  for (int i = 0; i < 4; i++) {
    int d = mq_hex_digit(s[i]);
    if (d < 0)
      return false;
    v = v << 4 | (uint32_t)d;
  }
  *out = v;
  return true;
}

static bool is_high(uint32_t u) { return u >= 0xd800 && u <= 0xdbff; }
static bool is_low(uint32_t u) { return u >= 0xdc00 && u <= 0xdfff; }

int mq_utf16_escape(const char *s, size_t n, uint32_t *cp, size_t *used) {
  uint32_t u, lo;
  if (!hex4(s, n, &u))
    return MQ_EINVAL;
  *cp = u;
  if (is_low(u))
    return MQ_ERANGE;
  if (!is_high(u)) {
    *used = 4;
    return 0;
  }
  /* UTF-16 (RFC 2781 section 2.2): the low half follows as "\uXXXX". */
  if (n < 10 || s[4] != '\\' || s[5] != 'u' || !hex4(s + 6, n - 6, &lo) || !is_low(lo))
    return MQ_ERANGE;
  *cp = 0x10000 + ((u - 0xd800) << 10) + (lo - 0xdc00);
  *used = 10;
  return 0;
}
