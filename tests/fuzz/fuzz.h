/* What every fuzz target of tests/fuzz shares.
 *
 * A target is one function, LLVMFuzzerTestOneInput(), that hands the bytes
 * to one decoder and checks what the decoder promises beyond not crashing
 * (mostly: what it accepts encodes and decodes to the same thing). Built
 * with -DMQ_FUZZ=ON it links libFuzzer (tests/fuzz/run.sh); in every other
 * build it links replay.c instead, and ctest replays the committed corpus,
 * crash regressions included, under whatever sanitizers that build has. */
#ifndef MQ_TESTS_FUZZ_H
#define MQ_TESTS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A broken promise: say which and abort, which libFuzzer reports as a
 * crash and saves the input of. */
#define FUZZ_CHECK(cond)                                                                           \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      fprintf(stderr, "%s:%d: fuzz check failed: %s\n", __FILE__, __LINE__, #cond);                \
      abort();                                                                                     \
    }                                                                                              \
  } while (0)

#endif
