/* Memory mapped from the system directly, for blocks that are freed in
 * large runs and must be given back when they are (the Raft log's payload
 * chunks, core/log.c).
 *
 * Why not malloc: the agent's allocator keeps the pages it freed and hands
 * them back to the system only after a delay, and then only when the same
 * thread allocates again near them. A log that was long during a burst of
 * writes is compacted once the burst ends, and what it freed stayed
 * resident for good (bench/memory-vs-redis.sh: 62 bytes per key of 392 at
 * 300,000 keys, the last megabyte of log of each shard). munmap gives it
 * back at once. */
#ifndef MQ_UTIL_PAGES_H
#define MQ_UTIL_PAGES_H

#include <stddef.h>

/* size rounded up to whole pages, what mq_pages_alloc() maps for it. */
size_t mq_pages_size(size_t size);
/* Zeroed memory of mq_pages_size(size) bytes, or NULL. */
void *mq_pages_alloc(size_t size);
/* Gives back p, from mq_pages_alloc(size) with the same size. */
void mq_pages_free(void *p, size_t size);

#endif
