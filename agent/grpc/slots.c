/* Request slots (slots.h). */
#include "grpc/slots.h"
#include "util/err.h"
#include "util/log.h"

#include <stdlib.h>
#include <string.h>

struct slot {
  struct mq_grpc_tag tag;
  grpc_server *server;
  grpc_completion_queue *cq;
  void *handle; /* NULL: any method */
  bool payload;
  int method;
  const struct mq_grpc_slot_ops *ops;
  void *owner;
  grpc_call *call;
  gpr_timespec deadline;
  grpc_metadata_array md;
  grpc_byte_buffer *body;
  grpc_call_details details;
};

static void slot_fn(struct mq_grpc_tag *t, bool ok);

/* Acquires and posts sl, or frees it. */
static void post(struct slot *sl) {
  if (!sl->ops->acquire(sl->owner)) {
    free(sl);
    return;
  }
  sl->call = NULL;
  sl->body = NULL;
  grpc_metadata_array_init(&sl->md);
  grpc_call_error e;
  if (sl->handle) {
    e = grpc_server_request_registered_call(sl->server, sl->handle, &sl->call, &sl->deadline,
                                            &sl->md, sl->payload ? &sl->body : NULL, sl->cq, sl->cq,
                                            &sl->tag);
  } else {
    grpc_call_details_init(&sl->details);
    e = grpc_server_request_call(sl->server, &sl->call, &sl->details, &sl->md, sl->cq, sl->cq,
                                 &sl->tag);
  }
  if (e != GRPC_CALL_OK) {
    mq_error("grpc", "cannot request calls (call error %d)", (int)e);
    grpc_metadata_array_destroy(&sl->md);
    if (!sl->handle)
      grpc_call_details_destroy(&sl->details);
    const struct mq_grpc_slot_ops *ops = sl->ops;
    void *owner = sl->owner;
    free(sl);
    ops->release(owner);
  }
}

static void slot_fn(struct mq_grpc_tag *t, bool ok) {
  struct slot *sl = MQ_GRPC_CONTAINER(t, struct slot, tag);
  const struct mq_grpc_slot_ops *ops = sl->ops;
  void *owner = sl->owner;
  grpc_call *call = sl->call;
  grpc_byte_buffer *body = sl->body;
  gpr_timespec deadline = sl->deadline;
  int method = sl->method;
  char name[256] = "";
  bool any = sl->handle == NULL;

  grpc_metadata_array_destroy(&sl->md);
  if (any) {
    if (ok) {
      size_t n = GRPC_SLICE_LENGTH(sl->details.method);
      if (n >= sizeof name)
        n = sizeof name - 1;
      memcpy(name, GRPC_SLICE_START_PTR(sl->details.method), n);
      name[n] = '\0';
    }
    grpc_call_details_destroy(&sl->details);
  }
  if (ok)
    post(sl); /* keep the pool full before serving this call */
  else
    free(sl);
  if (ok) {
    ops->start(owner, method, any ? name : NULL, call, deadline, body);
  } else {
    /* The server is shutting down; a call may still have been set. */
    if (call)
      grpc_call_unref(call);
    if (body)
      grpc_byte_buffer_destroy(body);
  }
  ops->release(owner);
}

int mq_grpc_slot_new(grpc_server *server, grpc_completion_queue *cq, void *handle, bool payload,
                     int method, const struct mq_grpc_slot_ops *ops, void *owner) {
  struct slot *sl = calloc(1, sizeof *sl);
  if (!sl)
    return MQ_ENOMEM;
  sl->tag.fn = slot_fn;
  sl->server = server;
  sl->cq = cq;
  sl->handle = handle;
  sl->payload = payload;
  sl->method = method;
  sl->ops = ops;
  sl->owner = owner;
  post(sl);
  return 0;
}
