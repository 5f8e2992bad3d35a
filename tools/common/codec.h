/* Conversions between protobuf-c messages and gRPC byte buffers, gRPC status
 * code names, and the monotonic clock the tools measure with.
 *
 * The gRPC C core moves messages as grpc_byte_buffer (a list of slices);
 * protobuf-c packs into and unpacks from flat memory. These helpers do the
 * one copy each direction needs and nothing else. */
#ifndef MQ_TOOLS_CODEC_H
#define MQ_TOOLS_CODEC_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <grpc/byte_buffer.h>
#include <grpc/status.h>
#include <protobuf-c/protobuf-c.h>

/* Packs msg into a new byte buffer the caller owns (grpc_byte_buffer_destroy).
 * Returns NULL only when memory runs out. */
grpc_byte_buffer *mq_codec_pack(const ProtobufCMessage *msg);

/* Wraps n raw bytes (copied) into a new byte buffer the caller owns. */
grpc_byte_buffer *mq_codec_raw(const void *data, size_t n);

/* Unpacks bb as a message of type desc into *out (free with
 * protobuf_c_message_free_unpacked). bb is borrowed. Returns 0, or
 * MQ_ECORRUPT when the bytes are not a valid message of that type. */
int mq_codec_unpack(grpc_byte_buffer *bb, const ProtobufCMessageDescriptor *desc,
                    ProtobufCMessage **out);

/* Upper-case name of a gRPC status code ("NOT_FOUND"); codes outside the
 * enum give "UNKNOWN". */
const char *mq_codec_status_name(grpc_status_code code);

/* Number of gRPC status codes (OK .. UNAUTHENTICATED). */
#define MQ_CODEC_NSTATUS 17

/* CLOCK_MONOTONIC in nanoseconds. */
static inline uint64_t mq_mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

#endif
