/* The one state machine every unary method runs through:
 *
 *   call arrives (CQ thread) -> unpack -> prepare (validate, fill mq_req)
 *     -> mq_node_submit -> done() on the core loop: a zero-op batch wakes
 *     a CQ thread, or, when the core loop is the CQ thread (grpc/cq.h),
 *     done() goes on at once -> build the reply or the error status -> one
 *     batch of SEND_INITIAL_METADATA, SEND_MESSAGE, SEND_STATUS_FROM_SERVER
 *     and RECV_CLOSE_ON_SERVER -> on its completion, free everything.
 *
 * Methods differ only in their struct api_unary_method (convert.c,
 * health.c). The call object is owned by whichever side holds it: the CQ
 * thread until submit, the node until done(), the CQ again after. */
#include "api/internal.h"
#include "util/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void unary_free(struct api_unary *u) {
  struct mq_api_server *s = u->srv;
  if (u->submitted)
    mq_req_clear(&u->req);
  if (u->msg)
    protobuf_c_message_free_unpacked(u->msg, &u->arena.pa);
  if (u->resp)
    grpc_byte_buffer_destroy(u->resp);
  if (u->has_details)
    grpc_slice_unref(u->details);
  grpc_call_unref(u->call);
  free(u);
  api_live_add(s, -1);
}

static void sent_fn(struct mq_grpc_tag *t, bool ok) {
  unary_free(MQ_GRPC_CONTAINER(t, struct api_unary, tag));
}

/* Sends the reply (code 0) or an error status, and frees on completion. */
static void finish(struct api_unary *u, int mq_code, const char *msg) {
  grpc_op ops[4];
  size_t n = 0;
  memset(ops, 0, sizeof ops);
  ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
  if (mq_code == 0) {
    u->resp = u->um->reply(u);
    if (!u->resp) {
      mq_code = MQ_ENOMEM;
      msg = "out of memory building the reply";
    } else {
      ops[n].op = GRPC_OP_SEND_MESSAGE;
      ops[n++].data.send_message.send_message = u->resp;
    }
  }
  mq_grpc_op_status(&ops[n++], mq_err_to_grpc(mq_code), mq_code ? msg : "", &u->details);
  u->has_details = true;
  ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
  ops[n++].data.recv_close_on_server.cancelled = &u->cancelled;
  u->tag.fn = sent_fn;
  grpc_call_error e = grpc_call_start_batch(u->call, ops, n, &u->tag, NULL);
  if (e != GRPC_CALL_OK) {
    mq_error("grpc", "cannot send a reply (call error %d)", (int)e);
    unary_free(u);
  }
}

/* CQ thread: the node completed the request. */
static void completed_fn(struct mq_grpc_tag *t, bool ok) {
  struct api_unary *u = MQ_GRPC_CONTAINER(t, struct api_unary, tag);
  if (u->req.status.code == 0 && u->um->kv_required && !u->req.has_kv) {
    char msg[MQ_STATUS_MSG_MAX];
    snprintf(msg, sizeof msg, "key \"%.*s\" not found",
             (int)(u->req.key_len > 200 ? 200 : u->req.key_len), u->req.key ? u->req.key : "");
    finish(u, MQ_ENOTFOUND, msg);
    return;
  }
  finish(u, u->req.status.code, u->req.status.msg);
}

/* Core loop thread: must not block. */
static void done_cb(struct mq_req *req) {
  struct api_unary *u = req->arg;
  if (u->srv->shared_cq) { /* the loop polls our queue: answer right here */
    completed_fn(&u->tag, true);
    return;
  }
  u->tag.fn = completed_fn;
  grpc_call_error e = grpc_call_start_batch(u->call, NULL, 0, &u->tag, NULL);
  /* A zero-op batch only fails on API misuse; there is no other thread to
   * hand the call to, so that would be a bug. */
  if (e != GRPC_CALL_OK) {
    mq_error("grpc", "cannot wake the completion queue (call error %d)", (int)e);
    abort();
  }
}

void api_unary_start(struct mq_api_server *s, const struct api_method *m, grpc_call *call,
                     gpr_timespec deadline, grpc_byte_buffer *payload) {
  struct mq_status st;
  struct api_unary *u = calloc(1, sizeof *u);

  if (!u) {
    grpc_call_cancel_with_status(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory", NULL);
    grpc_call_unref(call);
    if (payload)
      grpc_byte_buffer_destroy(payload);
    return;
  }
  api_live_add(s, 1);
  mq_grpc_arena_init(&u->arena);
  u->srv = s;
  u->um = m->impl;
  u->call = call;
  u->deadline_ms = mq_grpc_deadline_ms(deadline);
  mq_status_clear(&st);

  u->msg = mq_grpc_unpack_in(u->um->in, payload, &u->arena, &st);
  if (payload)
    grpc_byte_buffer_destroy(payload);
  if (!u->msg) {
    finish(u, MQ_EINVAL, st.msg);
    return;
  }
  int rc = u->um->prepare(u, &st);
  if (rc < 0) {
    finish(u, rc, st.msg);
    return;
  }
  if (rc > 0) {
    finish(u, 0, "");
    return;
  }
  u->req.deadline_ms = u->deadline_ms;
  u->req.done = done_cb;
  u->req.arg = u;
  u->submitted = true;
  if (mq_node_submit(s->node, &u->req) != 0) {
    /* done() will not run; the request stays ours. */
    finish(u, MQ_EUNAVAIL, "agent shutting down");
  }
  /* Otherwise u belongs to the node until done(). */
}
