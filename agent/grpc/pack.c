/* Small helpers between the gRPC C core and protobuf-c (pack.h):
 * unpacking a request byte buffer, packing a reply, status ops, deadlines,
 * closing a queue of one's own. */
#include "grpc/pack.h"
#include "util/buf.h"
#include "util/clock.h"

#include <grpc/byte_buffer_reader.h>
#include <grpc/support/time.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* protobuf-c hands string fields over NUL-terminated, so a string with a
 * NUL byte inside would silently lose its tail. Walks the wire bytes of a
 * message that unpacked (protobuf varints are the ones util/buf.h reads)
 * and names the first string field, nested messages included, holding a
 * NUL byte, or returns NULL. */
static const char *string_with_nul(const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t n,
                                   int depth) {
  struct mq_reader rd;
  mq_reader_init(&rd, p, n);
  while (mq_reader_left(&rd) > 0 && !rd.err && depth < 32) {
    uint64_t tag = mq_get_varint(&rd);
    switch (tag & 7) {
    case 0:
      mq_get_varint(&rd);
      break;
    case 1:
      mq_get_raw(&rd, 8);
      break;
    case 5:
      mq_get_raw(&rd, 4);
      break;
    case 2: {
      size_t len;
      const uint8_t *v = mq_get_bytes(&rd, &len, SIZE_MAX);
      if (!v)
        return NULL;
      const ProtobufCFieldDescriptor *f =
          tag >> 3 <= UINT32_MAX ? protobuf_c_message_descriptor_get_field(d, (unsigned)(tag >> 3))
                                 : NULL;
      if (f && f->type == PROTOBUF_C_TYPE_STRING && memchr(v, 0, len))
        return f->name;
      if (f && f->type == PROTOBUF_C_TYPE_MESSAGE) {
        const char *in = string_with_nul(f->descriptor, v, len, depth + 1);
        if (in)
          return in;
      }
      break;
    }
    default:
      return NULL; /* groups: unpack already judged them */
    }
  }
  return NULL;
}

static void *arena_alloc(void *data, size_t n) {
  struct mq_grpc_arena *a = data;
  size_t at = (a->used + 15) & ~(size_t)15;
  if (n <= sizeof a->buf && at <= sizeof a->buf - n) {
    a->used = at + n;
    return a->buf + at;
  }
  return malloc(n);
}

static void arena_free(void *data, void *p) {
  struct mq_grpc_arena *a = data;
  unsigned char *c = p;
  if (c < a->buf || c >= a->buf + sizeof a->buf)
    free(p);
}

void mq_grpc_arena_init(struct mq_grpc_arena *a) {
  a->pa.alloc = arena_alloc;
  a->pa.free = arena_free;
  a->pa.allocator_data = a;
  a->used = 0;
}

ProtobufCMessage *mq_grpc_unpack(const ProtobufCMessageDescriptor *d, grpc_byte_buffer *bb,
                                 struct mq_status *st) {
  return mq_grpc_unpack_in(d, bb, NULL, st);
}

ProtobufCMessage *mq_grpc_unpack_in(const ProtobufCMessageDescriptor *d, grpc_byte_buffer *bb,
                                    struct mq_grpc_arena *a, struct mq_status *st) {
  ProtobufCAllocator *pa = a ? &a->pa : NULL;
  grpc_slice all;

  if (!bb) {
    mq_status_set(st, MQ_EINVAL, "missing request message (expected a %s)", d->name);
    return NULL;
  }
  if (bb->type == GRPC_BB_RAW && bb->data.raw.compression == GRPC_COMPRESS_NONE &&
      bb->data.raw.slice_buffer.count == 1) {
    /* The common case: one uncompressed slice, read where it lies. */
    all = grpc_slice_ref(bb->data.raw.slice_buffer.slices[0]);
  } else {
    grpc_byte_buffer_reader r;
    if (!grpc_byte_buffer_reader_init(&r, bb)) {
      mq_status_set(st, MQ_EINVAL, "request is not a valid %s (cannot decompress)", d->name);
      return NULL;
    }
    all = grpc_byte_buffer_reader_readall(&r);
    grpc_byte_buffer_reader_destroy(&r);
  }
  ProtobufCMessage *m =
      protobuf_c_message_unpack(d, pa, GRPC_SLICE_LENGTH(all), GRPC_SLICE_START_PTR(all));
  const char *nul =
      m ? string_with_nul(d, GRPC_SLICE_START_PTR(all), GRPC_SLICE_LENGTH(all), 0) : NULL;
  grpc_slice_unref(all);
  if (!m) {
    mq_status_set(st, MQ_EINVAL, "request is not a valid %s", d->name);
  } else if (nul) {
    mq_status_set(st, MQ_EINVAL, "%s: field %s contains a NUL byte, which strings may not", d->name,
                  nul);
    protobuf_c_message_free_unpacked(m, pa);
    m = NULL;
  }
  return m;
}

void mq_grpc_cq_close(grpc_completion_queue *cq, pthread_t *threads, int n) {
  grpc_completion_queue_shutdown(cq);
  for (int i = 0; i < n; i++)
    pthread_join(threads[i], NULL);
  if (n == 0)
    while (grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
           GRPC_QUEUE_SHUTDOWN) {
    }
  grpc_completion_queue_destroy(cq);
}

grpc_byte_buffer *mq_grpc_pack(const ProtobufCMessage *m) {
  size_t n = protobuf_c_message_get_packed_size(m);
  grpc_slice sl = grpc_slice_malloc(n);
  protobuf_c_message_pack(m, GRPC_SLICE_START_PTR(sl));
  grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&sl, 1);
  grpc_slice_unref(sl);
  return bb;
}

void mq_grpc_op_status(grpc_op *op, int grpc_code, const char *msg, grpc_slice *details) {
  *details = grpc_slice_from_copied_string(msg ? msg : "");
  op->op = GRPC_OP_SEND_STATUS_FROM_SERVER;
  op->flags = 0;
  op->reserved = NULL;
  op->data.send_status_from_server.trailing_metadata_count = 0;
  op->data.send_status_from_server.trailing_metadata = NULL;
  op->data.send_status_from_server.status = (grpc_status_code)grpc_code;
  op->data.send_status_from_server.status_details = details;
}

int64_t mq_grpc_deadline_ms(gpr_timespec deadline) {
  if (deadline.tv_sec == INT64_MAX || deadline.clock_type == GPR_TIMESPAN)
    return 0;
  gpr_timespec left = gpr_time_sub(deadline, gpr_now(deadline.clock_type));
  int64_t left_ms = left.tv_sec * 1000 + left.tv_nsec / 1000000;
  if (left.tv_sec < 0)
    left_ms = 0;
  int64_t ms = mq_clock_mono_ms() + left_ms;
  return ms > 0 ? ms : 1;
}
