/* The dialing side of Pipe: one struct pn_peer per destination node with a
 * bounded frame queue, and at most one pipe call to it at a time.
 *
 *   IDLE --send--> DIALING --Welcome accepted--> UP --call ends--> BACKOFF
 *                     |                                              |
 *                     +-----refused, failed, timed out-----> BACKOFF-+
 *   BACKOFF --due, frames queued--> DIALING;  --due, none--> IDLE
 *
 * A dial sends Hello and waits for Welcome (PN_HANDSHAKE_MS at most). Up,
 * frames go out one SEND_MESSAGE at a time: the next one starts when the
 * previous completed. Whatever ends the call (broken connection, refused
 * handshake, a failed send, shutdown), the one place that reacts is the
 * RECV_STATUS_ON_CLIENT completion, started after the handshake so that
 * on_peer_up always runs before the matching on_peer_down. A pipe that was
 * up is re-dialed at once if frames wait; failed dials back off from
 * PN_BACKOFF_MIN_MS doubling to PN_BACKOFF_MAX_MS, jittered. Each dial uses
 * a fresh channel, so gRPC's own reconnect backoff never delays ours.
 * Frames older than PN_FRAME_TTL_MS are dropped before a re-dial, so an
 * unreachable node nobody sends to any more stops being dialed. */
#include "peer/internal.h"
#include "util/clock.h"
#include "util/log.h"

#include <grpc/support/time.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct pn_opipe {
  struct mq_peer_net *net;
  struct pn_peer *peer;
  struct pn_live live;
  struct mq_grpc_tag hs_tag, send_tag, status_tag;
  int refs; /* under net->mu: peer->pipe's, plus one per batch in flight */
  grpc_byte_buffer *hello_bb, *welcome_bb, *send_bb;
  size_t send_len;
  size_t send_count; /* frames in the message being sent */
  grpc_metadata_array imd, tmd;
  grpc_status_code status;
  grpc_slice details;
  bool timed_out;
};

/* Under net->mu. */
static void opipe_unref_locked(struct pn_opipe *op) {
  if (--op->refs > 0)
    return;
  pn_live_del(&op->live);
  grpc_call_unref(op->live.call);
  if (op->hello_bb)
    grpc_byte_buffer_destroy(op->hello_bb);
  if (op->welcome_bb)
    grpc_byte_buffer_destroy(op->welcome_bb);
  if (op->send_bb)
    grpc_byte_buffer_destroy(op->send_bb);
  grpc_metadata_array_destroy(&op->imd);
  grpc_metadata_array_destroy(&op->tmd);
  grpc_slice_unref(op->details);
  free(op);
}

/* Under net->mu: forgets the peer's current pipe (its batches keep it
 * alive until they complete). */
static void detach(struct pn_peer *p) {
  struct pn_opipe *op = p->pipe;
  p->pipe = NULL;
  p->sending = false;
  opipe_unref_locked(op);
}

static void drop_channel(struct pn_peer *p) {
  if (p->ch) {
    grpc_channel_destroy(p->ch);
    p->ch = NULL;
  }
}

static void hs_fn(struct mq_grpc_tag *t, bool ok);
static void send_fn(struct mq_grpc_tag *t, bool ok);
static void status_fn(struct mq_grpc_tag *t, bool ok);

/* Under net->mu, not stopping: schedules a dial after a failure. */
static void backoff(struct mq_peer_net *net, struct pn_peer *p, bool at_once) {
  int64_t now = mq_clock_mono_ms();
  if (at_once) {
    p->backoff_ms = PN_BACKOFF_MIN_MS;
    p->next_dial_ms = now;
  } else {
    p->next_dial_ms = now + pn_jitter(net, p->backoff_ms);
    p->backoff_ms = p->backoff_ms * 2 > PN_BACKOFF_MAX_MS ? PN_BACKOFF_MAX_MS : p->backoff_ms * 2;
  }
  p->state = PN_BACKOFF;
  pthread_cond_broadcast(&net->cv); /* the timer thread re-plans */
}

