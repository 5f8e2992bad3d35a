/* memquorum.v1.Watch/Watch: a server stream of change events.
 *
 * The node queues events per subscription and calls notify() on the core
 * loop; notify wakes a CQ thread with a zero-op batch unless a wake is
 * already pending. The CQ thread pops events and sends them one
 * SEND_MESSAGE at a time (one send in flight per call: the gRPC flow
 * control of a slow client backs up into the node's bounded queue, which
 * ends the watch with "watcher too slow" rather than growing). When the
 * watch ends with an error the status goes out: ECOMPACTED -> OUT_OF_RANGE,
 * ENOSPACE -> RESOURCE_EXHAUSTED, EUNAVAIL -> UNAVAILABLE.
 *
 * Lifetime: references are held by the RECV_CLOSE_ON_SERVER batch (the
 * call's life), by the open watch (until its closed() callback), and by
 * each batch or wake in flight. The object is freed when all are gone. */
#include "api/internal.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

struct watch_call {
  struct api_stream st;
  struct mq_grpc_tag close_tag, send_tag, wake_tag, status_tag;
  pthread_mutex_t mu;
  atomic_int wake_pending;
  int cancelled;
  struct mq_watch *w; /* NULL once closing */
  bool sending;
  bool status_sent;
  bool finished; /* the call is over */
  grpc_byte_buffer *out;
  grpc_slice details;
  bool has_details;
};

static void wc_destroy(struct api_stream *st) {
  struct watch_call *wc = MQ_GRPC_CONTAINER(st, struct watch_call, st);
  if (wc->out)
    grpc_byte_buffer_destroy(wc->out);
  if (wc->has_details)
    grpc_slice_unref(wc->details);
  pthread_mutex_destroy(&wc->mu);
  free(wc);
}

/* Core loop thread. */
static void closed_cb(void *arg) {
  struct watch_call *wc = arg;
  api_stream_unref(&wc->st);
}

/* Core loop thread; must not block. The watch's reference keeps wc alive. */
static void notify_cb(void *arg) {
  struct watch_call *wc = arg;
  if (atomic_exchange(&wc->wake_pending, 1))
    return;
  api_stream_ref(&wc->st);
  if (grpc_call_start_batch(wc->st.call, NULL, 0, &wc->wake_tag, NULL) != GRPC_CALL_OK)
    atomic_fetch_sub(&wc->st.refs, 1); /* the watch still holds one */
}

/* Under wc->mu. The caller holds a reference, so closed() cannot free wc
 * while we are here. */
static void close_watch(struct watch_call *wc) {
  if (!wc->w)
    return;
  struct mq_watch *w = wc->w;
  wc->w = NULL;
  mq_watch_close(w, closed_cb, wc);
}

static void send_status(struct watch_call *wc, int mq_code, const char *msg) {
  grpc_op op;
  memset(&op, 0, sizeof op);
  mq_grpc_op_status(&op, mq_err_to_grpc(mq_code), msg, &wc->details);
  wc->has_details = true;
  wc->status_sent = true;
  api_stream_ref(&wc->st);
  if (grpc_call_start_batch(wc->st.call, &op, 1, &wc->status_tag, NULL) != GRPC_CALL_OK)
    atomic_fetch_sub(&wc->st.refs, 1);
}

static grpc_byte_buffer *pack_event(const struct mq_event *ev) {
  Memquorum__V1__WatchEvent m = MEMQUORUM__V1__WATCH_EVENT__INIT;
  Memquorum__V1__KeyValue kv;
  Memquorum__V1__Entry entry;
  struct api_strs a;
  grpc_byte_buffer *bb = NULL;

  api_strs_init(&a);
  m.type = (Memquorum__V1__WatchEvent__EventType)ev->type;
  m.shard = ev->shard;
  m.revision = ev->revision;
  if (ev->type == MQ_EV_PRODUCE) {
    m.topic = api_strs_dup(&a, ev->topic, ev->topic_len);
    api_entry_to_msg(&a, &ev->entry, &entry);
    m.entry = &entry;
  } else {
    api_kv_to_msg(&a, &ev->kv, &kv);
    m.kv = &kv;
  }
  if (!a.err)
    bb = mq_grpc_pack(&m.base);
  api_strs_free(&a);
  return bb;
}

/* Sends the next event, or the final status. Under wc->mu. */
static void pump(struct watch_call *wc) {
  struct mq_watch_event *ev;
  struct mq_status st;

  if (wc->finished || wc->status_sent || wc->sending || !wc->w)
    return;
  mq_status_clear(&st);
  int rc = mq_watch_pop(wc->w, &ev, &st);
  if (rc == 1)
    return;
  if (rc < 0) {
    if (!st.msg[0])
      mq_status_set(&st, rc, "%s", rc == MQ_ENOSPACE ? "watcher too slow" : mq_strerror(rc));
    send_status(wc, rc, st.msg);
    close_watch(wc);
    return;
  }
  wc->out = pack_event(&ev->ev);
  mq_watch_event_free(ev);
  if (!wc->out) {
    send_status(wc, MQ_ENOMEM, "out of memory encoding a watch event");
    close_watch(wc);
    return;
  }
  grpc_op op;
  memset(&op, 0, sizeof op);
  op.op = GRPC_OP_SEND_MESSAGE;
  op.data.send_message.send_message = wc->out;
  api_stream_ref(&wc->st);
  if (grpc_call_start_batch(wc->st.call, &op, 1, &wc->send_tag, NULL) != GRPC_CALL_OK) {
    atomic_fetch_sub(&wc->st.refs, 1);
    grpc_byte_buffer_destroy(wc->out);
    wc->out = NULL;
    close_watch(wc);
    return;
  }
  wc->sending = true;
}

