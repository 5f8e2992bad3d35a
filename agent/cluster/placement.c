/* Rendezvous hashing for shard placement. */
#include "cluster/placement.h"

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
