/* Growable byte buffers and a bounds-checked reader, for the binary formats
 * the agent defines itself (Raft log commands, snapshots, peer frames).
 * Integers are little-endian fixed width or unsigned LEB128 varints.
 *
 * Writers record the first allocation failure in b->err and turn later
 * writes into no-ops, so a caller can encode a whole record and check once.
 * Readers record the first out-of-bounds read in r->err the same way;
 * nothing a remote party sends can make a reader read past its end. */
#ifndef MQ_UTIL_BUF_H
#define MQ_UTIL_BUF_H

#include <stddef.h>
#include <stdint.h>

struct mq_buf {
  uint8_t *data;
  size_t len;
  size_t cap;
  int err; /* 0 or MQ_ENOMEM */
};

void mq_buf_init(struct mq_buf *b);
void mq_buf_close(struct mq_buf *b);
void mq_buf_reset(struct mq_buf *b); /* len = 0, err = 0, keeps memory */
/* Ensures room for n more bytes; returns 0 or MQ_ENOMEM. */
int mq_buf_reserve(struct mq_buf *b, size_t n);
void mq_buf_put(struct mq_buf *b, const void *p, size_t n);
void mq_buf_put_u8(struct mq_buf *b, uint8_t v);
void mq_buf_put_u32(struct mq_buf *b, uint32_t v);
void mq_buf_put_u64(struct mq_buf *b, uint64_t v);
void mq_buf_put_varint(struct mq_buf *b, uint64_t v);
/* A varint length followed by the bytes. */
void mq_buf_put_bytes(struct mq_buf *b, const void *p, size_t n);
/* Hands the bytes to the caller (free() them); the buffer becomes empty. */
uint8_t *mq_buf_steal(struct mq_buf *b, size_t *len);

struct mq_reader {
  const uint8_t *p;
  const uint8_t *end;
  int err; /* 0 or MQ_ECORRUPT */
};

void mq_reader_init(struct mq_reader *r, const void *data, size_t len);
size_t mq_reader_left(const struct mq_reader *r);
uint8_t mq_get_u8(struct mq_reader *r);
uint32_t mq_get_u32(struct mq_reader *r);
uint64_t mq_get_u64(struct mq_reader *r);
uint64_t mq_get_varint(struct mq_reader *r);
/* Borrows n bytes from the reader's memory; NULL (and r->err) past the end. */
const uint8_t *mq_get_raw(struct mq_reader *r, size_t n);
/* A varint length then the bytes, borrowed. Lengths over max are corrupt. */
const uint8_t *mq_get_bytes(struct mq_reader *r, size_t *len, size_t max);

#endif
