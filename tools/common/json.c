/* JSON string escaping and base64 for tool output; UTF-8 is checked with
 * util/utf8.h. */
#include "json.h"

#include "util/utf8.h"

#include <string.h>

void mq_json_strn(FILE *f, const char *s, size_t n) {
  const uint8_t *p = (const uint8_t *)s;
  size_t i = 0;
  fputc('"', f);
  while (i < n) {
    uint8_t c = p[i];
    if (c >= 0x80) {
      size_t k = mq_utf8_seq(p + i, n - i);
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
    case '"':
      fputs("\\\"", f);
      break;
    case '\\':
      fputs("\\\\", f);
      break;
    case '\n':
      fputs("\\n", f);
      break;
    case '\r':
      fputs("\\r", f);
      break;
    case '\t':
      fputs("\\t", f);
      break;
    default:
      if (c < 0x20 || c == 0x7f)
        fprintf(f, "\\u%04x", c);
      else
        fputc(c, f);
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
