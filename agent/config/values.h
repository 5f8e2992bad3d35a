/* Parsers and printers for the value types of configuration settings:
 * integers, booleans, byte sizes, durations, node ids and the static peer
 * list. They know nothing of where a value came from; config.c adds the key
 * and source to their messages.
 *
 * Every parser takes a NUL-terminated string, stores the result only on
 * success and returns 0 or MQ_EINVAL (malformed: `why` says what is wrong)
 * or MQ_ERANGE (well-formed but does not fit the type). `why` may be NULL. */
#ifndef MQ_CONFIG_VALUES_H
#define MQ_CONFIG_VALUES_H

#include "config/config.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Decimal integer with optional sign; no spaces, no trailing characters. */
int mq_config_parse_int(const char *s, int64_t *out);

/* true/false, 1/0, yes/no, on/off, any letter case. */
int mq_config_parse_bool(const char *s, bool *out);

/* A byte count: digits with an optional unit, any letter case, optional
 * space before it. Every unit is a power of 1024, as in the JVM (-Xmx1g)
 * and Spring's DataSize: b; k, kb, ki, kib; m, mb, mi, mib; g, gb, gi, gib;
 * t, tb, ti, tib. "512MiB", "1g", "1048576". */
int mq_config_parse_size(const char *s, uint64_t *out);

/* A duration in milliseconds: a bare integer is milliseconds ("30000");
 * otherwise one or more number+unit parts, units ms, s, m, h, d
 * ("500ms", "7d", "1h30m"). */
int mq_config_parse_duration_ms(const char *s, int64_t *out);

/* True when s is a valid node id: 1..127 bytes of [A-Za-z0-9._-], the
 * characters of a Kubernetes pod name and of hostnames. */
bool mq_config_valid_node_id(const char *s);

/* Parses `id=host:port,id2=host2:port2` (spaces around elements allowed;
 * IPv6 hosts in brackets, "[::1]:7070", stored without brackets). An empty
 * or all-space string is an empty list. Ids and addresses must be unique,
 * ports 1-65535. On error `why` names the element ("element 2
 * \"n2=h\": ..."). */
int mq_config_parse_peers(const char *s, struct mq_peer_addr *peers, int max, int *n, char *why,
                          size_t why_len);

/* Prints a size with the largest binary unit that divides it ("1GiB",
 * "4096B" -> "4KiB", "1000B"). */
void mq_config_format_size(uint64_t v, char *out, size_t cap);

/* Prints a duration with the largest unit that divides it ("7d", "1500ms"). */
void mq_config_format_duration_ms(int64_t ms, char *out, size_t cap);

#endif
