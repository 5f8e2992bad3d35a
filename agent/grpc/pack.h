/* Helpers between the gRPC C core and protobuf-c, shared by the API server
 * (api/) and the peer transport (peer/): unpacking a request byte buffer
 * (refusing a string field with a NUL byte, which protobuf-c would cut),
 * packing a reply, status ops, deadlines, and closing a queue of one's own. */
#ifndef MQ_GRPC_PACK_H
#define MQ_GRPC_PACK_H

#include "util/err.h"

#include <grpc/byte_buffer.h>
#include <grpc/grpc.h>
#include <protobuf-c/protobuf-c.h>

#include <pthread.h>
#include <stdint.h>

/* A bump allocator that lets one request unpack into memory its call
 * already holds: the message and its strings take no malloc of their own
 * unless they outgrow the buffer, and freeing is then nearly free. */
#define MQ_GRPC_ARENA_BYTES 512
struct mq_grpc_arena {
  ProtobufCAllocator pa; /* protobuf-c's view; allocator_data is the arena */
  size_t used;
  _Alignas(16) unsigned char buf[MQ_GRPC_ARENA_BYTES];
};
void mq_grpc_arena_init(struct mq_grpc_arena *a);

/* Unpacks a request message. Returns NULL (with a message in st) when the
 * payload is missing or not a valid message of that type. */
ProtobufCMessage *mq_grpc_unpack(const ProtobufCMessageDescriptor *d, grpc_byte_buffer *bb,
                                 struct mq_status *st);
/* The same, allocating from arena a (NULL: malloc); free the message with
 * protobuf_c_message_free_unpacked(m, &a->pa). */
ProtobufCMessage *mq_grpc_unpack_in(const ProtobufCMessageDescriptor *d, grpc_byte_buffer *bb,
                                    struct mq_grpc_arena *a, struct mq_status *st);
/* Packs a message into a new byte buffer; NULL when out of memory. */
grpc_byte_buffer *mq_grpc_pack(const ProtobufCMessage *m);
/* Shuts down a queue of one's own and destroys it: its n polling threads
 * see the shutdown and are joined, or, with none, it is drained here. */
void mq_grpc_cq_close(grpc_completion_queue *cq, pthread_t *threads, int n);
/* Fills a SEND_STATUS_FROM_SERVER op; *details must outlive the batch and
 * be released with grpc_slice_unref afterwards. */
void mq_grpc_op_status(grpc_op *op, int grpc_code, const char *msg, grpc_slice *details);
/* The call deadline as CLOCK_MONOTONIC ms for struct mq_req; 0: none. */
int64_t mq_grpc_deadline_ms(gpr_timespec deadline);

#endif
