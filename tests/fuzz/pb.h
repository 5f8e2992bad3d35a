/* Checks on protobuf-c messages shared by the fuzz targets that read
 * protobuf (fuzz_api.c, fuzz_peer.c). */
#ifndef MQ_TESTS_FUZZ_PB_H
#define MQ_TESTS_FUZZ_PB_H

#include "fuzz/fuzz.h"

#include <protobuf-c/protobuf-c.h>

#include <stdbool.h>
#include <string.h>

/* True if m or a message inside it kept fields its type does not have.
 * protobuf-c keeps them as raw bytes, accepts field number 0 when its tag
 * is written in two bytes, and then packs a tag that it refuses to unpack:
 * that is protobuf-c's, and the agent never packs a message it unpacked. */
static inline bool fuzz_pb_has_unknown(const ProtobufCMessage *m) {
  if (m->n_unknown_fields)
    return true;
  const ProtobufCMessageDescriptor *d = m->descriptor;
  for (unsigned i = 0; i < d->n_fields; i++) {
    const ProtobufCFieldDescriptor *f = &d->fields[i];
    if (f->type != PROTOBUF_C_TYPE_MESSAGE)
      continue;
    const char *base = (const char *)m;
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
      size_t n = *(const size_t *)(base + f->quantifier_offset);
      ProtobufCMessage *const *sub = *(ProtobufCMessage *const *const *)(base + f->offset);
      for (size_t k = 0; k < n; k++)
        if (sub[k] && fuzz_pb_has_unknown(sub[k]))
          return true;
    } else {
      const ProtobufCMessage *sub = *(const ProtobufCMessage *const *)(base + f->offset);
      if (sub &&
          (!(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) ||
           *(const uint32_t *)(base + f->quantifier_offset) == f->id) &&
          fuzz_pb_has_unknown(sub))
        return true;
    }
  }
  return false;
}

/* What was unpacked packs, and unpacks again to the same bytes (unless it
 * kept unknown fields, above). */
static inline void fuzz_pb_check_repack(const ProtobufCMessage *m) {
  if (fuzz_pb_has_unknown(m))
    return;
  size_t n = protobuf_c_message_get_packed_size(m);
  uint8_t *b1 = malloc(n + 1), *b2 = malloc(n + 1);
  FUZZ_CHECK(b1 && b2 && protobuf_c_message_pack(m, b1) == n);
  ProtobufCMessage *m2 = protobuf_c_message_unpack(m->descriptor, NULL, n, b1);
  FUZZ_CHECK(m2 && protobuf_c_message_get_packed_size(m2) == n);
  FUZZ_CHECK(protobuf_c_message_pack(m2, b2) == n && memcmp(b1, b2, n) == 0);
  protobuf_c_message_free_unpacked(m2, NULL);
  free(b1);
  free(b2);
}

#endif
