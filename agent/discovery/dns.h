/* Headless-Service DNS discovery (--dns-name, DESIGN.md section 7).
 *
 * A thread of its own resolves the configured name every --dns-refresh and
 * hands the node the peer transports it finds (mq_node_discovered, source
 * MQ_DISCOVERY_DNS); the node contacts them and learns who they are. The
 * core loop never waits on a lookup.
 *
 * What one round asks:
 *   1. SRV _peer._tcp.<name> (RFC 2782). When it answers with records,
 *      each target is resolved (A and AAAA) and paired with its record's
 *      port; the name's own A records are not used then, since their port
 *      would be a guess.
 *   2. Otherwise the name's A and AAAA records (getaddrinfo), each paired
 *      with this agent's --peer-port: a StatefulSet's pods all listen on
 *      the same port.
 * The addresses are deduplicated and sorted (IPv6 as [addr]:port). A round
 * that finds nothing (NXDOMAIN, no records, no answer) is reported with
 * mq_node_discovery_failed() and the node keeps the last list: discovery
 * is a hint, an empty answer removes no member. Changes of the set are
 * logged at INFO, a failure whose reason changed at WARN (the node logs the
 * switch between answering and failing itself).
 *
 * A Kubernetes headless Service used this way must set
 * publishNotReadyAddresses: true, or the agents of a cluster being formed
 * (not ready yet) could never find each other. */
#ifndef MQ_DISCOVERY_DNS_H
#define MQ_DISCOVERY_DNS_H

#include "cluster/node.h"
#include "config/config.h"
#include "util/err.h"

#include <stddef.h>
#include <sys/socket.h>

struct mq_dns_discovery;

/* Starts the resolver thread for cfg->dns_name (must be set); the first
 * round runs at once. node and cfg are borrowed until
 * mq_dns_discovery_stop(). Returns 0, or MQ_EINVAL/MQ_EIO/MQ_ENOMEM with
 * st->msg saying why. */
int mq_dns_discovery_start(struct mq_dns_discovery **out, struct mq_node *node,
                           const struct mq_config *cfg, struct mq_status *st);

/* Stops the thread (waking it from its wait; a lookup in progress is
 * finished first) and frees d. NULL is fine. */
void mq_dns_discovery_stop(struct mq_dns_discovery *d);

/* ---- The pure parts, for tests ---- */

/* One SRV record (RFC 2782): target without the trailing dot. */
struct mq_dns_srv {
  char target[256];
  int priority;
  int weight;
  int port;
};

/* Reads the SRV records of the answer section of the DNS message msg[0,len)
 * into out[0..max), *n of them; other record types are skipped, records past
 * max dropped, a target of "." (RFC 2782: no such service) skipped. Returns
 * 0, or MQ_ECORRUPT when the message or a record is malformed. */
int mq_dns_parse_srv(const unsigned char *msg, size_t len, struct mq_dns_srv *out, size_t max,
                     size_t *n);

/* Formats an AF_INET or AF_INET6 address with port as "a.b.c.d:port" or
 * "[v6]:port" into out. Returns 0, or MQ_EINVAL for another family or an
 * out too small. */
int mq_dns_format_addr(const struct sockaddr *sa, int port, char *out, size_t size);

/* Sorts peers[0,n) by address and drops repeats; returns the new count. */
size_t mq_dns_sort_unique(struct mq_discovered *peers, size_t n);

#endif
