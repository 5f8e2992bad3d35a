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
/* idle: hands the memory the allocator keeps for the calling thread back to
 * the system, and has freed pages decommitted at once from then on
 * (mimalloc: decommit delay 0, mi_collect(true)); !idle: back to the
 * delay it had. mimalloc decommits the pages it freed after a delay, and
 * only when the same thread allocates or frees again, so an agent that
 * went quiet after churn kept them all (bench/churn-floor.sh: 74 MB
 * resident; decommitting at once always gave 36 MB but cost about 15% more
 * CPU per put while the data grew). The core loop calls this when it goes
 * quiet and when it gets busy again (cluster/io.h). An operator's
 * MIMALLOC_DECOMMIT_DELAY is the delay it goes back to. Nothing to do on
 * the C library's malloc. */
void mq_alloc_trim(bool idle);

#endif
