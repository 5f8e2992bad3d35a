/* Keys and names made fit for error messages. */
#include "store/fmt.h"

#include <string.h>

#define SHOWN_MAX 60

char *mq_fmt_key(char *out, size_t n, const char *key, size_t len) {
  size_t room = n - 4; /* "..." and the NUL */
  if (room > SHOWN_MAX)
    room = SHOWN_MAX;
  size_t take = len;
  if (take > room) {
    take = room;
    /* do not cut a multi-byte sequence: back up over continuation bytes */
    while (take > 0 && ((unsigned char)key[take] & 0xc0) == 0x80)
      take--;
  }
  for (size_t i = 0; i < take; i++) {
    unsigned char c = (unsigned char)key[i];
    out[i] = (c < 0x20 || c == 0x7f || c == '"') ? '?' : (char)c;
  }
  if (take < len) {
    memcpy(out + take, "...", 4);
  } else {
    out[take] = '\0';
  }
  return out;
}
