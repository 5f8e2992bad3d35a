/* The public gRPC API server (DESIGN.md section 3).
 *
 * Serves memquorum.v1 (PartitionService, KV, Watch, Cluster),
 * grpc.health.v1.Health and server reflection (grpc.reflection.v1 and
 * v1alpha) on cfg->api_bind:cfg->port with the gRPC C core. The thread
 * that polls the completion queue parses and validates requests, hands them
 * to the node's core loop with mq_node_submit(), and sends the replies when
 * the loop completes them (DESIGN.md section 5). With cfg->grpc_threads 1
 * (the default) that thread is the core loop itself, polling the loop's
 * queue (grpc/cq.h), so a request never changes threads; with more, the
 * server polls a queue of its own with that many threads. Requests larger
 * than cfg->max_request_bytes are refused by the transport with
 * RESOURCE_EXHAUSTED.
 *
 * Threads: start, shutdown and free are called by one thread (main); the
 * server's own threads are its completion-queue threads, if any, and a
 * readiness poller for health watchers. */
#ifndef MQ_API_SERVER_H
#define MQ_API_SERVER_H

#include "util/err.h"

struct mq_node;
struct mq_config;
struct mq_cq;
struct mq_api_server;

/* Binds cfg->api_bind:cfg->port (port 0 = any free port), registers all
 * services, and puts its calls on loop_cq, the queue the node's core loop
 * polls (grpc/cq.h), or, when that is NULL, starts cfg->grpc_threads
 * completion-queue threads of its own. node and cfg are borrowed until
 * mq_api_server_free(); the node must keep running until
 * mq_api_server_shutdown() returns. Returns 0, or MQ_EIO (cannot bind) /
 * MQ_ENOMEM with a message in st. */
int mq_api_server_start(struct mq_api_server **out, struct mq_node *node,
                        const struct mq_config *cfg, struct mq_cq *loop_cq, struct mq_status *st);

/* The bound port. */
int mq_api_server_port(const struct mq_api_server *s);

/* Stops accepting calls, lets in-flight unary calls finish, ends streams
 * with UNAVAILABLE "agent shutting down", and joins the threads. After a
 * grace period of 5 s every remaining call is cancelled. Idempotent. */
void mq_api_server_shutdown(struct mq_api_server *s);

/* Shuts down if needed, then frees. Call after mq_node_stop() if shutdown
 * reported calls still waiting on the node. */
void mq_api_server_free(struct mq_api_server *s);

#endif
