/* B+tree of KV records; see btree.h. */
#include "store/btree.h"

#include "store/kv.h"
#include "util/err.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

static uint64_t head_of(const char *k, size_t len) {
  uint8_t b[8] = {0};
  memcpy(b, k, len < 8 ? len : 8);
  uint64_t h = 0;
  for (int i = 0; i < 8; i++)
    h = (h << 8) | b[i];
  return h;
}

/* The search key with its head computed once. */
struct skey {
  const char *k;
  size_t len;
  uint64_t head;
};

/* key <=> the record in slot i of n. */
static int cmp_slot(const struct skey *s, const struct mq_btnode *n, uint32_t i) {
  if (s->head != n->heads[i])
    return s->head < n->heads[i] ? -1 : 1;
  const struct mq_kvrec *r = n->recs[i];
  return mq_kv_keycmp(s->k, s->len, mq_kvrec_key(r), r->key_len);
}

/* Inner node: the child whose range holds the key: the last i >= 1 with
 * recs[i] <= key, else 0. */
static uint32_t inner_child(const struct mq_btnode *n, const struct skey *s) {
  uint32_t lo = 1, hi = n->n;
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo) / 2;
    if (cmp_slot(s, n, mid) >= 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo - 1;
}

/* Leaf: the first slot whose key is >= key (inclusive) or > key. */
static uint32_t leaf_pos(const struct mq_btnode *n, const struct skey *s, bool inclusive) {
  uint32_t lo = 0, hi = n->n;
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo) / 2;
    int c = cmp_slot(s, n, mid);
    if (c > 0 || (c == 0 && !inclusive))
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

static size_t node_size(bool leaf) {
  return sizeof(struct mq_btnode) + (leaf ? 0 : MQ_BT_CAP * sizeof(struct mq_btnode *));
}

static struct mq_btnode *node_new(bool leaf) {
  struct mq_btnode *n = calloc(1, node_size(leaf));
  if (n)
    n->leaf = leaf;
  return n;
}

int mq_btree_init(struct mq_btree *t) {
  memset(t, 0, sizeof *t);
  t->root = node_new(true);
  if (!t->root)
    return MQ_ENOMEM;
  t->height = 1;
  t->mem = node_size(true);
  return 0;
}

static void free_tree(struct mq_btnode *n) {
  if (!n->leaf)
    for (uint32_t i = 0; i < n->n; i++)
      free_tree(n->child[i]);
  free(n);
}

void mq_btree_close(struct mq_btree *t) {
  if (t->root)
    free_tree(t->root);
  memset(t, 0, sizeof *t);
}

static struct skey skey_of(const struct mq_kvrec *r) {
  struct skey s = {mq_kvrec_key(r), r->key_len, head_of(mq_kvrec_key(r), r->key_len)};
  return s;
}

/* How many of the CAP + 1 entries stay on the left when a full node
 * splits with the new one at `pos`. In the middle, as a rule; but keys
 * often come in order (user ids as they are handed out, each run in the
 * range of its leading digits, between keys already there), and a node
 * split in the middle of a run is left half full for good: nothing lands
 * in the part the run has passed. So in a run (the new key in the leaf of
 * the last one inserted, after it or right before it) the new entry ends
 * the left node, which the run goes on filling, and what it has passed
 * stays full on the right. Any split leaves its two nodes CAP + 1 entries
 * between them, so keys at random cannot do worse than half full. */
static uint32_t split_point(uint32_t pos, bool run) {
  uint32_t h = run ? pos + 1 : (MQ_BT_CAP + 1) / 2;
  return h > MQ_BT_CAP ? MQ_BT_CAP : h;
}

/* A run that has filled the end of one leaf reaches the first keys of the
 * next one, the new key (at pos there) right after them: left alone, the
 * run would go on in the next leaf and leave the one it was filling as it
 * is, partly full for good (a run between keys already there crosses them
 * every few keys). So while that leaf has room, the keys before the new
 * one move to its end, the new key after them, and the run goes on filling
 * it. Only between two children of one parent, whose separator moves. */
static bool run_takes_first(struct mq_btree *t, struct mq_btnode *p, uint32_t i, uint32_t pos,
                            const struct skey *s, struct mq_kvrec *r) {
  struct mq_btnode *b = p->child[i], *a = i ? p->child[i - 1] : NULL;
  if (!a || t->last_leaf != a || t->last_pos + 1 != a->n || a->n + pos + 1 > MQ_BT_CAP ||
      pos >= b->n)
    return false;
  memcpy(a->recs + a->n, b->recs, pos * sizeof b->recs[0]);
  memcpy(a->heads + a->n, b->heads, pos * sizeof b->heads[0]);
  a->n += pos;
  a->recs[a->n] = r;
  a->heads[a->n] = s->head;
  t->last_leaf = a;
  t->last_pos = a->n++;
  b->n -= pos;
  memmove(b->recs, b->recs + pos, b->n * sizeof b->recs[0]);
  memmove(b->heads, b->heads + pos, b->n * sizeof b->heads[0]);
  p->recs[i] = b->recs[0];
  p->heads[i] = b->heads[0];
  return true;
}

