/* Reader for Java-style .properties files, the format the product has always
 * documented for its settings (memquorum.node.port=8080).
 *
 * Follows java.util.Properties.load: one `key=value`, `key: value` or
 * `key value` per logical line; `#` and `!` start comment lines; a line
 * ending in an odd number of backslashes continues on the next line, whose
 * leading whitespace is dropped; escapes \t \n \r \f \uXXXX, and a backslash
 * before any other character stands for that character (`\=`, `\:`, `\ `).
 *
 * Differences from Java, on purpose: the file is read as UTF-8 (as Spring and
 * Java 9+ resource bundles do) and a UTF-8 byte-order mark is skipped;
 * trailing unescaped whitespace of a value is dropped, so "port = 8080 "
 * means 8080 (write "\ " to keep a trailing space); an empty key, a NUL byte
 * or a malformed \u escape is an error instead of being accepted silently. */
#ifndef MQ_CONFIG_PROPS_H
#define MQ_CONFIG_PROPS_H

#include "util/err.h"

#include <stddef.h>

struct mq_prop {
  char *key;   /* unescaped, NUL-terminated */
  char *value; /* unescaped, NUL-terminated */
  int line;    /* 1-based line where the entry starts */
};

/* Entries in file order; a key given twice appears twice (callers decide,
 * normally the last one wins as in Java). Zero-initialize before use. */
struct mq_props {
  struct mq_prop *items;
  size_t n;
  size_t cap;
};

/* Files larger than this are refused: a settings file is a few KiB. */
#define MQ_PROPS_MAX_FILE (1u << 20)

/* Parses len bytes of text and appends its entries to p. name labels error
 * messages ("<name> line 3: ..."). Returns 0, MQ_EINVAL or MQ_ENOMEM. */
int mq_props_parse(struct mq_props *p, const char *text, size_t len, const char *name,
                   struct mq_status *st);

/* Reads and parses the file at path. Returns 0, MQ_ENOTFOUND/MQ_EIO when it
 * cannot be read (message has strerror), or what mq_props_parse returns. */
int mq_props_read_file(struct mq_props *p, const char *path, struct mq_status *st);

/* The value of the last entry named key, or NULL. Borrowed from p. */
const struct mq_prop *mq_props_find(const struct mq_props *p, const char *key);

/* Frees every entry; p is empty and reusable afterwards. */
void mq_props_free(struct mq_props *p);

#endif
