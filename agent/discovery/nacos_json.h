/* What a Nacos server answers, decoded: the pure half of the Nacos client
 * (nacos.c does the HTTP). Kept apart so that unit tests and the `nacos`
 * fuzz target reach it without curl or a server.
 *
 * Shapes follow the Nacos open API and what r-nacos 0.8.8 really sends
 * (scripts/services/NACOS-NOTES.md): v1 list {"hosts": [...]}, v3 list
 * {"code": 0, "data": [...]} (or "data": {"hosts": [...]}), beat
 * {"code": 10200, "clientBeatInterval": 5000}, login {"accessToken": "...",
 * "tokenTtl": 3600}, and the config listener's URL-encoded
 * "dataId%02group%01" lines. Nothing here trusts its input: a malformed
 * answer is an MQ_EINVAL with a message saying what was wrong, never an
 * assert or a read past the end. */
#ifndef MQ_DISCOVERY_NACOS_JSON_H
#define MQ_DISCOVERY_NACOS_JSON_H

#include "util/err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Answers larger than this are refused before parsing. */
#define MQ_NACOS_MAX_BODY (4u << 20)

/* One instance of a service list, as far as discovery needs it. */
struct mq_nacos_instance {
  char ip[256];
  int port;
  bool healthy;
  bool enabled;
  char node_id[128];    /* metadata.node_id; "" when absent or not a node id */
  uint64_t incarnation; /* metadata.incarnation; 0 when absent or malformed */
};

/* Decodes a list answer. The first cap usable instances are written to out
 * and counted in *n; one without a usable ip or port is skipped and counted
 * in *skipped. Healthy and enabled are reported, not filtered. Returns 0,
 * MQ_EINVAL (st says what is wrong) or MQ_ENOMEM. */
int mq_nacos_parse_list(const char *js, size_t len, struct mq_nacos_instance *out, size_t cap,
                        size_t *n, size_t *skipped, struct mq_status *st);

/* Decodes a beat answer: *code (0 when absent) and *interval_ms, the
 * clientBeatInterval when present and within 100 ms..1 h, else unchanged.
 * Returns 0 or MQ_EINVAL / MQ_ENOMEM. */
int mq_nacos_parse_beat(const char *js, size_t len, int *code, int64_t *interval_ms,
                        struct mq_status *st);

/* Decodes a login answer: the accessToken (copied to token, cap bytes with
 * its NUL) and tokenTtl in seconds (18000, the Nacos default, when absent).
 * Returns 0 or MQ_EINVAL / MQ_ENOMEM. */
int mq_nacos_parse_login(const char *js, size_t len, char *token, size_t cap, int64_t *ttl_s,
                         struct mq_status *st);

/* True when a config listener answer names data_id in group: the body is
 * lines of URL-encoded "dataId%02group[%02tenant]%01"; "" or "\n" is no
 * change. */
bool mq_nacos_listener_changed(const char *body, size_t len, const char *data_id,
                               const char *group);

#endif