int mq_btree_insert(struct mq_btree *t, struct mq_kvrec *r) {
  struct skey s = skey_of(r);
  struct mq_btnode *path[MQ_BT_MAX_DEPTH];
  uint32_t idx[MQ_BT_MAX_DEPTH];
  int d = 0;
  struct mq_btnode *node = t->root;
  while (!node->leaf) {
    assert(d < MQ_BT_MAX_DEPTH);
    uint32_t i = inner_child(node, &s);
    path[d] = node;
    idx[d] = i;
    d++;
    node = node->child[i];
  }
  struct mq_btnode *leaf = node;
  uint32_t pos = leaf_pos(leaf, &s, true);
  bool run = leaf == t->last_leaf && pos >= t->last_pos;
  if (pos > 0 && d > 0 && run_takes_first(t, path[d - 1], idx[d - 1], pos, &s, r))
    return 0;

  if (leaf->n < MQ_BT_CAP) {
    memmove(leaf->recs + pos + 1, leaf->recs + pos, (leaf->n - pos) * sizeof leaf->recs[0]);
    memmove(leaf->heads + pos + 1, leaf->heads + pos, (leaf->n - pos) * sizeof leaf->heads[0]);
    leaf->recs[pos] = r;
    leaf->heads[pos] = s.head;
    leaf->n++;
    t->last_leaf = leaf;
    t->last_pos = pos;
    return 0;
  }

  /* Splits ahead: the leaf, each full ancestor above it, and a new root if
   * they are all full. Allocate them all first so failure changes nothing. */
  int inner_needed = 0;
  int j = d - 1;
  while (j >= 0 && path[j]->n == MQ_BT_CAP) {
    inner_needed++;
    j--;
  }
  if (j < 0)
    inner_needed++;
  assert(inner_needed < MQ_BT_MAX_DEPTH);
  struct mq_btnode *spare[MQ_BT_MAX_DEPTH + 1];
  int nspare = 0;
  spare[nspare++] = node_new(true);
  for (int k = 0; k < inner_needed; k++)
    spare[nspare++] = node_new(false);
  for (int k = 0; k < nspare; k++) {
    if (!spare[k]) {
      for (int m = 0; m < nspare; m++)
        free(spare[m]);
      return MQ_ENOMEM;
    }
  }
  int next_spare = 0;

  /* leaf split: CAP + 1 records shared between leaf and right */
  struct mq_kvrec *tr[MQ_BT_CAP + 1];
  uint64_t th[MQ_BT_CAP + 1];
  memcpy(tr, leaf->recs, pos * sizeof tr[0]);
  memcpy(th, leaf->heads, pos * sizeof th[0]);
  tr[pos] = r;
  th[pos] = s.head;
  memcpy(tr + pos + 1, leaf->recs + pos, (MQ_BT_CAP - pos) * sizeof tr[0]);
  memcpy(th + pos + 1, leaf->heads + pos, (MQ_BT_CAP - pos) * sizeof th[0]);
  uint32_t h = split_point(pos, run);
  struct mq_btnode *right = spare[next_spare++];
  t->mem += node_size(true);
  memcpy(leaf->recs, tr, h * sizeof tr[0]);
  memcpy(leaf->heads, th, h * sizeof th[0]);
  leaf->n = h;
  right->n = MQ_BT_CAP + 1 - h;
  memcpy(right->recs, tr + h, right->n * sizeof tr[0]);
  memcpy(right->heads, th + h, right->n * sizeof th[0]);
  right->next = leaf->next;
  if (right->next)
    right->next->prev = right;
  right->prev = leaf;
  leaf->next = right;
  t->last_leaf = pos < h ? leaf : right;
  t->last_pos = pos < h ? pos : pos - h;

  struct mq_kvrec *sep = right->recs[0];
  uint64_t sep_head = right->heads[0];
  struct mq_btnode *new_child = right;
  for (int level = d - 1;; level--) {
    if (level < 0) {
      struct mq_btnode *root = spare[next_spare++];
      t->mem += node_size(false);
      root->n = 2;
      root->child[0] = t->root;
      root->child[1] = new_child;
      root->recs[1] = sep;
      root->heads[1] = sep_head;
      t->root = root;
      t->height++;
      break;
    }
    struct mq_btnode *p = path[level];
    uint32_t at = idx[level] + 1;
    if (p->n < MQ_BT_CAP) {
      uint32_t move = p->n - at;
      memmove(p->child + at + 1, p->child + at, move * sizeof p->child[0]);
      memmove(p->recs + at + 1, p->recs + at, move * sizeof p->recs[0]);
      memmove(p->heads + at + 1, p->heads + at, move * sizeof p->heads[0]);
      p->child[at] = new_child;
      p->recs[at] = sep;
      p->heads[at] = sep_head;
      p->n++;
      break;
    }
    /* inner split: CAP + 1 children, the separator of the middle one moves up */
    struct mq_btnode *tc[MQ_BT_CAP + 1];
    memcpy(tc, p->child, at * sizeof tc[0]);
    memcpy(tr, p->recs, at * sizeof tr[0]);
    memcpy(th, p->heads, at * sizeof th[0]);
    tc[at] = new_child;
    tr[at] = sep;
    th[at] = sep_head;
    memcpy(tc + at + 1, p->child + at, (MQ_BT_CAP - at) * sizeof tc[0]);
    memcpy(tr + at + 1, p->recs + at, (MQ_BT_CAP - at) * sizeof tr[0]);
    memcpy(th + at + 1, p->heads + at, (MQ_BT_CAP - at) * sizeof th[0]);
    struct mq_btnode *pr = spare[next_spare++];
    t->mem += node_size(false);
    h = split_point(at, run);
    p->n = h;
    memcpy(p->child, tc, h * sizeof tc[0]);
    memcpy(p->recs, tr, h * sizeof tr[0]);
    memcpy(p->heads, th, h * sizeof th[0]);
    pr->n = MQ_BT_CAP + 1 - h;
    memcpy(pr->child, tc + h, pr->n * sizeof tc[0]);
    memcpy(pr->recs, tr + h, pr->n * sizeof tr[0]);
    memcpy(pr->heads, th + h, pr->n * sizeof th[0]);
    sep = tr[h];
    sep_head = th[h];
    new_child = pr;
  }
  assert(next_spare == nspare);
  return 0;
}

