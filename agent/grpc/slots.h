/* Request slots: the calls a gRPC server asks the C core for, shared by the
 * API server (api/server.c) and the peer transport (peer/server.c).
 *
 * A slot asks for one call of one registered method (or of any method, for
 * answering the ones we do not serve); when a call arrives the slot posts
 * itself again before the call is served, so the pool stays full. The
 * owner decides, through its ops, whether a slot may be posted (not while
 * it shuts down) and keeps its own count of slots in flight: every
 * successful acquire() is matched by one release(), after the handler of
 * the call that slot delivered has run, or at once when posting fails. */
#ifndef MQ_GRPC_SLOTS_H
#define MQ_GRPC_SLOTS_H

#include "grpc/tag.h"

#include <grpc/grpc.h>

struct mq_grpc_slot_ops {
  /* May a slot be posted now? True counts it in flight. Any thread, no
   * lock of the pool's held. */
  bool (*acquire)(void *owner);
  /* The counterpart of a successful acquire(). */
  void (*release)(void *owner);
  /* A call arrived (call and payload owned by the callee; payload NULL for
   * a streaming method). method is the slot's index as given; name is the
   * method's path for a slot of any method, else NULL. */
  void (*start)(void *owner, int method, const char *name, grpc_call *call, gpr_timespec deadline,
                grpc_byte_buffer *payload);
};

/* Posts a new slot on server for the registered method `handle` (NULL: any
 * method), delivering on cq. payload: the method's request message is
 * read with the call (unary and server-streaming methods). Returns 0, or
 * MQ_ENOMEM. A slot that cannot be acquired or posted frees itself. */
int mq_grpc_slot_new(grpc_server *server, grpc_completion_queue *cq, void *handle, bool payload,
                     int method, const struct mq_grpc_slot_ops *ops, void *owner);

#endif
