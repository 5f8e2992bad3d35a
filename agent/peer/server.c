/* The accepting side of the peer protocol (proto/memquorum/v1/peer.proto):
 *
 *  Pipe: read the dialer's Hello, check it against ours (pn_hello_ok),
 *    answer Welcome{accepted=false, reason} + FAILED_PRECONDITION or
 *    Welcome{accepted=true, server=our hello}; then hand every frame to
 *    on_frame, one RECV_MESSAGE outstanding at a time so frames of a pipe
 *    are delivered in order and never concurrently.
 *  Call: unpack the CallRequest, hand it to on_call with a heap context,
 *    and answer from mq_peer_reply() on any thread. An error status carries
 *    the exact MQ_E* code in the PN_ERR_KEY trailer, so codes that share a
 *    gRPC status (MQ_ENOTLEADER and MQ_EUNAVAIL) survive the trip.
 *
 * Anything a peer sends may be garbage: bad bytes end the stream with
 * INVALID_ARGUMENT, never an assert. */
#include "grpc/slots.h"
#include "peer/internal.h"
#include "util/clock.h"
#include "util/log.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PN_SLOTS 8 /* outstanding call requests per method */

/* ------------------------------------------------------------------------ */
/* Request slots (grpc/slots.h): each one in flight counts in net->ops. */

static void pipe_start(struct mq_peer_net *net, grpc_call *call);
static void call_start(struct mq_peer_net *net, grpc_call *call, grpc_byte_buffer *payload);

static bool slot_acquire(void *owner) {
  struct mq_peer_net *net = owner;
  pthread_mutex_lock(&net->mu);
  bool ok = !net->stopping;
  if (ok)
    atomic_fetch_add(&net->ops, 1);
  pthread_mutex_unlock(&net->mu);
  return ok;
}

static void slot_release(void *owner) { pn_op_end(owner); }

static void slot_start(void *owner, int method, const char *name, grpc_call *call,
                       gpr_timespec deadline, grpc_byte_buffer *payload) {
  (void)name;
  (void)deadline;
  if (method == 1)
    call_start(owner, call, payload);
  else
    pipe_start(owner, call);
}

static const struct mq_grpc_slot_ops slot_ops = {slot_acquire, slot_release, slot_start};

int pn_server_post_slots(struct mq_peer_net *net) {
  for (int i = 0; i < 2 * PN_SLOTS; i++) {
    bool is_call = i % 2 == 1;
    int rc = mq_grpc_slot_new(net->server, net->cq, is_call ? net->call_method : net->pipe_method,
                              is_call, is_call, &slot_ops, net);
    if (rc)
      return rc;
  }
  return 0;
}

/* ------------------------------------------------------------------------ */
/* Pipe */

struct pn_ipipe {
  struct mq_peer_net *net;
  struct pn_live live;
  struct mq_grpc_tag recv_tag, send_tag, status_tag, close_tag;
  int refs; /* under net->mu: one per batch in flight */
  grpc_byte_buffer *recv_bb, *send_bb, *status_bb;
  grpc_slice details;
  bool has_details;
  bool md_sent; /* initial metadata went out with the Welcome */
  bool greeted; /* the Hello was accepted */
  bool ended;   /* status sent */
  int cancelled;
  struct mq_peer_hello from;
};

static void ipipe_unref(struct pn_ipipe *ip) {
  struct mq_peer_net *net = ip->net;
  pthread_mutex_lock(&net->mu);
  bool last = --ip->refs == 0;
  if (last)
    pn_live_del(&ip->live);
  pthread_mutex_unlock(&net->mu);
  if (!last)
    return;
  if (ip->recv_bb)
    grpc_byte_buffer_destroy(ip->recv_bb);
  if (ip->send_bb)
    grpc_byte_buffer_destroy(ip->send_bb);
  if (ip->status_bb)
    grpc_byte_buffer_destroy(ip->status_bb);
  if (ip->has_details)
    grpc_slice_unref(ip->details);
  grpc_call_unref(ip->live.call);
  free(ip);
}

static void ipipe_ref(struct pn_ipipe *ip) {
  pthread_mutex_lock(&ip->net->mu);
  ip->refs++;
  pthread_mutex_unlock(&ip->net->mu);
}

/* Starts a batch holding a reference; drops it again if the batch cannot
 * start (the call is already dead). Runs while ip holds another batch. */