static const struct mq_btnode *subtree_first_leaf(const struct mq_btnode *n) {
  while (!n->leaf)
    n = n->child[0];
  return n;
}

void mq_btree_remove(struct mq_btree *t, struct mq_kvrec *r) {
  struct skey s = skey_of(r);
  struct mq_btnode *path[MQ_BT_MAX_DEPTH];
  uint32_t idx[MQ_BT_MAX_DEPTH];
  int d = 0;
  struct mq_btnode *node = t->root;
  while (!node->leaf) {
    uint32_t i = inner_child(node, &s);
    path[d] = node;
    idx[d] = i;
    d++;
    node = node->child[i];
  }
  uint32_t pos = leaf_pos(node, &s, true);
  assert(pos < node->n && node->recs[pos] == r);
  t->last_leaf = NULL;
  memmove(node->recs + pos, node->recs + pos + 1, (node->n - pos - 1) * sizeof node->recs[0]);
  memmove(node->heads + pos, node->heads + pos + 1, (node->n - pos - 1) * sizeof node->heads[0]);
  node->n--;

  /* Drop emptied nodes upward; the last leaf stays even when empty. */
  int level = d;
  while (node->n == 0 && level > 0 && !(node->leaf && !node->prev && !node->next)) {
    struct mq_btnode *p = path[level - 1];
    uint32_t i = idx[level - 1];
    if (node->leaf) {
      if (node->prev)
        node->prev->next = node->next;
      if (node->next)
        node->next->prev = node->prev;
    }
    t->mem -= node_size(node->leaf);
    free(node);
    uint32_t move = p->n - i - 1;
    memmove(p->child + i, p->child + i + 1, move * sizeof p->child[0]);
    memmove(p->recs + i, p->recs + i + 1, move * sizeof p->recs[0]);
    memmove(p->heads + i, p->heads + i + 1, move * sizeof p->heads[0]);
    p->n--;
    node = p;
    level--;
  }
  while (!t->root->leaf && t->root->n == 1) {
    struct mq_btnode *old = t->root;
    t->root = old->child[0];
    t->mem -= node_size(false);
    free(old);
    t->height--;
  }

  /* r may have been the separator of an ancestor (only if it was first in
   * its leaf): walk down again and point that separator at the new first
   * record of its subtree. */
  if (pos != 0)
    return;
  node = t->root;
  while (!node->leaf) {
    uint32_t i = inner_child(node, &s);
    if (i >= 1 && node->recs[i] == r) {
      const struct mq_btnode *first = subtree_first_leaf(node->child[i]);
      assert(first->n > 0);
      node->recs[i] = first->recs[0];
      node->heads[i] = first->heads[0];
    }
    node = node->child[i];
  }
}

void mq_btree_first(const struct mq_btree *t, struct mq_btiter *it) {
  const struct mq_btnode *leaf = subtree_first_leaf(t->root);
  it->leaf = leaf->n ? leaf : NULL;
  it->i = 0;
}

void mq_btree_seek(const struct mq_btree *t, const char *key, size_t len, bool inclusive,
                   struct mq_btiter *it) {
  struct skey s = {key, len, head_of(key, len)};
  const struct mq_btnode *node = t->root;
  while (!node->leaf)
    node = node->child[inner_child(node, &s)];
  uint32_t pos = leaf_pos(node, &s, inclusive);
  /* past this leaf's end: the answer is the next non-empty leaf's first */
  while (node && pos >= node->n) {
    node = node->next;
    pos = 0;
  }
  it->leaf = node;
  it->i = pos;
}
