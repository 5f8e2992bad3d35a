/* Completion-queue tags, shared by the API server (api/) and the peer
 * transport (peer/).
 *
 * Every tag handed to the gRPC C core is a pointer to a struct mq_grpc_tag
 * embedded in a per-call (or per-slot) heap object; whichever thread polls
 * the queue calls mq_grpc_tag_run(ev.tag, ev.success), which runs the tag's
 * handler. There is no per-call state outside those objects.
 *
 * Note on names: agent/ is on the include path, so no header here may share
 * a name with one of the gRPC C core's (<grpc/grpc.h>, <grpc/slice.h>, ...),
 * or it would shadow it. */
#ifndef MQ_GRPC_TAG_H
#define MQ_GRPC_TAG_H

#include <stdbool.h>
#include <stddef.h>

#define MQ_GRPC_CONTAINER(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* A group of tags whose owner counts its batches in flight (the peer
 * transport, to know when it may let go of its calls): end() runs after
 * the handler of every tag of the group. */
struct mq_grpc_tag_group {
  void (*end)(struct mq_grpc_tag_group *g);
};

/* A completion-queue tag. ok is the event's success flag. group is NULL
 * unless the tag belongs to one (the objects holding tags are zeroed when
 * allocated). */
struct mq_grpc_tag {
  void (*fn)(struct mq_grpc_tag *t, bool ok);
  struct mq_grpc_tag_group *group;
};

/* Runs the handler of one event's tag, then its group's end(). */
void mq_grpc_tag_run(void *tag, bool ok);

#endif
