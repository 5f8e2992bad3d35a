/* JSON string escaping, UTF-8 validation and base64 for tool output. */
#include "json.h"

#include <string.h>

/* Length of the well-formed UTF-8 sequence at p (at most n bytes), or 0 if
 * the bytes there are not one (RFC 3629 section 4). */
static size_t utf8_seq(const uint8_t *p, size_t n) {
  uint8_t c = p[0];
  if (c < 0x80) return 1;
  size_t len;
  uint8_t lo = 0x80, hi = 0xbf; /* allowed range of the second byte */
  if (c >= 0xc2 && c <= 0xdf) {
    len = 2;
  } else if (c >= 0xe0 && c <= 0xef) {
    len = 3;
    if (c == 0xe0) lo = 0xa0;      /* no overlongs */
    else if (c == 0xed) hi = 0x9f; /* no surrogates */
  } else if (c >= 0xf0 && c <= 0xf4) {
    len = 4;
    if (c == 0xf0) lo = 0x90;      /* no overlongs */
    else if (c == 0xf4) hi = 0x8f; /* nothing past U+10FFFF */
  } else {
    return 0;
  }
  if (n < len) return 0;
  if (p[1] < lo || p[1] > hi) return 0;
  for (size_t i = 2; i < len; i++)
    if ((p[i] & 0xc0) != 0x80) return 0;
  return len;
}

int mq_utf8_valid(const uint8_t *p, size_t n) {
  size_t i = 0;
  while (i < n) {
    size_t k = utf8_seq(p + i, n - i);
    if (k == 0) return 0;
    i += k;
  }
  return 1;
}

void mq_json_strn(FILE *f, const char *s, size_t n) {
  const uint8_t *p = (const uint8_t *)s;
  size_t i = 0;
  fputc('"', f);
  while (i < n) {
    uint8_t c = p[i];
    if (c >= 0x80) {
      size_t k = utf8_seq(p + i, n - i);
      if (k == 0) {
        fputs("\\ufffd", f);
        i++;
      } else {
        fwrite(p + i, 1, k, f);
        i += k;
      }
      continue;
    }
    switch (c) {
    case '"': fputs("\\\"", f); break;
    case '\\': fputs("\\\\", f); break;
    case '\n': fputs("\\n", f); break;
    case '\r': fputs("\\r", f); break;
    case '\t': fputs("\\t", f); break;
    default:
      if (c < 0x20 || c == 0x7f) fprintf(f, "\\u%04x", c);
      else fputc(c, f);
    }
    i++;
  }
  fputc('"', f);
}

void mq_json_str(FILE *f, const char *s) { mq_json_strn(f, s, strlen(s)); }

void mq_base64_write(FILE *f, const uint8_t *p, size_t n) {
  static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t i = 0;
  for (; i + 3 <= n; i += 3) {
    uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
    char out[4] = {abc[v >> 18], abc[(v >> 12) & 63], abc[(v >> 6) & 63], abc[v & 63]};
    fwrite(out, 1, 4, f);
  }
  if (n - i == 1) {
    uint32_t v = (uint32_t)p[i] << 16;
    char out[4] = {abc[v >> 18], abc[(v >> 12) & 63], '=', '='};
    fwrite(out, 1, 4, f);
  } else if (n - i == 2) {
    uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
    char out[4] = {abc[v >> 18], abc[(v >> 12) & 63], abc[(v >> 6) & 63], '='};
    fwrite(out, 1, 4, f);
  }
}

void mq_json_bytes_field(FILE *f, const char *name, const uint8_t *p, size_t n) {
  mq_json_str(f, name);
  fputc(':', f);
  if (mq_utf8_valid(p, n)) {
    mq_json_strn(f, (const char *)p, n);
    return;
  }
  fputc('"', f);
  mq_base64_write(f, p, n);
  fputs("\",", f);
  fprintf(f, "\"%s_base64\":true", name);
}
