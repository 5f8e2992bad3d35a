/* The KV map of one shard: records keyed by byte strings, reachable three
 * ways (internal to agent/store):
 *
 *  - an open-addressing hash table (linear probing, backward-shift delete)
 *    of 8-byte slots, each a record pointer tagged with the top 16 bits of
 *    its key's hash, for O(1) point lookup: Get and the update path of Put
 *    touch one or two cache lines of the table and the record itself, and
 *    a probe reads another record only when the 16 bits agree (1 in 65,536
 *    for a key that is not there);
 *  - a B+tree of record pointers in byte-wise key order (btree.h), for
 *    Scan: seek is O(log n) with about one cache miss per level and the
 *    walk follows the leaf chain, so a page of k keys costs O(log n + k).
 *    Only inserts and deletes of keys touch it; updates of existing keys go
 *    through the hash table alone;
 *  - a binary min-heap of the records that have a TTL, ordered by
 *    (expires_at, key), for the expiry reaper: next deadline O(1),
 *    insert/update/remove O(log n) through the index stored in the record.
 *
 * The map owns its records and their values. Layout (hash table order, tree
 * shape) never affects anything observable: iteration is in key order and
 * the digest is order-independent. */
#ifndef MQ_STORE_KV_H
#define MQ_STORE_KV_H

#include "store/btree.h"
#include "store/types.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MQ_KV_NO_HEAP UINT32_MAX

/* A record is allocated as MQ_KVREC_HEAD + key_len bytes: the key starts
 * right after heap_idx, not at sizeof, so a 17-byte key fits an 80-byte
 * allocation. It keeps no hash: the map computes it again from the key
 * when a record moves between slots. */
struct mq_kvrec {
  int64_t create_revision;
  int64_t mod_revision;
  int64_t version;
  int64_t expires_at; /* 0: never */
  uint8_t *value;     /* owned; NULL when value_len == 0 */
  uint32_t value_len; /* at most MQ_CMD_MAX_VALUE */
  uint32_t key_len;
  uint32_t heap_idx; /* position in the expiry heap, or MQ_KV_NO_HEAP */
  char key[];        /* key_len bytes, not NUL-terminated */
};
#define MQ_KVREC_HEAD offsetof(struct mq_kvrec, key)

static inline const char *mq_kvrec_key(const struct mq_kvrec *r) { return r->key; }

/* Fills kv with a view of r (borrowed). */
static inline void mq_kvrec_view(const struct mq_kvrec *r, int32_t shard, struct mq_kv *kv) {
  kv->key = mq_kvrec_key(r);
  kv->key_len = r->key_len;
  kv->value = r->value;
  kv->value_len = r->value_len;
  kv->create_revision = r->create_revision;
  kv->mod_revision = r->mod_revision;
  kv->version = r->version;
  kv->expires_at_ms = r->expires_at;
  kv->shard = shard;
}

/* A record is live at now_ms unless its TTL has passed. */
static inline bool mq_kvrec_live(const struct mq_kvrec *r, int64_t now_ms) {
  return r->expires_at == 0 || r->expires_at > now_ms;
}

/* A record's address in the low MQ_KV_PTR_BITS bits (user-space addresses
 * on the 64-bit targets fit; an insert checks), the top bits of its key's
 * hash above them; 0: empty. */
struct mq_kvslot {
  uint64_t bits;
};
#define MQ_KV_PTR_BITS 48

/* Growth is incremental: when the table passes 3/4 full, a table twice
 * the size takes every insert, and each insert or unlink first copies the
 * next MQ_KV_REHASH_STEP slots of the old table into it. Until the copy
 * has passed the end, lookups that miss in the new table look in the old
 * one, which no longer changes except that an unlinked record's slot there
 * becomes a tombstone (so no lookup can reach a freed record). One insert
 * never pays for more than a step, whatever the size of the map. */
#define MQ_KV_REHASH_STEP 128

struct mq_kvmap {
  struct mq_kvslot *slots;
  size_t cap; /* power of two */
  size_t count;
  struct mq_kvslot *old; /* the table being copied from, or NULL */
  size_t old_cap;
  size_t old_next; /* slots of old below this are copied */
  struct mq_btree index;
  struct mq_kvrec **heap;
  size_t heap_len;
  size_t heap_cap;
  uint64_t bytes; /* records: headers, keys and values */
};

int mq_kvmap_init(struct mq_kvmap *m);
void mq_kvmap_close(struct mq_kvmap *m); /* frees every record */

uint64_t mq_kvmap_hash(const char *key, size_t len);
struct mq_kvrec *mq_kvmap_find(const struct mq_kvmap *m, const char *key, size_t len,
                               uint64_t hash);

/* Creates a record for a key that is not in the map (value empty, revisions
 * 0, no expiry) and links it in. Returns 0 or MQ_ENOMEM (map unchanged). */
int mq_kvmap_insert(struct mq_kvmap *m, const char *key, size_t len, uint64_t hash,
                    struct mq_kvrec **out);

/* Unlinks r from the hash table, the ordered index and the heap. The caller
 * owns r afterwards and frees it with mq_kvrec_free(). */
void mq_kvmap_unlink(struct mq_kvmap *m, struct mq_kvrec *r);
void mq_kvrec_free(struct mq_kvrec *r);

/* Replaces r's value with `value` (ownership transferred) and returns the
 * old one (ownership to the caller). */
uint8_t *mq_kvmap_swap_value(struct mq_kvmap *m, struct mq_kvrec *r, uint8_t *value, size_t len);

/* Sets r's expiry (0: none), keeping the heap in order. Returns 0 or
 * MQ_ENOMEM (then r's expiry is unchanged). */
int mq_kvmap_set_expiry(struct mq_kvmap *m, struct mq_kvrec *r, int64_t expires_at);

/* In-order iteration: mq_kvmap_first()/mq_kvmap_seek() position it, then
 * mq_btiter_rec() (NULL at the end) and mq_btiter_next(). */
static inline void mq_kvmap_first(const struct mq_kvmap *m, struct mq_btiter *it) {
  mq_btree_first(&m->index, it);
}
/* At the first record whose key is >= key (inclusive) or > key (!inclusive). */
static inline void mq_kvmap_seek(const struct mq_kvmap *m, const char *key, size_t len,
                                 bool inclusive, struct mq_btiter *it) {
  mq_btree_seek(&m->index, key, len, inclusive, it);
}

/* Records with expires_at <= now_ms in (expires_at, key) order, at most max:
 * calls fn for each until it returns non-zero. Returns how many were passed
 * (0 also when the scratch allocation fails). Does not modify the map. */
typedef int (*mq_kvrec_fn)(void *arg, const struct mq_kvrec *r);
size_t mq_kvmap_expired(const struct mq_kvmap *m, int64_t now_ms, size_t max, mq_kvrec_fn fn,
                        void *arg);

static inline int64_t mq_kvmap_next_deadline(const struct mq_kvmap *m) {
  return m->heap_len ? m->heap[0]->expires_at : 0;
}

/* Memory of what finds the records: hash table(s), tree, expiry heap. */
uint64_t mq_kvmap_index_bytes(const struct mq_kvmap *m);

/* For tests: every record is in the tables once (counting the old table's
 * part not copied yet), under the hash it was filed with. O(capacity). */
bool mq_kvmap_consistent(const struct mq_kvmap *m);

/* Byte-wise order of two keys (a shorter prefix first). */
int mq_kv_keycmp(const char *a, size_t al, const char *b, size_t bl);

#endif
