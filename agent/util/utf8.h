/* UTF-8 and the \uXXXX escapes that produce it, in one place.
 *
 * Keys are UTF-8 (DESIGN.md section 2), the change feed sends values as
 * text only when they are UTF-8 (section 8), and two readers turn \uXXXX
 * escapes into UTF-8: JSON strings (RFC 8259 section 7) and .properties
 * files (java.util.Properties). All of them use this module, so they agree
 * on what well-formed means: RFC 3629 section 4, that is no overlong forms,
 * no surrogates (U+D800..U+DFFF) and nothing past U+10FFFF.
 *
 * U+0000 is well-formed UTF-8. Callers that refuse NUL (keys, settings)
 * check for it themselves, with a message of their own.
 *
 * Pure functions of their arguments; safe on any thread. */
#ifndef MQ_UTIL_UTF8_H
#define MQ_UTIL_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The longest UTF-8 sequence, in bytes. */
#define MQ_UTF8_MAX 4

/* Length (1..4) of the well-formed sequence that starts p[0..n), or 0 when
 * the bytes there do not start one (a bad lead byte, a bad continuation
 * byte, an overlong form, a surrogate, a code point past U+10FFFF, or a
 * sequence cut short by n). n must be at least 1. */
size_t mq_utf8_seq(const uint8_t *p, size_t n);

/* Whether all of p[0..n) is well-formed UTF-8 (true for n == 0). */
bool mq_utf8_valid(const uint8_t *p, size_t n);

/* Writes the UTF-8 form of cp to out and returns its length (1..4). cp must
 * be a Unicode scalar value: at most U+10FFFF and not a surrogate. */
size_t mq_utf8_encode(uint32_t cp, char out[MQ_UTF8_MAX]);

/* Value of the hex digit c (0-9, a-f, A-F), or -1. */
int mq_hex_digit(char c);

/* Decodes the four hex digits of a \uXXXX escape at s (n bytes available
 * from s, the character after the 'u'). A high surrogate must be followed
 * by a second escape "\uXXXX" holding a low surrogate; the pair is one code
 * point, as in JSON and Java. On success sets *cp and *used (the bytes
 * consumed from s: 4, or 10 for a pair) and returns 0. Returns MQ_EINVAL
 * when s does not start with four hex digits, and MQ_ERANGE for a surrogate
 * without its partner, with that surrogate in *cp. \u0000 decodes to 0;
 * callers that refuse NUL check for it. */
int mq_utf16_escape(const char *s, size_t n, uint32_t *cp, size_t *used);

#endif
