/* The KV map: hash table, B+tree and expiry heap over one set of records.
 * See kv.h for why these three structures. */
#include "store/kv.h"

#include "store/hash.h"
#include "util/err.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

/* Memory a record accounts for: the node, its key and its value. The
 * tables, tree and heap that find it are mq_kvmap_index_bytes(). */
static uint64_t rec_bytes(const struct mq_kvrec *r) {
  return MQ_KVREC_HEAD + r->key_len + r->value_len;
}

static uint64_t rec_hash(const struct mq_kvrec *r) { return mq_hash_bytes(r->key, r->key_len); }

uint64_t mq_kvmap_index_bytes(const struct mq_kvmap *m) {
  return (m->cap + m->old_cap) * sizeof(struct mq_kvslot) + m->index.mem +
         m->heap_cap * sizeof(struct mq_kvrec *);
}

int mq_kv_keycmp(const char *a, size_t al, const char *b, size_t bl) {
  size_t n = al < bl ? al : bl;
  int c = n ? memcmp(a, b, n) : 0;
  if (c)
    return c;
  return (al > bl) - (al < bl);
}

uint64_t mq_kvmap_hash(const char *key, size_t len) { return mq_hash_bytes(key, len); }

int mq_kvmap_init(struct mq_kvmap *m) {
  memset(m, 0, sizeof *m);
  m->cap = 16;
  m->slots = calloc(m->cap, sizeof *m->slots);
  if (!m->slots)
    return MQ_ENOMEM;
  if (mq_btree_init(&m->index)) {
    free(m->slots);
    return MQ_ENOMEM;
  }
  return 0;
}

void mq_kvrec_free(struct mq_kvrec *r) {
  if (r) {
    free(r->value);
    free(r);
  }
}

void mq_kvmap_close(struct mq_kvmap *m) {
  if (!m->slots)
    return;
  /* Every record is in the ordered index exactly once (a growing table can
   * hold one in both of its tables). */
  struct mq_btiter it;
  mq_btree_first(&m->index, &it);
  for (struct mq_kvrec *r; (r = mq_btiter_rec(&it)) != NULL; mq_btiter_next(&it))
    mq_kvrec_free(r);
  mq_btree_close(&m->index);
  free(m->slots);
  free(m->old);
  free(m->heap);
  memset(m, 0, sizeof *m);
}

/* ---- hash table --------------------------------------------------------- */

_Static_assert(sizeof(uintptr_t) == sizeof(uint64_t), "slots pack a pointer into 64 bits");

#define PTR_MASK ((UINT64_C(1) << MQ_KV_PTR_BITS) - 1)

static struct mq_kvslot slot_make(uint64_t hash, const struct mq_kvrec *r) {
  return (struct mq_kvslot){(hash & ~PTR_MASK) | (uintptr_t)r};
}

static struct mq_kvrec *slot_rec(struct mq_kvslot s) {
  return (struct mq_kvrec *)(uintptr_t)(s.bits & PTR_MASK);
}

/* Whether the slot's tag agrees with hash (a record under it may match). */
static bool slot_tagged(struct mq_kvslot s, uint64_t hash) {
  return ((s.bits ^ hash) & ~PTR_MASK) == 0;
}

/* The slot of an unlinked record in the old table of a growing map. */
static struct mq_kvrec tombstone;

static struct mq_kvrec *table_find(const struct mq_kvslot *slots, size_t cap, const char *key,
                                   size_t len, uint64_t hash) {
  size_t mask = cap - 1;
  for (size_t i = hash & mask; slots[i].bits; i = (i + 1) & mask) {
    if (!slot_tagged(slots[i], hash))
      continue;
    struct mq_kvrec *r = slot_rec(slots[i]);
    if (r != &tombstone && r->key_len == len && memcmp(mq_kvrec_key(r), key, len) == 0)
      return r;
  }
  return NULL;
}

struct mq_kvrec *mq_kvmap_find(const struct mq_kvmap *m, const char *key, size_t len,
                               uint64_t hash) {
  struct mq_kvrec *r = table_find(m->slots, m->cap, key, len, hash);
  if (!r && m->old)
    r = table_find(m->old, m->old_cap, key, len, hash);
  return r;
}

