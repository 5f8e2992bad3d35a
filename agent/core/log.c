/* The in-memory Raft log of one group: a window of entries after the last
 * snapshot point, each owning a copy of its bytes. Also the small helpers
 * about members and configurations that every other file uses. */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "util/err.h"

void rlog_init(struct rlog *l) {
  memset(l, 0, sizeof(*l));
  l->changed_from = UINT64_MAX;
}

void rlog_close(struct rlog *l) {
  for (size_t i = 0; i < l->n; i++) free(l->ents[l->head + i].data);
  free(l->ents);
  memset(l, 0, sizeof(*l));
}

uint64_t rlog_last(const struct rlog *l) { return l->snap_index + l->n; }

uint64_t rlog_last_term(const struct rlog *l) {
  return l->n ? l->ents[l->head + l->n - 1].term : l->snap_term;
}

struct mq_raft_entry *rlog_at(const struct rlog *l, uint64_t i) {
  if (i <= l->snap_index || i > rlog_last(l)) return NULL;
  return &l->ents[l->head + (i - l->snap_index - 1)];
}

uint64_t rlog_term(const struct rlog *l, uint64_t i) {
  if (i == l->snap_index) return l->snap_term;
  struct mq_raft_entry *e = rlog_at(l, i);
  return e ? e->term : 0;
}

bool rlog_match(const struct rlog *l, uint64_t i, uint64_t term) {
  if (i < l->snap_index || i > rlog_last(l)) return false;
  return rlog_term(l, i) == term;
}

static void mark(struct rlog *l, uint64_t i) {
  if (i < l->changed_from) l->changed_from = i;
}

int rlog_append(struct rlog *l, uint64_t term, uint32_t type, const void *data,
                size_t len) {
  assert(term >= rlog_last_term(l));
  if (l->head + l->n == l->cap) {
    if (l->head > l->cap / 2) { /* slide the window back to the front */
      memmove(l->ents, l->ents + l->head, l->n * sizeof(*l->ents));
      l->head = 0;
    } else {
      size_t cap = l->cap ? l->cap * 2 : 64;
      struct mq_raft_entry *e = realloc(l->ents, cap * sizeof(*e));
      if (!e) return MQ_ENOMEM;
      l->ents = e;
      l->cap = cap;
    }
  }
  uint8_t *copy = NULL;
  if (len) {
    copy = malloc(len);
    if (!copy) return MQ_ENOMEM;
    memcpy(copy, data, len);
  }
  struct mq_raft_entry *e = &l->ents[l->head + l->n];
  e->term = term;
  e->index = rlog_last(l) + 1;
  e->type = type;
  e->len = (uint32_t)len;
  e->data = copy;
  l->bytes += len;
  l->n++;
  mark(l, e->index);
  return 0;
}

void rlog_truncate(struct rlog *l, uint64_t i) {
  assert(i > l->snap_index);
  while (rlog_last(l) >= i) {
    l->bytes -= l->ents[l->head + l->n - 1].len;
    free(l->ents[l->head + l->n - 1].data);
    l->n--;
  }
  mark(l, i);
}

void rlog_compact(struct rlog *l, uint64_t i, uint64_t term) {
  assert(i >= l->snap_index);
  uint64_t drop = i - l->snap_index; /* entries snap_index+1 .. i */
  if (drop > l->n) drop = l->n;      /* i past the end: everything goes */
  for (uint64_t k = 0; k < drop; k++) {
    l->bytes -= l->ents[l->head + k].len;
    free(l->ents[l->head + k].data);
  }
  l->head += drop;
  l->n -= drop;
  if (l->n == 0) { /* nothing left: give the array back too */
    free(l->ents);
    l->ents = NULL;
    l->head = l->cap = 0;
  }
  l->snap_index = i;
  l->snap_term = term;
  mark(l, i);
}

uint64_t rlog_conflict_by_term(const struct rlog *l, uint64_t i,
                               uint64_t term) {
  if (i > rlog_last(l)) i = rlog_last(l);
  while (i > l->snap_index && rlog_term(l, i) > term) i--;
  return i;
}

/* ---- members and configurations ---------------------------------------- */

bool mq_raft_member_eq(struct mq_raft_member a, struct mq_raft_member b) {
  return a.node == b.node && a.inc == b.inc;
}

uint64_t mq_raft_node_key(const char *node_id) {
  uint64_t h = 1469598103934665603ull;
  for (const unsigned char *p = (const unsigned char *)node_id; *p; p++) {
    h ^= *p;
    h *= 1099511628211ull;
  }
  return h ? h : 1;
}

uint64_t mq_raft_incarnation_next(uint64_t highest_seen, uint64_t floor) {
#if MQ_BUG(3)
  /* Planted bug: come back under the old identity, with no memory of the
   * votes cast under it. */
  if (highest_seen) return highest_seen;
#endif
  uint64_t inc = highest_seen + 1;
  return inc > floor ? inc : floor;
}

int mq_raft_conf_find(const struct mq_raft_conf *c, struct mq_raft_member id) {
  for (uint32_t i = 0; i < c->n; i++)
    if (mq_raft_member_eq(c->m[i].id, id)) return (int)i;
  return -1;
}

void mq_raft_conf_encode(struct mq_buf *b, const struct mq_raft_conf *c) {
  mq_buf_put_varint(b, c->n);
  for (uint32_t i = 0; i < c->n; i++) {
    mq_buf_put_u64(b, c->m[i].id.node);
    mq_buf_put_varint(b, c->m[i].id.inc);
    mq_buf_put_u8(b, c->m[i].role);
  }
}

int mq_raft_conf_decode(struct mq_raft_conf *c, const void *data, size_t len) {
  struct mq_reader rd;
  mq_reader_init(&rd, data, len);
  memset(c, 0, sizeof(*c));
  uint64_t n = mq_get_varint(&rd);
  if (rd.err || n > MQ_RAFT_MAX_MEMBERS) return MQ_ECORRUPT;
  c->n = (uint32_t)n;
  for (uint32_t i = 0; i < c->n; i++) {
    c->m[i].id.node = mq_get_u64(&rd);
    c->m[i].id.inc = mq_get_varint(&rd);
    c->m[i].role = mq_get_u8(&rd);
    if (rd.err) return MQ_ECORRUPT;
    if (c->m[i].role != MQ_RAFT_VOTER && c->m[i].role != MQ_RAFT_LEARNER)
      return MQ_ECORRUPT;
    for (uint32_t j = 0; j < i; j++)
      if (mq_raft_member_eq(c->m[j].id, c->m[i].id)) return MQ_ECORRUPT;
  }
  if (mq_reader_left(&rd)) return MQ_ECORRUPT;
  return 0;
}
