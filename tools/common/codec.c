/* protobuf-c <-> grpc_byte_buffer conversion and status code names. */
#include "codec.h"

#include <grpc/byte_buffer_reader.h>
#include <grpc/slice.h>

#include "util/err.h"

grpc_byte_buffer *mq_codec_pack(const ProtobufCMessage *msg) {
  size_t n = protobuf_c_message_get_packed_size(msg);
  grpc_slice s = grpc_slice_malloc(n);
  size_t packed = protobuf_c_message_pack(msg, GRPC_SLICE_START_PTR(s));
  if (packed != n) {
    grpc_slice_unref(s);
    return NULL;
  }
  grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
  grpc_slice_unref(s); /* the buffer holds its own reference */
  return bb;
}

grpc_byte_buffer *mq_codec_raw(const void *data, size_t n) {
  grpc_slice s = grpc_slice_from_copied_buffer(data, n);
  grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
  grpc_slice_unref(s);
  return bb;
}

int mq_codec_unpack(grpc_byte_buffer *bb, const ProtobufCMessageDescriptor *desc,
                    ProtobufCMessage **out) {
  grpc_byte_buffer_reader rd;
  *out = NULL;
  if (!grpc_byte_buffer_reader_init(&rd, bb)) return MQ_ECORRUPT;
  /* readall joins the slices into one; for a single-slice buffer it only
   * takes a reference. */
  grpc_slice s = grpc_byte_buffer_reader_readall(&rd);
  grpc_byte_buffer_reader_destroy(&rd);
  *out = protobuf_c_message_unpack(desc, NULL, GRPC_SLICE_LENGTH(s), GRPC_SLICE_START_PTR(s));
  grpc_slice_unref(s);
  return *out ? 0 : MQ_ECORRUPT;
}

static const char *const status_names[MQ_CODEC_NSTATUS] = {
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
};

const char *mq_codec_status_name(grpc_status_code code) {
  if ((int)code < 0 || (int)code >= MQ_CODEC_NSTATUS) return "UNKNOWN";
  return status_names[code];
}