static void slot_put(struct mq_kvslot *slots, size_t cap, uint64_t hash, struct mq_kvrec *r) {
  size_t mask = cap - 1;
  size_t i = hash & mask;
  while (slots[i].bits)
    i = (i + 1) & mask;
  slots[i] = slot_make(hash, r);
}

/* Copies up to `slots` more slots of the old table; frees it at the end. */
static void rehash_step(struct mq_kvmap *m, size_t slots) {
  if (!m->old)
    return;
  size_t left = m->old_cap - m->old_next;
  size_t end = slots < left ? m->old_next + slots : m->old_cap;
  for (size_t i = m->old_next; i < end; i++) {
    struct mq_kvrec *r = slot_rec(m->old[i]);
    if (r && r != &tombstone)
      slot_put(m->slots, m->cap, rec_hash(r), r);
  }
  m->old_next = end;
  if (end == m->old_cap) {
    free(m->old);
    m->old = NULL;
    m->old_cap = m->old_next = 0;
  }
}

/* Starts copying into a table of cap slots (twice the size to grow, a
 * smaller one to shrink); inserts and unlinks then copy a step each. */
static int table_resize(struct mq_kvmap *m, size_t cap) {
  rehash_step(m, SIZE_MAX); /* never reached with a step per insert; kept safe */
  struct mq_kvslot *slots = calloc(cap, sizeof *slots);
  if (!slots)
    return MQ_ENOMEM;
  m->old = m->slots;
  m->old_cap = m->cap;
  m->old_next = 0;
  m->slots = slots;
  m->cap = cap;
  return 0;
}

/* Removes r from one open-addressing table, if it is there. */
static void slots_remove(struct mq_kvslot *slots, size_t cap, const struct mq_kvrec *r,
                         uint64_t hash) {
  size_t mask = cap - 1;
  size_t i = hash & mask;
  while (slot_rec(slots[i]) != r) {
    if (!slots[i].bits)
      return;
    i = (i + 1) & mask;
  }
  /* Backward-shift deletion: move later members of the probe run into the
   * hole when their home slot is not between the hole and them. */
  for (size_t j = (i + 1) & mask; slots[j].bits; j = (j + 1) & mask) {
    size_t home = rec_hash(slot_rec(slots[j])) & mask;
    bool movable = (i <= j) ? (home <= i || home > j) : (home <= i && home > j);
    if (movable) {
      slots[i] = slots[j];
      i = j;
    }
  }
  slots[i].bits = 0;
}

/* In the old table a slot only becomes a tombstone: shifting would move
 * records the copy has not reached below its cursor. */
static void old_remove(struct mq_kvmap *m, const struct mq_kvrec *r, uint64_t hash) {
  size_t mask = m->old_cap - 1;
  for (size_t i = hash & mask; m->old[i].bits; i = (i + 1) & mask)
    if (slot_rec(m->old[i]) == r) {
      m->old[i] = slot_make(0, &tombstone);
      return;
    }
}

static void table_remove(struct mq_kvmap *m, const struct mq_kvrec *r) {
  uint64_t hash = rec_hash(r);
  if (m->old)
    old_remove(m, r, hash);
  slots_remove(m->slots, m->cap, r, hash);
}

bool mq_kvmap_consistent(const struct mq_kvmap *m) {
  size_t live = 0;
  for (size_t i = 0; i < m->cap; i++) {
    const struct mq_kvrec *r = slot_rec(m->slots[i]);
    if (r && (r == &tombstone || !slot_tagged(m->slots[i], rec_hash(r))))
      return false;
    live += r != NULL;
  }
  for (size_t i = m->old ? m->old_next : 0; m->old && i < m->old_cap; i++) {
    const struct mq_kvrec *r = slot_rec(m->old[i]);
    if (r && r != &tombstone) {
      if (!slot_tagged(m->old[i], rec_hash(r)))
        return false;
      live++;
    }
  }
  return live == m->count;
}

