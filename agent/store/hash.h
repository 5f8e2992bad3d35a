/* Hashing for the store: a fast keyed hash for the in-memory hash tables,
 * and FNV-1a 64 for the snapshot checksum and the state digest, whose values
 * must not depend on the platform or the process. Internal to agent/store. */
#ifndef MQ_STORE_HASH_H
#define MQ_STORE_HASH_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define MQ_FNV64_INIT 0xcbf29ce484222325ULL

/* FNV-1a 64 of n bytes, continuing from h (start with MQ_FNV64_INIT). */
static inline uint64_t mq_fnv64(uint64_t h, const void *p, size_t n) {
  const uint8_t *s = p;
  for (size_t i = 0; i < n; i++) {
    h ^= s[i];
    h *= 0x100000001b3ULL;
  }
  return h;
}

/* A 64-bit finaliser with full avalanche (the splitmix64 output function),
 * so that sums of mixed values make an order-independent digest. */
static inline uint64_t mq_mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

/* Hash of a key for the hash tables: eight bytes per step, multiply and
 * rotate, then the finaliser. Not for anything that leaves the process. */
static inline uint64_t mq_hash_bytes(const void *p, size_t n) {
  const uint8_t *s = p;
  uint64_t h = 0x9e3779b97f4a7c15ULL ^ ((uint64_t)n * 0xc2b2ae3d27d4eb4fULL);
  while (n >= 8) {
    uint64_t w;
    memcpy(&w, s, 8);
    h = (h ^ (w * 0x87c37b91114253d5ULL)) * 0x4cf5ad432745937fULL;
    h = (h << 29) | (h >> 35);
    s += 8;
    n -= 8;
  }
  uint64_t w = 0;
  for (size_t i = 0; i < n; i++)
    w |= (uint64_t)s[i] << (8 * i);
  h ^= w * 0x87c37b91114253d5ULL;
  return mq_mix64(h);
}

#endif