static void ipipe_batch(struct pn_ipipe *ip, const grpc_op *ops, size_t n,
                        struct mq_grpc_tag *tag) {
  ipipe_ref(ip);
  if (pn_start_batch(ip->net, ip->live.call, ops, n, tag) != GRPC_CALL_OK)
    ipipe_unref(ip);
}

static void send_fn(struct mq_grpc_tag *t, bool ok) {
  struct pn_ipipe *ip = MQ_GRPC_CONTAINER(t, struct pn_ipipe, send_tag);
  (void)ok;
  ipipe_unref(ip);
}

static void status_fn(struct mq_grpc_tag *t, bool ok) {
  struct pn_ipipe *ip = MQ_GRPC_CONTAINER(t, struct pn_ipipe, status_tag);
  (void)ok;
  ipipe_unref(ip);
}

static void close_fn(struct mq_grpc_tag *t, bool ok) {
  struct pn_ipipe *ip = MQ_GRPC_CONTAINER(t, struct pn_ipipe, close_tag);
  (void)ok;
  ipipe_unref(ip);
}

/* Packs a PipeMessage carrying a Welcome. */
static grpc_byte_buffer *pack_welcome(const struct mq_peer_net *net, bool accepted,
                                      const char *reason) {
  Memquorum__Peer__V1__PipeMessage pm;
  Memquorum__Peer__V1__Welcome w;
  Memquorum__Peer__V1__Hello h;
  memquorum__peer__v1__pipe_message__init(&pm);
  memquorum__peer__v1__welcome__init(&w);
  w.accepted = accepted;
  w.reason = (char *)(reason ? reason : "");
  if (accepted) {
    pn_hello_to_msg(&net->self, &h);
    w.server = &h;
  }
  pm.body_case = MEMQUORUM__PEER__V1__PIPE_MESSAGE__BODY_WELCOME;
  pm.welcome = &w;
  return mq_grpc_pack(&pm.base);
}

/* Ends the stream with a status, optionally after a last message. */
static void ipipe_end(struct pn_ipipe *ip, int code, const char *msg, grpc_byte_buffer *last) {
  grpc_op ops[3];
  size_t n = 0;
  if (ip->ended) {
    if (last)
      grpc_byte_buffer_destroy(last);
    return;
  }
  ip->ended = true;
  memset(ops, 0, sizeof ops);
  if (!ip->md_sent) {
    ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
    ip->md_sent = true;
  }
  if (last) {
    ip->status_bb = last;
    ops[n].op = GRPC_OP_SEND_MESSAGE;
    ops[n++].data.send_message.send_message = last;
  }
  mq_grpc_op_status(&ops[n++], code, msg, &ip->details);
  ip->has_details = true;
  ipipe_batch(ip, ops, n, &ip->status_tag);
}

static void post_recv(struct pn_ipipe *ip) {
  grpc_op op;
  memset(&op, 0, sizeof op);
  op.op = GRPC_OP_RECV_MESSAGE;
  op.data.recv_message.recv_message = &ip->recv_bb;
  ipipe_batch(ip, &op, 1, &ip->recv_tag);
}

/* The first message: a Hello to accept or refuse. Returns true when the
 * pipe goes on reading. */
static bool on_hello(struct pn_ipipe *ip, const Memquorum__Peer__V1__PipeMessage *pm) {
  struct mq_peer_net *net = ip->net;
  char reason[256];

  if (!pm || pm->body_case != MEMQUORUM__PEER__V1__PIPE_MESSAGE__BODY_HELLO) {
    ipipe_end(ip, GRPC_STATUS_INVALID_ARGUMENT, "the first pipe message must be a Hello", NULL);
    return false;
  }
  if (!pn_hello_from_msg(pm->hello, &ip->from, reason, sizeof reason)) {
    ipipe_end(ip, GRPC_STATUS_INVALID_ARGUMENT, reason, NULL);
    return false;
  }
  if (!pn_hello_ok(net, &ip->from, reason, sizeof reason)) {
    unsigned held = 0;
    PN_STAT_ADD(net, handshakes_refused, 1);
    pthread_mutex_lock(&net->mu);
    bool log = mq_ratelimit_pass(&net->refuse_log, mq_clock_mono_ms(), PN_LOG_EVERY_MS / 3, &held);
    pthread_mutex_unlock(&net->mu);
    if (log)
      mq_warn("peer", "peer %s (%s) refused: %s%s", ip->from.node_id[0] ? ip->from.node_id : "?",
              ip->from.peer_address[0] ? ip->from.peer_address : "?", reason,
              held ? " (and earlier refusals not logged)" : "");
    ipipe_end(ip, GRPC_STATUS_FAILED_PRECONDITION, reason, pack_welcome(net, false, reason));
    return false;
  }

  grpc_op ops[2];
  memset(ops, 0, sizeof ops);
  ip->send_bb = pack_welcome(net, true, "");
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[1].op = GRPC_OP_SEND_MESSAGE;
  ops[1].data.send_message.send_message = ip->send_bb;
  ip->md_sent = true;
  ip->greeted = true;
  ipipe_batch(ip, ops, 2, &ip->send_tag);

  pthread_mutex_lock(&net->mu);
  bool stopping = net->stopping;
  pthread_mutex_unlock(&net->mu);
  if (!stopping && net->cb.on_peer_up)
    net->cb.on_peer_up(net->cb.arg, &ip->from);
  return true;
}

