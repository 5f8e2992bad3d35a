/* The echo server's completion-queue workers and call slots. See echo.h. */
#include "echo.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/grpc_security.h>
#include <grpc/support/time.h>

#include "util/err.h"

/* Methods answered with the request bytes. The KV and PartitionService
 * unary methods carry the agent's real paths so a benchmark can point the
 * very same requests at either server. */
static const char *const echo_methods[] = {
    "/memquorum.v1.KV/Put",
    "/memquorum.v1.KV/Get",
    "/memquorum.v1.KV/Delete",
    "/memquorum.v1.KV/Scan",
    "/memquorum.v1.PartitionService/Produce",
    "/memquorum.v1.PartitionService/Read",
    "/memquorum.bench.Echo/Echo",
};
#define NMETHODS (int)(sizeof(echo_methods) / sizeof(echo_methods[0]))
/* Slots per worker for calls to any other method (answered UNIMPLEMENTED). */
#define OTHER_SLOTS 4

enum slot_state {
  SLOT_REQUESTED,
  SLOT_REPLYING
};

/* One call's state; its address is the tag of every batch of the call. */
struct echo_slot {
  struct echo_worker *w;
  int method; /* index into echo_methods, or -1: any other method */
  enum slot_state state;
  grpc_call *call;
  gpr_timespec deadline;
  grpc_call_details details; /* method == -1 only */
  grpc_metadata_array md;
  grpc_byte_buffer *payload;
  int cancelled;
};

struct echo_worker {
  struct mq_echo_server *srv;
  grpc_completion_queue *cq;
  pthread_t thread;
  int started; /* thread is running */
  struct echo_slot *slots;
  int nslots;
  void **handles; /* registered method handles, shared, read-only */
};

/* Asks the server for the slot's next call. Returns 0, or -1 when the
 * server refuses (it is shutting down). */
static int arm(struct echo_slot *sl) {
  struct echo_worker *w = sl->w;
  grpc_call_error ce;
  sl->state = SLOT_REQUESTED;
  sl->call = NULL;
  sl->payload = NULL;
  sl->cancelled = 0;
  grpc_metadata_array_init(&sl->md);
  if (sl->method >= 0) {
    ce =
        grpc_server_request_registered_call(w->srv->server, w->handles[sl->method], &sl->call,
                                            &sl->deadline, &sl->md, &sl->payload, w->cq, w->cq, sl);
  } else {
    grpc_call_details_init(&sl->details);
    ce = grpc_server_request_call(w->srv->server, &sl->call, &sl->details, &sl->md, w->cq, w->cq,
                                  sl);
  }
  if (ce != GRPC_CALL_OK) {
    grpc_metadata_array_destroy(&sl->md);
    if (sl->method < 0) grpc_call_details_destroy(&sl->details);
    return -1;
  }
  return 0;
}

/* Releases what the finished call held. */
static void release(struct echo_slot *sl) {
  if (sl->payload) grpc_byte_buffer_destroy(sl->payload);
  sl->payload = NULL;
  grpc_metadata_array_destroy(&sl->md);
  if (sl->method < 0) grpc_call_details_destroy(&sl->details);
  if (sl->call) grpc_call_unref(sl->call);
  sl->call = NULL;
}

/* Sends the reply of a newly arrived call in one batch: headers, the
 * request bytes back, OK status, and waits for the close. */
static int reply(struct echo_slot *sl) {
  grpc_op ops[4];
  size_t n = 0;
  memset(ops, 0, sizeof(ops));
  ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
  grpc_slice msg;
  grpc_status_code code = GRPC_STATUS_OK;
  if (sl->method < 0) {
    code = GRPC_STATUS_UNIMPLEMENTED;
    msg = grpc_slice_from_static_string("the echo server does not serve this method");
  } else if (!sl->payload) {
    code = GRPC_STATUS_INVALID_ARGUMENT;
    msg = grpc_slice_from_static_string("request message missing");
  } else {
    msg = grpc_empty_slice();
    ops[n].op = GRPC_OP_SEND_MESSAGE;
    ops[n].data.send_message.send_message = sl->payload;
    n++;
  }
  ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
  ops[n].data.send_status_from_server.status = code;
  ops[n].data.send_status_from_server.status_details = code == GRPC_STATUS_OK ? NULL : &msg;
  n++;
  ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
  ops[n].data.recv_close_on_server.cancelled = &sl->cancelled;
  n++;
  sl->state = SLOT_REPLYING;
  return grpc_call_start_batch(sl->call, ops, n, sl, NULL) == GRPC_CALL_OK ? 0 : -1;
}

