/* Nacos discovery and config (--nacos host:port; DESIGN.md section 7).
 *
 * This agent registers itself as an ephemeral instance of the service
 * `memquorum-cluster` (ip = --advertise, port = the peer port, metadata:
 * node_id, incarnation, api_port, http_port, shards_total, version), beats
 * at the interval the server asks for, registers again every 30 s and after
 * a 20404 (a restarted server gets the metadata back), lists the healthy
 * instances every 2 s for the node (mq_node_discovered), and deregisters on
 * SIGTERM. It reads the config dataId `memquorum.properties` at start and
 * follows it with the long-polling listener: live settings go to the node
 * (mq_node_reconfigure), the others are logged as needing a restart. With
 * --nacos-username it logs in and passes the token on every call.
 *
 * The Nacos v1 open API as r-nacos 0.8.8 answers it
 * (scripts/services/NACOS-NOTES.md); when the v1 list answers 404 the v3
 * client API (Nacos 3.2+ without its legacy adapter) is used instead.
 *
 * Threads: mq_nacos_new runs on the caller's thread (blocking, bounded);
 * everything after happens on the client's own thread, a curl multi loop
 * that never blocks the core loop. The other calls are for the thread that
 * created the client. */
#ifndef MQ_DISCOVERY_NACOS_H
#define MQ_DISCOVERY_NACOS_H

#include "cluster/node.h"
#include "config/config.h"
#include "util/err.h"

struct mq_nacos;

/* The config dataId and the service name this agent uses. */
#define MQ_NACOS_DATA_ID "memquorum.properties"
#define MQ_NACOS_SERVICE "memquorum-cluster"

/* Before the node exists: creates the client for cfg (borrowed until
 * mq_nacos_free), logs in when cfg->nacos_username is set and reads the
 * config, within about 3 s. *eff is written with cfg and, under flags and
 * environment, what the Nacos config sets; the agent runs with *eff. A
 * Nacos that does not answer or a bad config is logged (WARN) and leaves
 * *eff equal to cfg. Returns 0, or MQ_ENOMEM / MQ_EIO with st when the
 * client cannot be made (curl, thread). */
int mq_nacos_new(struct mq_nacos **out, const struct mq_config *cfg, struct mq_config *eff,
                 struct mq_status *st);

/* Starts registering, listing and following the config. node is borrowed
 * until mq_nacos_free; api_port and http_port (-1: none) go into the
 * metadata. Never blocks. */
void mq_nacos_start(struct mq_nacos *c, struct mq_node *node, int api_port, int http_port);

/* On SIGTERM, before the drain: stops beats and registration, then
 * deregisters; returns when Nacos answered or after about 2 s. Listing
 * goes on. c may be NULL. */
void mq_nacos_deregister(struct mq_nacos *c);

/* Stops the thread and frees the client; before mq_node_free. NULL is
 * fine. */
void mq_nacos_free(struct mq_nacos *c);

#endif