/* A message after the handshake: a frame. */
static bool on_message(struct pn_ipipe *ip, const Memquorum__Peer__V1__PipeMessage *pm) {
  struct mq_peer_net *net = ip->net;
  bool one = pm && pm->body_case == MEMQUORUM__PEER__V1__PIPE_MESSAGE__BODY_FRAME;
  bool many =
      pm && pm->body_case == MEMQUORUM__PEER__V1__PIPE_MESSAGE__BODY__NOT_SET && pm->n_frames > 0;
  if (!one && !many) {
    ipipe_end(ip, GRPC_STATUS_INVALID_ARGUMENT,
              pm ? "only frames may follow the Hello" : "not a PipeMessage", NULL);
    return false;
  }
  size_t k = one ? 1 : pm->n_frames;
  for (size_t i = 0; i < k; i++) {
    const ProtobufCBinaryData *f = one ? &pm->frame : &pm->frames[i];
    PN_STAT_ADD(net, frames_received, 1);
    PN_STAT_ADD(net, bytes_received, f->len);
    if (net->cb.on_frame)
      net->cb.on_frame(net->cb.arg, &ip->from, f->data, f->len);
  }
  return true;
}

static void recv_fn(struct mq_grpc_tag *t, bool ok) {
  struct pn_ipipe *ip = MQ_GRPC_CONTAINER(t, struct pn_ipipe, recv_tag);
  grpc_byte_buffer *bb = ip->recv_bb;
  struct mq_status st;

  ip->recv_bb = NULL;
  if (!ok || !bb) {
    /* !bb: the dialer closed its side; !ok: the call is gone. */
    if (ok)
      ipipe_end(ip, GRPC_STATUS_OK, "", NULL);
    if (bb)
      grpc_byte_buffer_destroy(bb);
    ipipe_unref(ip);
    return;
  }
  mq_status_clear(&st);
  ProtobufCMessage *m = mq_grpc_unpack(&memquorum__peer__v1__pipe_message__descriptor, bb, &st);
  grpc_byte_buffer_destroy(bb);
  const Memquorum__Peer__V1__PipeMessage *pm = (const Memquorum__Peer__V1__PipeMessage *)m;
  bool more = ip->greeted ? on_message(ip, pm) : on_hello(ip, pm);
  if (m)
    protobuf_c_message_free_unpacked(m, NULL);
  /* The next read starts only now, so frames of one pipe never overtake
   * each other on two queue threads. */
  if (more)
    post_recv(ip);
  ipipe_unref(ip);
}