static void *worker_main(void *arg) {
  struct echo_worker *w = arg;
  for (;;) {
    grpc_event ev = grpc_completion_queue_next(w->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    if (ev.type == GRPC_QUEUE_SHUTDOWN) break;
    if (ev.type != GRPC_OP_COMPLETE) continue;
    struct echo_slot *sl = ev.tag;
    if (sl->state == SLOT_REQUESTED) {
      if (!ev.success) { /* the server is shutting down: no call came */
        release(sl);
        continue;
      }
      if (reply(sl) == 0) continue;
    }
    /* The reply batch ended (or could not start): re-arm the slot. */
    release(sl);
    if (!atomic_load_explicit(&w->srv->stopping, memory_order_acquire)) arm(sl);
  }
  return NULL;
}

int mq_echo_start(struct mq_echo_server *s, const struct mq_echo_opts *o) {
  memset(s, 0, sizeof(*s));
  atomic_init(&s->stopping, 0);
  if (o->threads < 1 || o->slots < 1 || o->port < 0 || o->port > 65535) return MQ_EINVAL;

  _Static_assert(NMETHODS <= (int)(sizeof(s->handles) / sizeof(s->handles[0])),
                 "room for every method handle");
  s->server = grpc_server_create(NULL, NULL);
  for (int m = 0; m < NMETHODS; m++) {
    s->handles[m] = grpc_server_register_method(s->server, echo_methods[m], NULL,
                                                GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0);
    if (!s->handles[m]) {
      fprintf(stderr, "mq-echo-server: cannot register %s\n", echo_methods[m]);
      grpc_server_destroy(s->server);
      return MQ_EINTERNAL;
    }
  }

  s->nworkers = o->threads;
  s->workers = calloc((size_t)o->threads, sizeof(*s->workers));
  if (!s->workers) {
    grpc_server_destroy(s->server);
    return MQ_ENOMEM;
  }
  for (int i = 0; i < s->nworkers; i++) {
    s->workers[i].srv = s;
    s->workers[i].handles = s->handles;
    s->workers[i].cq = grpc_completion_queue_create_for_next(NULL);
    grpc_server_register_completion_queue(s->server, s->workers[i].cq, NULL);
  }
  s->shutdown_cq = grpc_completion_queue_create_for_next(NULL);
  grpc_server_register_completion_queue(s->server, s->shutdown_cq, NULL);

  char addr[300];
  snprintf(addr, sizeof(addr), "%s:%d", o->bind, o->port);
  grpc_server_credentials *creds = grpc_insecure_server_credentials_create();
  s->port = grpc_server_add_http2_port(s->server, addr, creds);
  grpc_server_credentials_release(creds);
  if (s->port <= 0) {
    fprintf(stderr, "mq-echo-server: cannot listen on %s\n", addr);
    goto destroy_unstarted;
  }
  grpc_server_start(s->server);

  for (int i = 0; i < s->nworkers; i++) {
    struct echo_worker *w = &s->workers[i];
    w->nslots = NMETHODS * o->slots + OTHER_SLOTS;
    w->slots = calloc((size_t)w->nslots, sizeof(*w->slots));
    if (!w->slots) goto destroy_server;
    for (int k = 0; k < w->nslots; k++) {
      w->slots[k].w = w;
      w->slots[k].method = k < NMETHODS * o->slots ? k % NMETHODS : -1;
      if (arm(&w->slots[k]) != 0) goto destroy_server;
    }
    if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
      fprintf(stderr, "mq-echo-server: cannot start thread\n");
      goto destroy_server;
    }
    w->started = 1;
  }
  return 0;

destroy_server:
  /* Threads already started see the shutdown like in mq_echo_stop. */
  mq_echo_stop(s);
  return MQ_EIO;

destroy_unstarted:
  grpc_server_destroy(s->server);
  s->server = NULL;
  for (int i = 0; i < s->nworkers; i++) grpc_completion_queue_destroy(s->workers[i].cq);
  grpc_completion_queue_destroy(s->shutdown_cq);
  free(s->workers);
  s->workers = NULL;
  return MQ_EIO;
}

void mq_echo_stop(struct mq_echo_server *s) {
  if (!s->server) return;
  atomic_store_explicit(&s->stopping, 1, memory_order_release);
  grpc_server_shutdown_and_notify(s->server, s->shutdown_cq, &s->shutdown_tag);
  grpc_server_cancel_all_calls(s->server);
  for (;;) {
    grpc_event ev =
        grpc_completion_queue_next(s->shutdown_cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    if (ev.type == GRPC_OP_COMPLETE && ev.tag == &s->shutdown_tag) break;
  }
  grpc_server_destroy(s->server);
  s->server = NULL;
  for (int i = 0; i < s->nworkers; i++) grpc_completion_queue_shutdown(s->workers[i].cq);
  for (int i = 0; i < s->nworkers; i++) {
    struct echo_worker *w = &s->workers[i];
    if (w->started) {
      pthread_join(w->thread, NULL);
    } else { /* never started: drain here */
      while (grpc_completion_queue_next(w->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
             GRPC_QUEUE_SHUTDOWN) {
      }
    }
    grpc_completion_queue_destroy(w->cq);
    free(w->slots);
  }
  grpc_completion_queue_shutdown(s->shutdown_cq);
  while (
      grpc_completion_queue_next(s->shutdown_cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
      GRPC_QUEUE_SHUTDOWN) {
  }
  grpc_completion_queue_destroy(s->shutdown_cq);
  free(s->workers);
  s->workers = NULL;
}