/* ---- records ------------------------------------------------------------ */

int mq_kvmap_insert(struct mq_kvmap *m, const char *key, size_t len, uint64_t hash,
                    struct mq_kvrec **out) {
  rehash_step(m, MQ_KV_REHASH_STEP);
  if ((m->count + 1) * 4 > m->cap * 3 && table_resize(m, m->cap * 2))
    return MQ_ENOMEM;
  if (len > UINT32_MAX)
    return MQ_ENOMEM;
  /* Never less than the struct, so no access through r can pass the end. */
  size_t size = MQ_KVREC_HEAD + len;
  if (size < sizeof(struct mq_kvrec))
    size = sizeof(struct mq_kvrec);
  struct mq_kvrec *r = malloc(size);
  if (!r)
    return MQ_ENOMEM;
  if ((uintptr_t)r & ~PTR_MASK) { /* an address no slot can hold */
    free(r);
    return MQ_ENOMEM;
  }
  memset(r, 0, MQ_KVREC_HEAD);
  r->key_len = (uint32_t)len;
  r->heap_idx = MQ_KV_NO_HEAP;
  if (len)
    memcpy(r->key, key, len);
  if (mq_btree_insert(&m->index, r)) {
    free(r);
    return MQ_ENOMEM;
  }
  slot_put(m->slots, m->cap, hash, r);
  m->count++;
  m->bytes += rec_bytes(r);
  *out = r;
  return 0;
}

/* ---- expiry heap -------------------------------------------------------- */

static bool heap_less(const struct mq_kvrec *a, const struct mq_kvrec *b) {
  if (a->expires_at != b->expires_at)
    return a->expires_at < b->expires_at;
  return mq_kv_keycmp(mq_kvrec_key(a), a->key_len, mq_kvrec_key(b), b->key_len) < 0;
}

static void heap_set(struct mq_kvmap *m, size_t i, struct mq_kvrec *r) {
  m->heap[i] = r;
  r->heap_idx = (uint32_t)i;
}

static void sift_up(struct mq_kvmap *m, size_t i) {
  struct mq_kvrec *r = m->heap[i];
  while (i > 0) {
    size_t p = (i - 1) / 2;
    if (!heap_less(r, m->heap[p]))
      break;
    heap_set(m, i, m->heap[p]);
    i = p;
  }
  heap_set(m, i, r);
}

static void sift_down(struct mq_kvmap *m, size_t i) {
  struct mq_kvrec *r = m->heap[i];
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= m->heap_len)
      break;
    if (c + 1 < m->heap_len && heap_less(m->heap[c + 1], m->heap[c]))
      c++;
    if (!heap_less(m->heap[c], r))
      break;
    heap_set(m, i, m->heap[c]);
    i = c;
  }
  heap_set(m, i, r);
}

static void heap_remove(struct mq_kvmap *m, struct mq_kvrec *r) {
  size_t i = r->heap_idx;
  assert(i < m->heap_len && m->heap[i] == r);
  r->heap_idx = MQ_KV_NO_HEAP;
  m->heap_len--;
  if (i == m->heap_len)
    return;
  heap_set(m, i, m->heap[m->heap_len]);
  sift_down(m, i);
  sift_up(m, i);
}

/* Halves the heap's array once it is under a quarter full (it doubles when
 * full, so a size on the edge does not flap). */
static void heap_shrink(struct mq_kvmap *m) {
  if (m->heap_cap <= 64 || m->heap_len * 4 >= m->heap_cap)
    return;
  struct mq_kvrec **h = realloc(m->heap, m->heap_cap / 2 * sizeof *h);
  if (h) {
    m->heap = h;
    m->heap_cap /= 2;
  }
}

