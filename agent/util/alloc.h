/* Which malloc the agent runs on.
 *
 * The agent links mimalloc (Debian's libmimalloc2.0) when the build allows
 * it (cmake -DMQ_MIMALLOC=ON, the default, and no sanitizer, which brings
 * its own malloc). Linked ahead of libc, mimalloc's malloc and free serve
 * the whole process, gRPC included. The reason is measured: the Raft log
 * and the watch history allocate in one order and free in the same order
 * thousands of entries later, which sends glibc's malloc down its slow
 * paths (perf: 8.6% of all CPU in _int_malloc, _int_free and unlink_chunk
 * during the put benchmark); with mimalloc the three agents spend 7% less
 * CPU per put. */
#ifndef MQ_UTIL_ALLOC_H
#define MQ_UTIL_ALLOC_H

#include <stdbool.h>

/* "mimalloc 2.0.9", or "the C library's malloc". */
const char *mq_alloc_name(void);
/* False when mimalloc is linked but malloc() is not served by it (another
 * allocator was preloaded, or link order changed): worth a warning. */
bool mq_alloc_as_built(void);

#endif
