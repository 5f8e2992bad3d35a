/* grpc.health.v1.Health (the standard gRPC health checking protocol).
 *
 * Check: SERVING when mq_node_ready(), else NOT_SERVING, for the empty
 * service name and for every service in api_methods; NOT_FOUND for others.
 *
 * Watch: sends the current status at once, then a new message whenever it
 * changes. The C core has no public timer, so the server's readiness poller
 * (server.c) re-checks mq_node_ready() every 200 ms and pokes each watcher
 * with a zero-op batch when readiness flips; the watcher then sends the new
 * status from a CQ thread. An unknown service gets SERVICE_UNKNOWN and the
 * stream stays open, as the protocol asks. The stream ends when the client
 * cancels or the server shuts down (UNAVAILABLE). */
#include "api/internal.h"

#include "grpc/health/v1/health.pb-c.h"

#include <stdlib.h>
#include <string.h>

static int serving_status(struct mq_api_server *s, const char *service) {
  if (service[0] && !api_is_service(service))
    return GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVICE_UNKNOWN;
  return mq_node_ready(s->node)
             ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING
             : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING;
}

static grpc_byte_buffer *pack_status(int status) {
  Grpc__Health__V1__HealthCheckResponse r = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
  r.status = status;
  return mq_grpc_pack(&r.base);
}

/* ------------------------------------------------------------------------ */
/* Check: a unary method answered locally */

static int check_prepare(struct api_unary *u, struct mq_status *st) {
  const Grpc__Health__V1__HealthCheckRequest *m = (const void *)u->msg;
  u->local = serving_status(u->srv, m->service);
  if (u->local == GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVICE_UNKNOWN)
    return mq_status_set(st, MQ_ENOTFOUND, "unknown service \"%.100s\"", m->service);
  return 1;
}

static grpc_byte_buffer *check_reply(struct api_unary *u) { return pack_status(u->local); }

const struct api_unary_method api_um_health_check = {
    &grpc__health__v1__health_check_request__descriptor, check_prepare, check_reply, false};

/* ------------------------------------------------------------------------ */
/* Watch */

struct health_watch {
  struct api_stream st;
  struct mq_grpc_tag close_tag, send_tag, wake_tag;
  pthread_mutex_t mu;
  atomic_int wake_pending;
  char service[128];
  int cancelled;
  int last_sent; /* -1 before the first message */
  bool sending;
  bool finished; /* the call is over (RECV_CLOSE_ON_SERVER completed) */
  grpc_byte_buffer *out;
};

static void hw_destroy(struct api_stream *st) {
  struct health_watch *h = MQ_GRPC_CONTAINER(st, struct health_watch, st);
  if (h->out)
    grpc_byte_buffer_destroy(h->out);
  pthread_mutex_destroy(&h->mu);
  free(h);
}

/* Sends the current status if it changed. Under h->mu. */
static void hw_pump(struct health_watch *h) {
  if (h->finished || h->sending)
    return;
  int status = serving_status(h->st.srv, h->service);
  if (status == h->last_sent)
    return;
  h->out = pack_status(status);
  if (!h->out)
    return;
  grpc_op op;
  memset(&op, 0, sizeof op);
  op.op = GRPC_OP_SEND_MESSAGE;
  op.data.send_message.send_message = h->out;
  api_stream_ref(&h->st);
  if (grpc_call_start_batch(h->st.call, &op, 1, &h->send_tag, NULL) != GRPC_CALL_OK) {
    grpc_byte_buffer_destroy(h->out);
    h->out = NULL;
    h->finished = true;
    atomic_fetch_sub(&h->st.refs, 1); /* the caller still holds one */
    return;
  }
  h->sending = true;
  h->last_sent = status;
}

static void hw_send_fn(struct mq_grpc_tag *t, bool ok) {
  struct health_watch *h = MQ_GRPC_CONTAINER(t, struct health_watch, send_tag);
  pthread_mutex_lock(&h->mu);
  grpc_byte_buffer_destroy(h->out);
  h->out = NULL;
  h->sending = false;
  if (ok)
    hw_pump(h);
  pthread_mutex_unlock(&h->mu);
  api_stream_unref(&h->st);
}

static void hw_wake_fn(struct mq_grpc_tag *t, bool ok) {
  struct health_watch *h = MQ_GRPC_CONTAINER(t, struct health_watch, wake_tag);
  atomic_store(&h->wake_pending, 0);
  pthread_mutex_lock(&h->mu);
  hw_pump(h);
  pthread_mutex_unlock(&h->mu);
  api_stream_unref(&h->st);
}

static void hw_close_fn(struct mq_grpc_tag *t, bool ok) {
  struct health_watch *h = MQ_GRPC_CONTAINER(t, struct health_watch, close_tag);
  pthread_mutex_lock(&h->mu);
  h->finished = true;
  pthread_mutex_unlock(&h->mu);
  api_stream_unref(&h->st); /* the stream's own reference */
}

/* Under srv->mu (server.c): must not drop a reference here. */
static void hw_poke(struct api_stream *st) {
  struct health_watch *h = MQ_GRPC_CONTAINER(st, struct health_watch, st);
  if (atomic_exchange(&h->wake_pending, 1))
    return;
  if (!api_stream_tryref(st))
    return; /* dying */
  if (grpc_call_start_batch(st->call, NULL, 0, &h->wake_tag, NULL) != GRPC_CALL_OK)
    atomic_fetch_sub(&st->refs, 1); /* cannot reach zero: tryref saw another holder */
}

void api_health_watch_start(struct mq_api_server *s, const struct api_method *m, grpc_call *call,
                            gpr_timespec deadline, grpc_byte_buffer *payload) {
  struct mq_status st;
  Grpc__Health__V1__HealthCheckRequest *req =
      (void *)mq_grpc_unpack(&grpc__health__v1__health_check_request__descriptor, payload, &st);
  if (payload)
    grpc_byte_buffer_destroy(payload);
  if (!req) {
    api_reply_status(s, call, GRPC_STATUS_INVALID_ARGUMENT, st.msg);
    return;
  }
  struct health_watch *h = calloc(1, sizeof *h);
  if (!h || strlen(req->service) >= sizeof h->service) {
    free(h);
    protobuf_c_message_free_unpacked(&req->base, NULL);
    api_reply_status(s, call, h ? GRPC_STATUS_INVALID_ARGUMENT : GRPC_STATUS_RESOURCE_EXHAUSTED,
                     h ? "service name is too long" : "out of memory");
    return;
  }
  strcpy(h->service, req->service);
  protobuf_c_message_free_unpacked(&req->base, NULL);
  h->close_tag.fn = hw_close_fn;
  h->send_tag.fn = hw_send_fn;
  h->wake_tag.fn = hw_wake_fn;
  h->last_sent = -1;
  h->st.poke = hw_poke;
  h->st.destroy = hw_destroy;
  pthread_mutex_init(&h->mu, NULL);
  api_stream_register(s, &h->st, call); /* the reference RECV_CLOSE_ON_SERVER holds */
  api_stream_ref(&h->st);               /* ours, until the end of this function */

  grpc_op ops[2];
  memset(ops, 0, sizeof ops);
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[1].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
  ops[1].data.recv_close_on_server.cancelled = &h->cancelled;
  if (grpc_call_start_batch(call, ops, 2, &h->close_tag, NULL) != GRPC_CALL_OK) {
    h->finished = true;
    api_stream_unref(&h->st);
  }
  pthread_mutex_lock(&h->mu);
  hw_pump(h);
  pthread_mutex_unlock(&h->mu);
  api_stream_unref(&h->st);
}
