/* The agent: the node, its front ends and the process lifecycle.
 *
 * mq_agent_run() starts the core loop and the gRPC server (and, as they
 * land, the HTTP feed, discovery and Kafka ingestion), prints one ready line
 * on stdout, then waits for SIGTERM or SIGINT and shuts down in order: stop
 * accepting, finish in-flight calls, stop the core loop, exit 0. */
#ifndef MQ_AGENT_H
#define MQ_AGENT_H

#include "config/config.h"

/* Returns the process exit status: 0 after a clean shutdown, 1 when
 * something could not start (the reason has been logged). */
int mq_agent_run(const struct mq_config *cfg);

#endif
