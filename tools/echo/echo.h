/* The echo server: a gRPC server on the C-core API that answers every call
 * of its registered methods with the request message bytes, unchanged.
 *
 * It serves the unary methods of memquorum.v1.KV and
 * memquorum.v1.PartitionService, and /memquorum.bench.Echo/Echo, so a
 * client can send exactly the bytes it would send the agent (mqbench
 * --op echo sends a PutRequest to /memquorum.v1.KV/Put). Other methods get
 * UNIMPLEMENTED. It does no protobuf work at all: it is the floor the
 * agent's per-request cost is measured against.
 *
 * Threads: each worker thread owns one completion queue and a fixed array
 * of call slots; a slot is a call's whole state and its completion tag, and
 * is re-armed on the same queue when its call ends. */
#ifndef MQ_TOOLS_ECHO_H
#define MQ_TOOLS_ECHO_H

#include <pthread.h>
#include <stdatomic.h>

#include <grpc/grpc.h>

struct mq_echo_opts {
  const char *bind; /* address to listen on, e.g. "127.0.0.1" */
  int port;         /* 0: pick a free port */
  int threads;      /* worker threads, one completion queue each */
  int slots;        /* calls requested ahead per method per thread */
};

struct echo_worker; /* echo.c */

struct mq_echo_server {
  grpc_server *server;
  grpc_completion_queue *shutdown_cq;
  struct echo_worker *workers;
  int nworkers;
  void *handles[16]; /* registered method handles, read-only once started */
  int port;          /* the bound port */
  atomic_int stopping;
  char shutdown_tag; /* its address tags the shutdown notification */
};

/* Creates, binds and starts the server and its threads. Returns 0 or an
 * MQ_E* code with a message on stderr. */
int mq_echo_start(struct mq_echo_server *s, const struct mq_echo_opts *opts);

/* Stops accepting calls, cancels the running ones, joins the threads and
 * frees everything. */
void mq_echo_stop(struct mq_echo_server *s);

#endif
