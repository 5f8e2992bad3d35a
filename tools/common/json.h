/* Small helpers for writing JSON to a stdio stream: escaped strings, bytes
 * as UTF-8 text when valid and base64 otherwise. The tools decide how to
 * print a value for a person with mq_utf8_valid() of util/utf8.h.
 *
 * Byte values follow the convention of the change feed (DESIGN.md section
 * 8): a field "value" holds the text when the bytes are valid UTF-8;
 * otherwise it holds base64 (RFC 4648, with padding) and the object gets a
 * flag "value_base64": true. */
#ifndef MQ_TOOLS_JSON_H
#define MQ_TOOLS_JSON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Writes a quoted JSON string. Bytes that are not valid UTF-8 become
 * U+FFFD, so the output is always valid JSON. */
void mq_json_strn(FILE *f, const char *s, size_t n);
void mq_json_str(FILE *f, const char *s);

/* Writes `"name":<value>` for a bytes value, plus `,"name_base64":true`
 * when the bytes are not valid UTF-8. */
void mq_json_bytes_field(FILE *f, const char *name, const uint8_t *p, size_t n);

/* Writes base64 of p[0..n) without quotes. */
void mq_base64_write(FILE *f, const uint8_t *p, size_t n);

#endif
