/* Bytes built by a child process from this process's memory as it was at
 * the fork, and read back in pieces.
 *
 * fork() gives the child a copy-on-write image of the whole process at one
 * instant, so the child can walk data structures the parent goes on
 * changing, with no lock and no copy made in advance: what Redis does for
 * BGSAVE. The parent pays for the fork (copying page tables: a few ms per
 * GB resident) and for the pages it writes while the child lives; then it
 * reads the result at its own pace with mq_forkjob_poll, a bounded number
 * of bytes at a time, so no single step stalls its loop.
 *
 * The child is made by the clone system call, as fork() makes it but
 * without the pthread_atfork handlers, and runs only fn on the thread that
 * forked (the others do not exist there), then writes [u64 length][bytes]
 * to a pipe and _exit()s: no atexit handler, no destructor, and no lock
 * another thread may have held is touched. So fn must not allocate or lock:
 * it appends to a buffer that is reserved (not committed) at the size of
 * the machine's RAM up front, and never grows. The child dies with its
 * parent (PR_SET_PDEATHSIG), and mq_forkjob_free kills one still running.
 *
 * Threads: every call on one thread. */
#ifndef MQ_UTIL_FORKJOB_H
#define MQ_UTIL_FORKJOB_H

#include "util/buf.h"

#include <stddef.h>
#include <stdint.h>

struct mq_forkjob;

/* Runs in the child: appends the bytes to out. Nonzero (or out->err) is a
 * failure, reported to the parent as MQ_EIO. */
typedef int (*mq_forkjob_fn)(void *arg, struct mq_buf *out);

/* Forks the child. The bytes will come with `room` spare bytes in front of
 * them (for a header the caller adds without copying). MQ_EIO (with errno
 * kept) when the pipe or the fork failed. */
int mq_forkjob_start(struct mq_forkjob **out, mq_forkjob_fn fn, void *arg, size_t room);

/* Reads at most max more bytes without blocking. Returns 1 once all came
 * and the child exited cleanly: *data (room + *len bytes, from malloc, now
 * the caller's) holds them at *data + room. 0: not yet. A negative error
 * (MQ_EIO: the child failed or died; MQ_ENOMEM) when it will not finish;
 * the job then only wants mq_forkjob_free. */
int mq_forkjob_poll(struct mq_forkjob *j, size_t max, uint8_t **data, size_t *len);

/* Kills the child if it still runs, reaps it, frees the job. NULL is fine. */
void mq_forkjob_free(struct mq_forkjob *j);

#endif