static void pipe_start(struct mq_peer_net *net, grpc_call *call) {
  struct pn_ipipe *ip = calloc(1, sizeof *ip);
  grpc_op op;

  if (!ip) {
    grpc_call_cancel_with_status(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory", NULL);
    grpc_call_unref(call);
    return;
  }
  ip->net = net;
  ip->recv_tag.fn = recv_fn;
  ip->send_tag.fn = send_fn;
  ip->status_tag.fn = status_fn;
  ip->close_tag.fn = close_fn;
  pthread_mutex_lock(&net->mu);
  pn_live_add(net, &ip->live, call, PN_K_IPIPE);
  ip->refs = 1; /* ours until the first batches are posted */
  if (net->stopping)
    pn_live_cancel(&ip->live);
  pthread_mutex_unlock(&net->mu);

  memset(&op, 0, sizeof op);
  op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
  op.data.recv_close_on_server.cancelled = &ip->cancelled;
  ipipe_batch(ip, &op, 1, &ip->close_tag);
  post_recv(ip);
  ipipe_unref(ip);
}

/* ------------------------------------------------------------------------ */
/* Call */

struct mq_peer_call_ctx {
  struct mq_peer_net *net;
  struct pn_live live; /* live.call is released early once the call is dead */
  struct mq_grpc_tag close_tag, sent_tag;
  int refs; /* under net->mu: the user's until reply, plus batches in flight */
  bool replied;
  int cancelled;
  grpc_byte_buffer *resp;
  grpc_slice details;
  bool has_details;
  grpc_metadata trailer;
  bool has_trailer;
};

/* Under net->mu. */
static void ctx_unref_locked(struct mq_peer_call_ctx *c) {
  if (--c->refs > 0)
    return;
  pn_live_del(&c->live);
  if (c->live.call)
    grpc_call_unref(c->live.call);
  if (c->resp)
    grpc_byte_buffer_destroy(c->resp);
  if (c->has_details)
    grpc_slice_unref(c->details);
  if (c->has_trailer) {
    grpc_slice_unref(c->trailer.key);
    grpc_slice_unref(c->trailer.value);
  }
  free(c);
}

static void ctx_sent_fn(struct mq_grpc_tag *t, bool ok) {
  struct mq_peer_call_ctx *c = MQ_GRPC_CONTAINER(t, struct mq_peer_call_ctx, sent_tag);
  struct mq_peer_net *net = c->net;
  (void)ok;
  pthread_mutex_lock(&net->mu);
  ctx_unref_locked(c);
  pthread_mutex_unlock(&net->mu);
}

static void ctx_close_fn(struct mq_grpc_tag *t, bool ok) {
  struct mq_peer_call_ctx *c = MQ_GRPC_CONTAINER(t, struct mq_peer_call_ctx, close_tag);
  struct mq_peer_net *net = c->net;
  (void)ok;
  pthread_mutex_lock(&net->mu);
  if (c->cancelled && !c->replied && c->live.call) {
    /* The caller gave up (deadline, cancel, shutdown): nothing can be sent
     * any more, so the call need not wait for the handler's answer. */
    grpc_call_unref(c->live.call);
    c->live.call = NULL;
  }
  ctx_unref_locked(c);
  pthread_mutex_unlock(&net->mu);
}

void mq_peer_reply(struct mq_peer_call_ctx *c, int rc, const struct mq_status *st,
                   const uint8_t *reply, size_t len) {
  struct mq_peer_net *net = c->net;
  grpc_byte_buffer *resp = NULL;
  grpc_op ops[3];
  size_t n = 0;
  const char *msg = "";
  char code[16];

  if (rc > 0 || (rc < 0 && mq_err_to_grpc(rc) == 0))
    rc = MQ_EINTERNAL; /* not an MQ_E* code; still an error */
  if (rc == 0) {
    Memquorum__Peer__V1__CallResponse r;
    memquorum__peer__v1__call_response__init(&r);
    r.body.data = (uint8_t *)(reply ? reply : (const uint8_t *)"");
    r.body.len = reply ? len : 0;
    resp = mq_grpc_pack(&r.base);
    if (!resp) {
      rc = MQ_ENOMEM;
      msg = "out of memory building the reply";
    }
  } else {
    msg = st && st->msg[0] ? st->msg : mq_strerror(rc);
  }

  pthread_mutex_lock(&net->mu);
  if (c->replied) {
    pthread_mutex_unlock(&net->mu);
    mq_error("peer", "a peer call was answered twice; the second answer is dropped");
    if (resp)
      grpc_byte_buffer_destroy(resp);
    return;
  }
  c->replied = true;
  if (net->cq_closing || !c->live.call) {
    ctx_unref_locked(c); /* the caller is gone */
    pthread_mutex_unlock(&net->mu);
    if (resp)
      grpc_byte_buffer_destroy(resp);
    return;
  }
  memset(ops, 0, sizeof ops);
  ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
  if (resp) {
    c->resp = resp;
    ops[n].op = GRPC_OP_SEND_MESSAGE;
    ops[n++].data.send_message.send_message = resp;
  }
  mq_grpc_op_status(&ops[n], mq_err_to_grpc(rc), msg, &c->details);
  c->has_details = true;
  if (rc != 0) {
    snprintf(code, sizeof code, "%d", rc);
    c->trailer.key = grpc_slice_from_static_string(PN_ERR_KEY);
    c->trailer.value = grpc_slice_from_copied_string(code);
    c->has_trailer = true;
    ops[n].data.send_status_from_server.trailing_metadata_count = 1;
    ops[n].data.send_status_from_server.trailing_metadata = &c->trailer;
  }
  n++;
  /* The user's reference becomes the batch's. */
  if (pn_start_batch(net, c->live.call, ops, n, &c->sent_tag) != GRPC_CALL_OK)
    ctx_unref_locked(c);
  pthread_mutex_unlock(&net->mu);
}

static void call_start(struct mq_peer_net *net, grpc_call *call, grpc_byte_buffer *payload) {
  struct mq_peer_call_ctx *c = calloc(1, sizeof *c);
  struct mq_status st;
  struct mq_peer_hello from;
  char reason[200];
  grpc_op op;

  if (!c) {
    grpc_call_cancel_with_status(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory", NULL);
    grpc_call_unref(call);
    if (payload)
      grpc_byte_buffer_destroy(payload);
    return;
  }
  c->net = net;
  c->close_tag.fn = ctx_close_fn;
  c->sent_tag.fn = ctx_sent_fn;
  pthread_mutex_lock(&net->mu);
  pn_live_add(net, &c->live, call, PN_K_INCALL);
  c->refs = 2; /* the user's and the close batch's */
  bool stopping = net->stopping;
  if (stopping)
    pn_live_cancel(&c->live);
  memset(&op, 0, sizeof op);
  op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
  op.data.recv_close_on_server.cancelled = &c->cancelled;
  if (pn_start_batch(net, call, &op, 1, &c->close_tag) != GRPC_CALL_OK)
    c->refs--;
  pthread_mutex_unlock(&net->mu);

  PN_STAT_ADD(net, calls_received, 1);
  mq_status_clear(&st);
  ProtobufCMessage *m =
      mq_grpc_unpack(&memquorum__peer__v1__call_request__descriptor, payload, &st);
  if (payload)
    grpc_byte_buffer_destroy(payload);
  const Memquorum__Peer__V1__CallRequest *req = (const Memquorum__Peer__V1__CallRequest *)m;
  if (!req) {
    mq_peer_reply(c, MQ_EINVAL, &st, NULL, 0);
  } else if (!pn_hello_from_msg(req->from, &from, reason, sizeof reason)) {
    mq_status_set(&st, MQ_EINVAL, "bad CallRequest.from: %s", reason);
    mq_peer_reply(c, MQ_EINVAL, &st, NULL, 0);
  } else if (stopping || !net->cb.on_call) {
    mq_status_set(&st, MQ_EUNAVAIL, stopping ? "peer shutting down" : "peer takes no calls");
    mq_peer_reply(c, MQ_EUNAVAIL, &st, NULL, 0);
  } else {
    net->cb.on_call(net->cb.arg, c, &from, req->body.data, req->body.len);
  }
  if (m)
    protobuf_c_message_free_unpacked(m, NULL);
}

/* ------------------------------------------------------------------------ */
/* Shutdown */

void pn_server_release_calls(struct mq_peer_net *net) {
  pthread_mutex_lock(&net->mu);
  for (struct pn_live *l = net->live.next; l != &net->live; l = l->next) {
    if (l->kind == PN_K_INCALL && l->call) {
      grpc_call_unref(l->call);
      l->call = NULL;
    }
  }
  pthread_mutex_unlock(&net->mu);
}

void pn_server_free_calls(struct mq_peer_net *net) {
  pthread_mutex_lock(&net->mu);
  while (net->live.next != &net->live) {
    struct pn_live *l = net->live.next;
    /* Every other object ended with its batches before the queue closed. */
    assert(l->kind == PN_K_INCALL);
    struct mq_peer_call_ctx *c = MQ_GRPC_CONTAINER(l, struct mq_peer_call_ctx, live);
    /* Unanswered: the handler never replied before mq_peer_free(). */
    c->refs = 1;
    ctx_unref_locked(c);
  }
  pthread_mutex_unlock(&net->mu);
}
