/* The ordered index of the KV map (internal to agent/store): a B+tree of
 * record pointers in byte-wise key order, for Scan's seek and in-order walk.
 *
 * Why a B+tree: a seek costs about one cache miss per level (4 levels at 1M
 * keys with 32-way nodes), where a skip list pays one per hop (25-30 at 1M
 * keys, measured 2.3 us per seek against about 0.5 us here). Each slot caches
 * the first 8 key bytes big-endian ("head"), so binary search inside a node
 * mostly compares integers and dereferences a record only on equal heads.
 *
 * Keys inserted in order (a run) fill their nodes: a full leaf splits right
 * after the new key instead of in the middle (btree.c).
 *
 * Deletion removes empty nodes but does not merge underfull ones: simpler,
 * and a churn-heavy workload keeps at worst sparse leaves, never a wrong
 * order. Separator slots of inner nodes point at the first record of their
 * subtree and are repaired when that record is removed. */
#ifndef MQ_STORE_BTREE_H
#define MQ_STORE_BTREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MQ_BT_CAP 32
#define MQ_BT_MAX_DEPTH 40

struct mq_kvrec;

struct mq_btnode {
  uint32_t n; /* leaf: records; inner: children */
  uint32_t leaf;
  struct mq_btnode *prev, *next; /* leaf chain */
  uint64_t heads[MQ_BT_CAP];
  struct mq_kvrec *recs[MQ_BT_CAP]; /* leaf: records; inner: recs[i] is the
                                       first record under child[i], i >= 1 */
  struct mq_btnode *child[];        /* inner only: MQ_BT_CAP */
};

struct mq_btree {
  struct mq_btnode *root;
  uint32_t height; /* 1: the root is a leaf */
  uint64_t mem;
  /* Where the last insert went (a leaf, a slot), for where a full leaf
   * splits (btree.c); compared, never followed. NULL after a remove. */
  const struct mq_btnode *last_leaf;
  uint32_t last_pos;
};

struct mq_btiter {
  const struct mq_btnode *leaf;
  uint32_t i;
};

int mq_btree_init(struct mq_btree *t);
void mq_btree_close(struct mq_btree *t); /* frees the nodes, not the records */
/* Inserts r, whose key is not in the tree. Returns 0 or MQ_ENOMEM (tree
 * unchanged). */
int mq_btree_insert(struct mq_btree *t, struct mq_kvrec *r);
/* Removes r, which is in the tree. Never fails. */
void mq_btree_remove(struct mq_btree *t, struct mq_kvrec *r);

void mq_btree_first(const struct mq_btree *t, struct mq_btiter *it);
/* Positions it at the first record with key >= key (inclusive) or > key. */
void mq_btree_seek(const struct mq_btree *t, const char *key, size_t len, bool inclusive,
                   struct mq_btiter *it);

static inline struct mq_kvrec *mq_btiter_rec(const struct mq_btiter *it) {
  return it->leaf ? it->leaf->recs[it->i] : NULL;
}

static inline void mq_btiter_next(struct mq_btiter *it) {
  if (++it->i >= it->leaf->n) {
    it->leaf = it->leaf->next;
    it->i = 0;
  }
}

#endif
