/* The in-memory Raft log of one group: a window of entries after the last
 * snapshot point, each with a copy of its bytes. Also the small helpers
 * about members and configurations that every other file uses.
 *
 * The copies live in chunks of l->chunk bytes (one of its own for a larger
 * payload), filled in index order and mapped from the system directly
 * (util/pages.h): the log is compacted an eighth at a time, so its memory
 * is freed in runs, and with one allocation per payload the last window of
 * a burst stayed resident after the log was compacted (the allocator
 * keeps what it freed until it allocates near it again). A chunk goes when
 * compaction passes `last`, the highest index whose payload it holds; a
 * truncated payload stays in its chunk until then. One emptied chunk is
 * kept as the spare, so a log under steady writes maps nothing. */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "util/err.h"
#include "util/pages.h"

#define CHUNK_MIN (4 * 1024)
#define CHUNK_MAX (64 * 1024)

struct rlog_chunk {
  struct rlog_chunk *next; /* newer */
  size_t size;             /* mapped, this header included */
  size_t used;
  uint64_t last;
  bool heap; /* from malloc: the system refused a mapping */
};

/* A process may hold only so many mappings (vm.max_map_count), which
 * thousands of busy groups could reach: then the heap. */
static void *block_alloc(size_t size, bool *heap) {
  void *p = mq_pages_alloc(size);
  *heap = !p;
  return p ? p : malloc(size);
}

static void block_free(void *p, size_t size, bool heap) {
  if (heap)
    free(p);
  else
    mq_pages_free(p, size);
}

static void chunk_free(struct rlog *l, struct rlog_chunk *c) {
  l->mapped -= c->size;
  block_free(c, c->size, c->heap);
}

static void ents_free(struct rlog *l) {
  block_free(l->ents, l->cap * sizeof(*l->ents), l->ents_heap);
  l->ents = NULL;
  l->head = l->cap = 0;
}

/* Room for len bytes of the payload of entry `index`, or NULL. Payloads
 * start 8-byte aligned, as a decoder reading one in place may need. */
static uint8_t *chunk_take(struct rlog *l, size_t len, uint64_t index) {
  struct rlog_chunk *c = l->newest;
  if (c) c->used = (c->used + 7) & ~(size_t)7;
  if (!c || c->used > c->size || c->size - c->used < len) {
    size_t size = mq_pages_size(sizeof(*c) + len);
    if (size < l->chunk) size = l->chunk;
    if (size == l->chunk && l->spare) {
      c = l->spare;
      l->spare = NULL;
    } else {
      bool heap;
      c = block_alloc(size, &heap);
      if (!c) return NULL;
      c->size = size;
      c->heap = heap;
      l->mapped += size;
    }
    c->next = NULL;
    c->used = sizeof(*c);
    c->last = 0;
    if (l->newest)
      l->newest->next = c;
    else
      l->oldest = c;
    l->newest = c;
  }
  uint8_t *p = (uint8_t *)c + c->used;
  c->used += len;
  if (index > c->last) c->last = index; /* below it after a truncation */
  return p;
}

/* Gives back the chunks whose payloads are all at or below index i (every
 * chunk when the log holds no entry). Chunks are in the order they were
 * filled, and `last` only grows along it except after a truncation, where
 * a chunk waits for the one before it: late, never early. */
static void chunks_release(struct rlog *l, uint64_t i) {
  struct rlog_chunk *c;
  while ((c = l->oldest) && (l->n == 0 || c->last <= i)) {
    l->oldest = c->next;
    if (!l->oldest) l->newest = NULL;
    if (l->n && !l->spare && c->size == l->chunk)
      l->spare = c;
    else
      chunk_free(l, c);
  }
  if (l->n == 0 && l->spare) {
    chunk_free(l, l->spare);
    l->spare = NULL;
  }
}

void rlog_init(struct rlog *l, uint64_t snapshot_bytes) {
  memset(l, 0, sizeof(*l));
  l->changed_from = UINT64_MAX;
  uint64_t chunk = snapshot_bytes ? snapshot_bytes / 16 : CHUNK_MAX;
  chunk = chunk < CHUNK_MIN ? CHUNK_MIN : chunk > CHUNK_MAX ? CHUNK_MAX : chunk;
  l->chunk = mq_pages_size((size_t)chunk);
}

void rlog_close(struct rlog *l) {
  l->n = 0;
  chunks_release(l, UINT64_MAX);
  ents_free(l);
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
    } else { /* mapped too, for the reason the chunks are */
      size_t cap = l->cap ? l->cap * 2 : 128; /* 4 KiB */
      bool heap;
      struct mq_raft_entry *e = block_alloc(cap * sizeof(*e), &heap);
      if (!e) return MQ_ENOMEM;
      if (l->n) memcpy(e, l->ents + l->head, l->n * sizeof(*e));
      ents_free(l); /* the entries stay counted in l->n */
      l->ents = e;
      l->ents_heap = heap;
      l->cap = cap;
    }
  }
  uint8_t *copy = NULL;
  if (len) {
    copy = chunk_take(l, len, rlog_last(l) + 1);
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
    l->n--;
  }
  if (l->n == 0) chunks_release(l, i);
  mark(l, i);
}

void rlog_compact(struct rlog *l, uint64_t i, uint64_t term) {
  assert(i >= l->snap_index);
  uint64_t drop = i - l->snap_index; /* entries snap_index+1 .. i */
  if (drop > l->n) drop = l->n;      /* i past the end: everything goes */
  for (uint64_t k = 0; k < drop; k++) l->bytes -= l->ents[l->head + k].len;
  l->head += drop;
  l->n -= drop;
  chunks_release(l, i);
  if (l->n == 0) /* nothing left: give the array back too */
    ents_free(l);
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
