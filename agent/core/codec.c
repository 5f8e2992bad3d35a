/* Wire form of Raft messages, for the peer transport. Every integer is a
 * LEB128 varint except node keys (fixed 8 bytes); entry indices are implied
 * by the message's previous index. Decoding treats the bytes as hostile:
 * lengths and counts are checked against what is left, and nothing read can
 * trip an assertion later (mq_raft_step() validates the rest). */
#include <stdlib.h>
#include <string.h>

#include "core/raft.h"
#include "util/buf.h"
#include "util/err.h"

#define MAX_ENTRIES_PER_MSG (1u << 20)

static void put_member(struct mq_buf *b, struct mq_raft_member m) {
  mq_buf_put_u64(b, m.node);
  mq_buf_put_varint(b, m.inc);
}

static struct mq_raft_member get_member(struct mq_reader *rd) {
  struct mq_raft_member m;
  m.node = mq_get_u64(rd);
  m.inc = mq_get_varint(rd);
  return m;
}

void mq_raft_msg_encode(struct mq_buf *b, const struct mq_raft_msg *m) {
  mq_buf_put_u8(b, (uint8_t)m->type);
  mq_buf_put_varint(b, m->flags);
  mq_buf_put_varint(b, m->group);
  put_member(b, m->from);
  put_member(b, m->to);
  mq_buf_put_varint(b, m->term);
  mq_buf_put_varint(b, m->index);
  mq_buf_put_varint(b, m->log_term);
  mq_buf_put_varint(b, m->commit);
  mq_buf_put_varint(b, m->hint);
  mq_buf_put_varint(b, m->ctx);
  mq_buf_put_varint(b, m->snap_index);
  mq_buf_put_varint(b, m->snap_term);
  mq_buf_put_varint(b, m->n_entries);
  for (size_t i = 0; i < m->n_entries; i++) {
    const struct mq_raft_entry *e = &m->entries[i];
    mq_buf_put_varint(b, e->term);
    mq_buf_put_u8(b, (uint8_t)e->type);
    mq_buf_put_bytes(b, e->data, e->len);
  }
  mq_buf_put_bytes(b, m->data, m->len);
}

int mq_raft_msg_decode(struct mq_reader *rd, struct mq_raft_msg *m,
                       struct mq_raft_entry **ents, size_t *ents_cap) {
  memset(m, 0, sizeof(*m));
  m->type = mq_get_u8(rd);
  uint64_t flags = mq_get_varint(rd);
  m->group = mq_get_varint(rd);
  m->from = get_member(rd);
  m->to = get_member(rd);
  m->term = mq_get_varint(rd);
  m->index = mq_get_varint(rd);
  m->log_term = mq_get_varint(rd);
  m->commit = mq_get_varint(rd);
  m->hint = mq_get_varint(rd);
  m->ctx = mq_get_varint(rd);
  m->snap_index = mq_get_varint(rd);
  m->snap_term = mq_get_varint(rd);
  uint64_t n = mq_get_varint(rd);
  if (rd->err || flags > 0xffff || m->type < MQ_RAFT_MSG_APP ||
      m->type > MQ_RAFT_MSG_MAX_TYPE)
    return MQ_ECORRUPT;
  m->flags = (uint32_t)flags;
  /* every entry takes at least 3 bytes */
  if (n > MAX_ENTRIES_PER_MSG || n > mq_reader_left(rd) / 3 ||
      m->index > UINT64_MAX - n)
    return MQ_ECORRUPT;
  if (n > *ents_cap) {
    size_t cap = *ents_cap ? *ents_cap : 16;
    while (cap < n) cap *= 2;
    struct mq_raft_entry *p = realloc(*ents, cap * sizeof(*p));
    if (!p) return MQ_ENOMEM;
    *ents = p;
    *ents_cap = cap;
  }
  for (uint64_t i = 0; i < n; i++) {
    struct mq_raft_entry *e = &(*ents)[i];
    size_t len;
    e->term = mq_get_varint(rd);
    e->type = mq_get_u8(rd);
    e->index = m->index + 1 + i;
    const uint8_t *p = mq_get_bytes(rd, &len, UINT32_MAX);
    if (rd->err) return MQ_ECORRUPT;
    e->len = (uint32_t)len;
    e->data = (uint8_t *)p; /* borrowed; the core copies what it keeps */
  }
  m->entries = n ? *ents : NULL;
  m->n_entries = (size_t)n;
  size_t len;
  const uint8_t *p = mq_get_bytes(rd, &len, SIZE_MAX);
  if (rd->err) return MQ_ECORRUPT;
  m->data = len ? p : NULL;
  m->len = len;
  return 0;
}