static void send_fn(struct mq_grpc_tag *t, bool ok) {
  struct watch_call *wc = MQ_GRPC_CONTAINER(t, struct watch_call, send_tag);
  pthread_mutex_lock(&wc->mu);
  grpc_byte_buffer_destroy(wc->out);
  wc->out = NULL;
  wc->sending = false;
  if (ok)
    pump(wc);
  else
    close_watch(wc); /* the client is gone */
  pthread_mutex_unlock(&wc->mu);
  api_stream_unref(&wc->st);
}

static void wake_fn(struct mq_grpc_tag *t, bool ok) {
  struct watch_call *wc = MQ_GRPC_CONTAINER(t, struct watch_call, wake_tag);
  atomic_store(&wc->wake_pending, 0);
  pthread_mutex_lock(&wc->mu);
  pump(wc);
  pthread_mutex_unlock(&wc->mu);
  api_stream_unref(&wc->st);
}

static void status_fn(struct mq_grpc_tag *t, bool ok) {
  struct watch_call *wc = MQ_GRPC_CONTAINER(t, struct watch_call, status_tag);
  api_stream_unref(&wc->st);
}

/* The call is over: the status went out, or the client cancelled, or the
 * server shut down. */
static void close_fn(struct mq_grpc_tag *t, bool ok) {
  struct watch_call *wc = MQ_GRPC_CONTAINER(t, struct watch_call, close_tag);
  pthread_mutex_lock(&wc->mu);
  wc->finished = true;
  close_watch(wc);
  pthread_mutex_unlock(&wc->mu);
  api_stream_unref(&wc->st);
}

static int validate(struct mq_api_server *s, const Memquorum__V1__WatchRequest *m,
                    struct mq_status *st) {
  (void)s;
  /* The node checks the prefix, topic and start revisions as it opens the
   * watch (cluster/watch.c). */
  for (size_t i = 0; i < m->n_start_revisions; i++) {
    const Memquorum__V1__WatchRequest__StartRevisionsEntry *e = m->start_revisions[i];
    if (e->value < 0)
      return mq_status_set(st, MQ_EINVAL, "start_revisions[%d] = %" PRId64 " is negative", e->key,
                           e->value);
  }
  return 0;
}

void api_watch_start(struct mq_api_server *s, const struct api_method *m, grpc_call *call,
                     gpr_timespec deadline, grpc_byte_buffer *payload) {
  struct mq_status st;
  struct mq_watch_start *starts = NULL;
  struct watch_call *wc = NULL;
  Memquorum__V1__WatchRequest *req;
  int rc;

  mq_status_clear(&st);
  req = (void *)mq_grpc_unpack(&memquorum__v1__watch_request__descriptor, payload, &st);
  if (payload)
    grpc_byte_buffer_destroy(payload);
  if (!req) {
    api_reply_status(s, call, GRPC_STATUS_INVALID_ARGUMENT, st.msg);
    return;
  }
  if ((rc = validate(s, req, &st))) {
    api_reply_status(s, call, mq_err_to_grpc(rc), st.msg);
    goto out;
  }
  wc = calloc(1, sizeof *wc);
  if (req->n_start_revisions)
    starts = calloc(req->n_start_revisions, sizeof *starts);
  if (!wc || (req->n_start_revisions && !starts)) {
    free(wc);
    api_reply_status(s, call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    goto out;
  }
  wc->close_tag.fn = close_fn;
  wc->send_tag.fn = send_fn;
  wc->wake_tag.fn = wake_fn;
  wc->status_tag.fn = status_fn;
  wc->st.destroy = wc_destroy;
  pthread_mutex_init(&wc->mu, NULL);
  api_stream_register(s, &wc->st, call); /* the reference RECV_CLOSE_ON_SERVER holds */
  api_stream_ref(&wc->st);               /* ours, until the end of this function */

  grpc_op ops[2];
  memset(ops, 0, sizeof ops);
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[1].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
  ops[1].data.recv_close_on_server.cancelled = &wc->cancelled;
  if (grpc_call_start_batch(call, ops, 2, &wc->close_tag, NULL) != GRPC_CALL_OK) {
    wc->finished = true;
    api_stream_unref(&wc->st);
    goto unref;
  }

  struct mq_watch_params p;
  memset(&p, 0, sizeof p);
  p.prefix = req->prefix;
  p.prefix_len = strlen(req->prefix);
  if (req->topic[0]) {
    p.topic = req->topic;
    p.topic_len = strlen(req->topic);
  }
  for (size_t i = 0; i < req->n_start_revisions; i++) {
    starts[i].shard = req->start_revisions[i]->key;
    starts[i].revision = req->start_revisions[i]->value;
  }
  p.starts = starts;
  p.n_starts = req->n_start_revisions;

  pthread_mutex_lock(&wc->mu);
  api_stream_ref(&wc->st); /* the watch's, until closed() */
  rc = mq_node_watch_open(s->node, &p, notify_cb, wc, &wc->w, &st);
  if (rc) {
    wc->w = NULL;
    atomic_fetch_sub(&wc->st.refs, 1); /* we still hold ours */
    send_status(wc, rc, st.msg[0] ? st.msg : mq_strerror(rc));
  } else if (wc->finished) {
    close_watch(wc); /* cancelled while opening */
  }
  pthread_mutex_unlock(&wc->mu);
unref:
  api_stream_unref(&wc->st);
out:
  free(starts);
  protobuf_c_message_free_unpacked(&req->base, NULL);
}
