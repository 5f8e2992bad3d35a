/* Formatting of keys and names for error messages (internal to agent/store):
 * keys may be long or hold control characters, and a message must stay
 * readable and within MQ_STATUS_MSG_MAX. */
#ifndef MQ_STORE_FMT_H
#define MQ_STORE_FMT_H

#include <stddef.h>

/* Writes key into out (size n >= 8, always NUL-terminated): at most about 60
 * bytes, cut on a UTF-8 boundary with "..." appended, control bytes and
 * quotes shown as '?'. Returns out. */
char *mq_fmt_key(char *out, size_t n, const char *key, size_t len);

#endif
