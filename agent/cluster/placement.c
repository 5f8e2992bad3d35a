/* Rendezvous hashing for shard placement, alone or bounded to a fair share
 * per member. */
#include "cluster/placement.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* FNV-1a over the node id, then a splitmix64 finaliser mixing in the shard:
 * cheap, stable across platforms and well spread. */
uint64_t mq_placement_score(int32_t shard, const char *node_id) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (const unsigned char *p = (const unsigned char *)node_id; *p; p++) {
    h ^= *p;
    h *= 0x100000001b3ULL;
  }
  uint64_t z = h ^ ((uint64_t)(uint32_t)shard * 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

/* True when candidate a ranks before b. */
static int ranks_before(uint64_t sa, const char *a, uint64_t sb, const char *b) {
  if (sa != sb)
    return sa > sb;
  return strcmp(a, b) < 0;
}

size_t mq_placement_pick(int32_t shard, const char *const *node_ids, size_t n, size_t rf,
                         size_t *out) {
  size_t k = 0;
  uint64_t scores[16];
  if (rf > 16)
    rf = 16;
  for (size_t i = 0; i < n; i++) {
    uint64_t s = mq_placement_score(shard, node_ids[i]);
    /* Insertion into the top-rf list, kept sorted best first. */
    size_t pos = k;
    while (pos > 0 && ranks_before(s, node_ids[i], scores[pos - 1], node_ids[out[pos - 1]]))
      pos--;
    if (pos >= rf)
      continue;
    size_t last = k < rf ? k : rf - 1;
    for (size_t j = last; j > pos; j--) {
      scores[j] = scores[j - 1];
      out[j] = out[j - 1];
    }
    scores[pos] = s;
    out[pos] = i;
    if (k < rf)
      k++;
  }
  return k;
}

struct ranked {
  uint64_t score;
  const char *id;
  size_t index;
};

static int by_rank(const void *pa, const void *pb) {
  const struct ranked *a = pa, *b = pb;
  if (a->score != b->score)
    return a->score < b->score ? 1 : -1;
  return strcmp(a->id, b->id);
}

size_t mq_placement_table(int32_t shards, const char *const *node_ids, size_t n, size_t rf,
                          size_t *out) {
  if (rf > 16)
    rf = 16;
  size_t stride = rf; /* rows keep the requested width */
  if (rf > n)
    rf = n;
  if (!rf || shards <= 0)
    return 0;
  struct ranked *r = malloc(n * sizeof *r);
  size_t *load = calloc(n, sizeof *load);
  if (!r || !load) {
    free(r);
    free(load);
    for (int32_t s = 0; s < shards; s++) /* no memory: plain rendezvous */
      mq_placement_pick(s, node_ids, n, rf, out + (size_t)s * stride);
    return rf;
  }
  size_t total = (size_t)shards * rf, lo = total / n, extra = total % n, at_hi = 0;
  for (int32_t s = 0; s < shards; s++) {
    for (size_t i = 0; i < n; i++)
      r[i] = (struct ranked){mq_placement_score(s, node_ids[i]), node_ids[i], i};
    qsort(r, n, sizeof *r, by_rank);
    size_t *row = out + (size_t)s * stride, got = 0;
    /* first pass within the fair share, then (rarely: the room left is on
     * fewer members than rf) the best of the rest */
    for (int pass = 0; pass < 2 && got < rf; pass++) {
      for (size_t i = 0; i < n && got < rf; i++) {
        size_t m = r[i].index;
        bool taken = false;
        for (size_t j = 0; j < got; j++)
          taken |= row[j] == m;
        size_t room = at_hi < extra ? lo + 1 : lo;
        if (taken || (pass == 0 && load[m] >= room))
          continue;
        row[got++] = m;
        if (++load[m] == lo + 1)
          at_hi++;
      }
    }
  }
  /* The greedy pass can leave a late shard with room on fewer than rf
   * members; then move replicas from the fullest member to the emptiest
   * (ties by id, so every agent picks alike), in the first shard that has
   * the one and not the other, until no two loads differ by two. Each move
   * narrows the spread, so this ends. */
  for (;;) {
    size_t hi = 0, lo_m = 0;
    for (size_t i = 1; i < n; i++) {
      if (load[i] > load[hi] || (load[i] == load[hi] && strcmp(node_ids[i], node_ids[hi]) < 0))
        hi = i;
      if (load[i] < load[lo_m] ||
          (load[i] == load[lo_m] && strcmp(node_ids[i], node_ids[lo_m]) < 0))
        lo_m = i;
    }
    if (load[hi] < load[lo_m] + 2)
      break;
    for (int32_t s = 0; s < shards; s++) {
      size_t *row = out + (size_t)s * stride, at = rf;
      bool has_lo = false;
      for (size_t j = 0; j < rf; j++) {
        if (row[j] == hi)
          at = j;
        has_lo |= row[j] == lo_m;
      }
      if (at < rf && !has_lo) {
        row[at] = lo_m;
        load[hi]--;
        load[lo_m]++;
        break;
      }
    }
  }
  free(r);
  free(load);
  return rf;
}