int mq_kvmap_set_expiry(struct mq_kvmap *m, struct mq_kvrec *r, int64_t expires_at) {
  if (expires_at == 0) {
    if (r->heap_idx != MQ_KV_NO_HEAP) {
      heap_remove(m, r);
      heap_shrink(m);
    }
    r->expires_at = 0;
    return 0;
  }
  if (r->heap_idx != MQ_KV_NO_HEAP) {
    r->expires_at = expires_at;
    sift_down(m, r->heap_idx);
    sift_up(m, r->heap_idx);
    return 0;
  }
  if (m->heap_len == m->heap_cap) {
    size_t cap = m->heap_cap ? m->heap_cap * 2 : 64;
    if (cap >= MQ_KV_NO_HEAP)
      return MQ_ENOMEM;
    struct mq_kvrec **h = realloc(m->heap, cap * sizeof *h);
    if (!h)
      return MQ_ENOMEM;
    m->heap = h;
    m->heap_cap = cap;
  }
  r->expires_at = expires_at;
  m->heap[m->heap_len] = r;
  r->heap_idx = (uint32_t)m->heap_len;
  m->heap_len++;
  sift_up(m, r->heap_idx);
  return 0;
}

size_t mq_kvmap_expired(const struct mq_kvmap *m, int64_t now_ms, size_t max, mq_kvrec_fn fn,
                        void *arg) {
  if (max == 0 || m->heap_len == 0 || m->heap[0]->expires_at > now_ms)
    return 0;
  /* Best-first walk of the heap without popping it: a small side heap of
   * candidate positions; a popped position offers its two children. */
  size_t cap = 2 * (max < m->heap_len ? max : m->heap_len) + 2;
  size_t *cand = malloc(cap * sizeof *cand);
  if (!cand)
    return 0;
  size_t n = 0, passed = 0;
  cand[n++] = 0;
  while (n > 0 && passed < max) {
    size_t top = cand[0];
    cand[0] = cand[--n];
    for (size_t i = 0;;) { /* sift down in the side heap */
      size_t c = 2 * i + 1;
      if (c >= n)
        break;
      if (c + 1 < n && heap_less(m->heap[cand[c + 1]], m->heap[cand[c]]))
        c++;
      if (!heap_less(m->heap[cand[c]], m->heap[cand[i]]))
        break;
      size_t t = cand[i];
      cand[i] = cand[c];
      cand[c] = t;
      i = c;
    }
    const struct mq_kvrec *r = m->heap[top];
    if (r->expires_at > now_ms)
      break;
    passed++;
    if (fn(arg, r))
      break;
    for (size_t c = 2 * top + 1; c <= 2 * top + 2 && c < m->heap_len; c++) {
      assert(n < cap);
      size_t i = n++;
      cand[i] = c;
      while (i > 0 && heap_less(m->heap[cand[i]], m->heap[cand[(i - 1) / 2]])) {
        size_t p = (i - 1) / 2, t = cand[i];
        cand[i] = cand[p];
        cand[p] = t;
        i = p;
      }
    }
  }
  free(cand);
  return passed;
}

/* A table under 1/16 full shrinks to one about 3/8 full: a map that held
 * many keys does not keep their slots once they are gone. The copy takes
 * cap / MQ_KV_REHASH_STEP steps, fewer than the count / 16 unlinks that can
 * follow, so a map that drains to empty ends with the small table alone. */
static void table_shrink(struct mq_kvmap *m) {
  if (m->old || m->cap <= 16 || m->count * 16 >= m->cap)
    return;
  size_t cap = 16;
  while (cap * 3 < m->count * 8)
    cap *= 2;
  (void)table_resize(m, cap); /* out of memory: keep the big table */
}

void mq_kvmap_unlink(struct mq_kvmap *m, struct mq_kvrec *r) {
  mq_btree_remove(&m->index, r);
  rehash_step(m, MQ_KV_REHASH_STEP);
  table_remove(m, r);
  if (r->heap_idx != MQ_KV_NO_HEAP) {
    heap_remove(m, r);
    heap_shrink(m);
  }
  m->count--;
  m->bytes -= rec_bytes(r);
  table_shrink(m);
}

uint8_t *mq_kvmap_swap_value(struct mq_kvmap *m, struct mq_kvrec *r, uint8_t *value, size_t len) {
  uint8_t *old = r->value;
  m->bytes -= r->value_len;
  m->bytes += len;
  r->value = value;
  r->value_len = (uint32_t)len;
  return old;
}
