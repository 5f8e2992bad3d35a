/* The completion queue the core loop polls itself.
 *
 * The peer transport, and the API server when it runs with one gRPC thread
 * (the default), put every call on this one queue, and the core loop thread
 * polls it between rounds of its own work (cluster/node.c). A request is
 * then parsed, executed, replicated and answered on one thread: no thread
 * hands it to another and none has to be woken for it, which on a small
 * machine is most of what a replicated write costs.
 *
 * Every tag on the queue is a struct mq_grpc_tag (rpc/internal.h); polling runs
 * its handler. Threads that do not poll (the websocket service, the
 * readiness poller, main) wake the poller with mq_cq_wake().
 *
 * Threads: one thread polls; mq_cq_wake() is for any thread; new, shutdown
 * and free belong to the owner. */
#ifndef MQ_GRPC_CQ_H
#define MQ_GRPC_CQ_H

#include "cluster/io.h"
#include "util/err.h"

struct grpc_completion_queue;
struct mq_cq;

/* Creates the queue and the call its wake-ups are posted on. */
int mq_cq_new(struct mq_cq **out, struct mq_status *st);

struct grpc_completion_queue *mq_cq_queue(struct mq_cq *q);

/* Waits up to timeout_ms (0: takes only what is ready) for events and runs
 * their handlers, at most max of them. Returns how many ran, or -1 once the
 * queue is shut down and empty. */
int mq_cq_poll(struct mq_cq *q, int timeout_ms, int max);

/* Makes the poller return from its wait. Any thread, until
 * mq_cq_shutdown(). */
void mq_cq_wake(struct mq_cq *q);

/* Shuts the queue down once its users are gone (servers destroyed, calls
 * released): the poller then runs what is left and gets -1. */
void mq_cq_shutdown(struct mq_cq *q);

/* Frees the queue; after the poller got -1. NULL is fine. */
void mq_cq_free(struct mq_cq *q);

/* Fills io with the queue as the core loop's io (cluster/io.h): poll,
 * wake and shutdown as above, the process's clocks, getrandom(). */
void mq_cq_loop_io(struct mq_cq *q, struct mq_loop_io *io);

#endif