/* Under net->mu, not stopping: opens a pipe to p->addr with our Hello. */
static void dial(struct mq_peer_net *net, struct pn_peer *p) {
  Memquorum__Peer__V1__PipeMessage pm;
  Memquorum__Peer__V1__Hello h;
  grpc_op ops[4];

  PN_STAT_ADD(net, dials, 1);
  struct pn_opipe *op = calloc(1, sizeof *op);
  if (!p->ch)
    p->ch = pn_channel_create(net, p->addr);
  if (!op || !p->ch) {
    free(op);
    PN_STAT_ADD(net, dial_failures, 1);
    backoff(net, p, false);
    return;
  }
  op->net = net;
  op->peer = p;
  op->hs_tag.fn = hs_fn;
  op->send_tag.fn = send_fn;
  op->status_tag.fn = status_fn;
  op->details = grpc_empty_slice();
  grpc_metadata_array_init(&op->imd);
  grpc_metadata_array_init(&op->tmd);
  grpc_call *call = grpc_channel_create_call(p->ch, NULL, GRPC_PROPAGATE_DEFAULTS, net->cq,
                                             grpc_slice_from_static_string(PN_PIPE_PATH), NULL,
                                             gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
  pn_live_add(net, &op->live, call, PN_K_OPIPE);
  op->refs = 1;
  p->pipe = op;
  p->state = PN_DIALING;
  p->dial_deadline_ms = mq_clock_mono_ms() + PN_HANDSHAKE_MS;

  memquorum__peer__v1__pipe_message__init(&pm);
  pn_hello_to_msg(&net->self, &h);
  pm.body_case = MEMQUORUM__PEER__V1__PIPE_MESSAGE__BODY_HELLO;
  pm.hello = &h;
  op->hello_bb = mq_grpc_pack(&pm.base);
  memset(ops, 0, sizeof ops);
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[1].op = GRPC_OP_SEND_MESSAGE;
  ops[1].data.send_message.send_message = op->hello_bb;
  ops[2].op = GRPC_OP_RECV_INITIAL_METADATA;
  ops[2].data.recv_initial_metadata.recv_initial_metadata = &op->imd;
  ops[3].op = GRPC_OP_RECV_MESSAGE;
  ops[3].data.recv_message.recv_message = &op->welcome_bb;
  op->refs++;
  if (pn_start_batch(net, call, ops, 4, &op->hs_tag) != GRPC_CALL_OK) {
    op->refs--;
    detach(p);
    drop_channel(p);
    PN_STAT_ADD(net, dial_failures, 1);
    backoff(net, p, false);
  }
}

#define PN_SEND_BATCH_FRAMES 64
#define PN_SEND_BATCH_BYTES (4 * 1024 * 1024)

/* Under net->mu: puts the queued frames on the wire of an up pipe, up to a
 * batch of them in one message. A queued frame is a packed PipeMessage with
 * only field 3 (frame) set; rewriting its tag byte to field 4 (frames, same
 * wire type) makes it one element of a repeated field, so frames packed
 * once concatenate into a valid multi-frame message without copying. */
static void send_next(struct mq_peer_net *net, struct pn_peer *p) {
  struct pn_opipe *op = p->pipe;
  grpc_op o;
  grpc_slice slices[PN_SEND_BATCH_FRAMES];
  size_t k = 0, bytes = 0;

  if (!p->head || !op || p->state != PN_UP || p->sending)
    return;
  while (p->head && k < PN_SEND_BATCH_FRAMES && (k == 0 || bytes < PN_SEND_BATCH_BYTES)) {
    struct pn_frame *f = p->head;
    p->head = f->next;
    if (!p->head)
      p->tail = NULL;
    p->n_frames--;
    p->n_bytes -= f->len;
    bytes += f->len;
    slices[k++] = f->msg;
    free(f);
  }
  if (k > 1)
    for (size_t i = 0; i < k; i++)
      GRPC_SLICE_START_PTR(slices[i])[0] = (4 << 3) | 2; /* field 4, length-delimited */
  op->send_bb = grpc_raw_byte_buffer_create(slices, k);
  op->send_len = bytes;
  op->send_count = k;
  for (size_t i = 0; i < k; i++)
    grpc_slice_unref(slices[i]);
  memset(&o, 0, sizeof o);
  o.op = GRPC_OP_SEND_MESSAGE;
  o.data.send_message.send_message = op->send_bb;
  op->refs++;
  p->sending = true;
  if (pn_start_batch(net, op->live.call, &o, 1, &op->send_tag) != GRPC_CALL_OK) {
    op->refs--;
    p->sending = false;
    grpc_byte_buffer_destroy(op->send_bb);
    op->send_bb = NULL;
    PN_STAT_ADD(net, frames_dropped, 1);
    grpc_call_cancel(op->live.call, NULL);
  }
}

/* Reads the Welcome. Returns true when accepted; otherwise reason says why,
 * *refused whether it was a refusal (rather than a broken call) and
 * *theirs whether the peer refused us (reason in its words) or we it. */
static bool read_welcome(struct pn_opipe *op, const struct pn_peer *p, struct mq_peer_hello *srv,
                         char *reason, size_t cap, bool *refused, bool *theirs) {
  struct mq_status st;
  *refused = *theirs = false;
  if (!op->welcome_bb) {
    snprintf(reason, cap, "stream ended before a Welcome");
    return false;
  }
  mq_status_clear(&st);
  ProtobufCMessage *m =
      mq_grpc_unpack(&memquorum__peer__v1__pipe_message__descriptor, op->welcome_bb, &st);
  const Memquorum__Peer__V1__PipeMessage *pm = (const Memquorum__Peer__V1__PipeMessage *)m;
  bool ok = false;
  if (!pm || pm->body_case != MEMQUORUM__PEER__V1__PIPE_MESSAGE__BODY_WELCOME) {
    snprintf(reason, cap, "the answer to our Hello is not a Welcome");
  } else if (!pm->welcome->accepted) {
    *refused = *theirs = true;
    snprintf(reason, cap, "%.200s",
             pm->welcome->reason && pm->welcome->reason[0] ? pm->welcome->reason : "no reason");
  } else if (!pn_hello_from_msg(pm->welcome->server, srv, reason, cap)) {
    *refused = true;
  } else if (!pn_hello_ok(op->net, srv, reason, cap)) {
    *refused = true;
  } else if (strcmp(srv->node_id, p->node_id) != 0) {
    *refused = true;
    snprintf(reason, cap, "node_id %.100s != expected %.100s", srv->node_id, p->node_id);
  } else {
    ok = true;
  }
  if (m)
    protobuf_c_message_free_unpacked(m, NULL);
  return ok;
}

static void hs_fn(struct mq_grpc_tag *t, bool ok) {
  struct pn_opipe *op = MQ_GRPC_CONTAINER(t, struct pn_opipe, hs_tag);
  struct mq_peer_net *net = op->net;
  struct pn_peer *p = op->peer;
  struct mq_peer_hello srv;
  char reason[256] = "";
  bool refused = false, theirs = false;
  bool up = ok && read_welcome(op, p, &srv, reason, sizeof reason, &refused, &theirs);
  bool report = false, log_refusal = false;
  char id[128], addr[300];
  unsigned held = 0;

  pthread_mutex_lock(&net->mu);
  bool attached = p->pipe == op;
  snprintf(id, sizeof id, "%s", p->node_id);
  snprintf(addr, sizeof addr, "%s", p->addr);
  if (up && attached && !net->stopping) {
    p->state = PN_UP;
    p->backoff_ms = PN_BACKOFF_MIN_MS;
    p->remote = srv;
    p->up_reported = true;
    p->fail_log.last_ms = 0; /* the next failure is news again */
    report = true;
  } else if (!up && ok && op->welcome_bb) {
    /* An answer we cannot accept; a stream that ended without one already
     * carries the peer's status. */
    if (refused) {
      PN_STAT_ADD(net, handshakes_refused, 1);
      log_refusal = mq_ratelimit_pass(&p->fail_log, mq_clock_mono_ms(), PN_LOG_EVERY_MS, &held);
    }
    grpc_call_cancel_with_status(op->live.call,
                                 refused ? GRPC_STATUS_FAILED_PRECONDITION : GRPC_STATUS_INTERNAL,
                                 reason, NULL);
  }
  pthread_mutex_unlock(&net->mu);

  if (log_refusal)
    mq_warn("peer",
            theirs ? "peer %s (%s) refused our handshake, saying: %s%s"
                   : "peer %s (%s) refused: %s%s",
            id, addr, reason, held ? " (earlier refusals not logged)" : "");
  if (report) {
    mq_info("peer", "peer %s (%s) up, incarnation %" PRIu64, id, addr, srv.incarnation);
    if (net->cb.on_peer_up)
      net->cb.on_peer_up(net->cb.arg, &srv);
  }

  /* Only now may the end of the call be reported (see the top of file). */
  grpc_op o;
  memset(&o, 0, sizeof o);
  o.op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  o.data.recv_status_on_client.trailing_metadata = &op->tmd;
  o.data.recv_status_on_client.status = &op->status;
  o.data.recv_status_on_client.status_details = &op->details;
  pthread_mutex_lock(&net->mu);
  op->refs++;
  if (pn_start_batch(net, op->live.call, &o, 1, &op->status_tag) != GRPC_CALL_OK) {
    /* Only API misuse fails here; without a status the pipe could never
     * end, so give it up now. */
    mq_error("peer", "cannot watch the pipe to %s; re-dialing", id);
    op->refs--;
    grpc_call_cancel(op->live.call, NULL);
    if (p->pipe == op) {
      detach(p);
      drop_channel(p);
      if (!net->stopping)
        backoff(net, p, false);
    }
  }
  if (p->pipe == op && p->state == PN_UP)
    send_next(net, p);
  opipe_unref_locked(op);
  pthread_mutex_unlock(&net->mu);
}

static void send_fn(struct mq_grpc_tag *t, bool ok) {
  struct pn_opipe *op = MQ_GRPC_CONTAINER(t, struct pn_opipe, send_tag);
  struct mq_peer_net *net = op->net;
  struct pn_peer *p = op->peer;

  pthread_mutex_lock(&net->mu);
  grpc_byte_buffer_destroy(op->send_bb);
  op->send_bb = NULL;
  if (ok) {
    PN_STAT_ADD(net, frames_sent, op->send_count);
    PN_STAT_ADD(net, bytes_sent, op->send_len);
  } else {
    PN_STAT_ADD(net, frames_dropped, op->send_count);
    grpc_call_cancel(op->live.call, NULL); /* the status completion takes over */
  }
  if (p->pipe == op) {
    p->sending = false;
    if (ok && !net->deferred)
      send_next(net, p);
  }
  opipe_unref_locked(op);
  pthread_mutex_unlock(&net->mu);
}

static void status_fn(struct mq_grpc_tag *t, bool ok) {
  struct pn_opipe *op = MQ_GRPC_CONTAINER(t, struct pn_opipe, status_tag);
  struct mq_peer_net *net = op->net;
  struct pn_peer *p = op->peer;
  char id[128], addr[300], details[256];
  bool report_down = false, log_down = false, log_fail = false;
  unsigned held = 0;

  pn_slice_str(op->details, details, sizeof details);
  pthread_mutex_lock(&net->mu);
  snprintf(id, sizeof id, "%s", p->node_id);
  snprintf(addr, sizeof addr, "%s", p->addr);
  if (p->pipe == op) {
    bool was_up = p->state == PN_UP;
    detach(p);
    drop_channel(p);
    if (!net->stopping) {
      if (!was_up) {
        PN_STAT_ADD(net, dial_failures, 1);
        log_fail = op->status != GRPC_STATUS_FAILED_PRECONDITION &&
                   mq_ratelimit_pass(&p->fail_log, mq_clock_mono_ms(), PN_LOG_EVERY_MS, &held);
      }
      log_down = was_up;
      backoff(net, p, was_up);
      if (was_up && p->head)
        dial(net, p);
    }
    report_down = p->up_reported && !net->stopping;
    p->up_reported = false;
  }
  pthread_mutex_unlock(&net->mu);

  if (log_down)
    mq_info("peer", "peer %s (%s) down: %s", id, addr, details[0] ? details : "stream ended");
  if (log_fail)
    mq_info("peer", "cannot reach peer %s at %s: %s; retrying with backoff%s", id, addr,
            details[0] ? details : "stream ended", held ? " (repeated failures not logged)" : "");
  if (report_down && net->cb.on_peer_down)
    net->cb.on_peer_down(net->cb.arg, id);

  pthread_mutex_lock(&net->mu);
  opipe_unref_locked(op);
  pthread_mutex_unlock(&net->mu);
}

/* ------------------------------------------------------------------------ */
/* Sending */

static struct pn_peer *peer_get(struct mq_peer_net *net, const char *node_id) {
  for (struct pn_peer *p = net->peers; p; p = p->next)
    if (strcmp(p->node_id, node_id) == 0)
      return p;
  struct pn_peer *p = calloc(1, sizeof *p);
  if (!p)
    return NULL;
  snprintf(p->node_id, sizeof p->node_id, "%s", node_id);
  p->state = PN_IDLE;
  p->backoff_ms = PN_BACKOFF_MIN_MS;
  p->next = net->peers;
  net->peers = p;
  return p;
}

/* Under net->mu: drops the oldest frame of p's queue. */
static void drop_head(struct mq_peer_net *net, struct pn_peer *p) {
  struct pn_frame *old = p->head;
  p->head = old->next;
  if (!p->head)
    p->tail = NULL;
  p->n_frames--;
  p->n_bytes -= old->len;
  grpc_slice_unref(old->msg);
  free(old);
  PN_STAT_ADD(net, frames_dropped, 1);
}

/* Under net->mu: the node answers at a new address (a restarted pod). */
static void readdress(struct mq_peer_net *net, struct pn_peer *p, const char *addr) {
  if (p->addr[0])
    mq_info("peer", "peer %s moved from %s to %s", p->node_id, p->addr, addr);
  snprintf(p->addr, sizeof p->addr, "%s", addr);
  if (p->pipe) {
    grpc_call_cancel_with_status(p->pipe->live.call, GRPC_STATUS_CANCELLED,
                                 "peer moved to a new address", NULL);
    detach(p);
  }
  drop_channel(p);
  p->state = PN_IDLE;
  p->backoff_ms = PN_BACKOFF_MIN_MS;
}

int mq_peer_send(struct mq_peer_net *net, const char *node_id, const char *addr,
                 const uint8_t *data, size_t len) {
  Memquorum__Peer__V1__PipeMessage pm;

  if (!node_id || !addr || !node_id[0] || !addr[0] || strlen(node_id) >= 128 ||
      strlen(addr) >= 300 || len > PN_MAX_FRAME || (len && !data))
    return MQ_EINVAL;
  struct pn_frame *f = malloc(sizeof *f);
  if (!f)
    return MQ_ENOMEM;
  memquorum__peer__v1__pipe_message__init(&pm);
  pm.body_case = MEMQUORUM__PEER__V1__PIPE_MESSAGE__BODY_FRAME;
  pm.frame.data = (uint8_t *)(len ? data : (const uint8_t *)"");
  pm.frame.len = len;
  size_t n = protobuf_c_message_get_packed_size(&pm.base);
  f->msg = grpc_slice_malloc(n);
  protobuf_c_message_pack(&pm.base, GRPC_SLICE_START_PTR(f->msg));
  f->len = len;
  f->at_ms = mq_clock_mono_ms();
  f->next = NULL;

  pthread_mutex_lock(&net->mu);
  struct pn_peer *p = net->stopping ? NULL : peer_get(net, node_id);
  if (!p) {
    int rc = net->stopping ? MQ_EUNAVAIL : MQ_ENOMEM;
    pthread_mutex_unlock(&net->mu);
    grpc_slice_unref(f->msg);
    free(f);
    return rc;
  }
  if (strcmp(p->addr, addr) != 0)
    readdress(net, p, addr);
  if (p->tail)
    p->tail->next = f;
  else
    p->head = f;
  p->tail = f;
  p->n_frames++;
  p->n_bytes += len;
  while (p->head != f && (p->n_frames > PN_QUEUE_FRAMES || p->n_bytes > PN_QUEUE_BYTES))
    drop_head(net, p);
  if (p->state == PN_IDLE)
    dial(net, p);
  else if (p->state == PN_UP && !net->deferred)
    send_next(net, p);
  pthread_mutex_unlock(&net->mu);
  return 0;
}

void mq_peer_defer_sends(struct mq_peer_net *net) {
  pthread_mutex_lock(&net->mu);
  net->deferred = true;
  pthread_mutex_unlock(&net->mu);
}

void mq_peer_flush(struct mq_peer_net *net) {
  pthread_mutex_lock(&net->mu);
  for (struct pn_peer *p = net->peers; p && !net->stopping; p = p->next)
    if (p->state == PN_UP)
      send_next(net, p);
  pthread_mutex_unlock(&net->mu);
}

/* ------------------------------------------------------------------------ */
/* Timer thread and teardown */

void *pn_timer_thread(void *arg) {
  struct mq_peer_net *net = arg;
  pthread_setname_np(pthread_self(), "mq-peer-timer");
  pthread_mutex_lock(&net->mu);
  while (!net->stopping) {
    int64_t now = mq_clock_mono_ms(), wake = now + 1000;
    for (struct pn_peer *p = net->peers; p; p = p->next) {
      if (p->state == PN_BACKOFF) {
        if (now < p->next_dial_ms) {
          wake = p->next_dial_ms < wake ? p->next_dial_ms : wake;
          continue;
        }
        /* Raft re-sends what still matters; a node nobody has written to
         * for a while is not dialed for stale frames. */
        while (p->head && now - p->head->at_ms > PN_FRAME_TTL_MS)
          drop_head(net, p);
        if (p->head)
          dial(net, p);
        else
          p->state = PN_IDLE;
      }
      if (p->state == PN_DIALING && p->pipe && !p->pipe->timed_out) {
        if (now >= p->dial_deadline_ms) {
          p->pipe->timed_out = true;
          grpc_call_cancel_with_status(p->pipe->live.call, GRPC_STATUS_DEADLINE_EXCEEDED,
                                       "no Welcome within the handshake timeout", NULL);
        } else if (p->dial_deadline_ms < wake) {
          wake = p->dial_deadline_ms;
        }
      }
    }
    struct timespec ts = {.tv_sec = wake / 1000, .tv_nsec = (long)(wake % 1000) * 1000000L};
    pthread_cond_timedwait(&net->cv, &net->mu, &ts);
  }
  pthread_mutex_unlock(&net->mu);
  return NULL;
}

void pn_pipes_release(struct mq_peer_net *net) {
  pthread_mutex_lock(&net->mu);
  for (struct pn_peer *p = net->peers; p; p = p->next) {
    if (p->pipe) /* only if its batches could not start */
      detach(p);
    drop_channel(p);
  }
  pthread_mutex_unlock(&net->mu);
}

void pn_pipes_free(struct mq_peer_net *net) {
  while (net->peers) {
    struct pn_peer *p = net->peers;
    net->peers = p->next;
    while (p->head) {
      struct pn_frame *f = p->head;
      p->head = f->next;
      grpc_slice_unref(f->msg);
      free(f);
    }
    free(p);
  }
}
