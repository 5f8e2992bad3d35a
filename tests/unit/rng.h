/* The PRNG of the randomized unit tests (xorshift64): one seed drives every
 * random choice, and a test that fails prints the seed that reproduces it
 * (STYLE.md, TigerBeetle). Set rng_state to a non-zero seed first. */
#ifndef MQ_TESTS_RNG_H
#define MQ_TESTS_RNG_H

#include <stddef.h>
#include <stdint.h>

static uint64_t rng_state;

static inline uint64_t rnd(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

/* Flips one random bit of p[0..n), n > 0. (Draw once per statement: the
 * order of two rnd() in one expression is unspecified, so a seed would not
 * reproduce across compilers and sanitizer builds.) */
static inline void rnd_flip(uint8_t *p, size_t n) {
  size_t at = rnd() % n;
  p[at] ^= (uint8_t)(1u << (rnd() % 8));
}

#endif
