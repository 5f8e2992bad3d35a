/* Installing a snapshot a leader sent, away from the core loop.
 *
 * Decoding a shard's snapshot takes about 0.6 s per million keys; done in
 * the loop it would hold every shard of the agent that long (heartbeats
 * unanswered, leaderships lost, requests waiting). The loop instead takes
 * the snapshot's bytes from the core (mq_raft_snapshot_take) and hands them
 * to a job that decodes them on a thread of its own into a state the shard
 * does not use yet (mq_sm_image_decode). Meanwhile the group goes on: the
 * entries it commits after the snapshot are kept here, in order, and
 * applied once the loop has swapped the decoded state in; until then the
 * shard's applied index stays where it was, so nothing waits on a state it
 * does not have (reads wait for the applied index, readiness reports the
 * shard behind, no snapshot is built from it). The state it replaces is
 * freed by a thread as well.
 *
 * Without threads (a simulator running many nodes in one deterministic
 * process) a job decodes when it starts, from bytes the core keeps, and
 * the loop installs it at once, as the ready batch asks.
 *
 * Thread: every function here runs on the loop thread; the job's thread
 * touches only the job's bytes and the image it makes. */
#ifndef MQ_CLUSTER_INSTALL_H
#define MQ_CLUSTER_INSTALL_H

#include "core/raft.h"
#include "store/sm.h"
#include "util/buf.h"

#include <stdbool.h>
#include <stdint.h>

struct mq_loop_io;
struct mq_install; /* opaque */

/* Threads freeing replaced states, per node (mq_install_end). */
struct mq_reaper {
  struct mq_reap *head;
};

/* Starts decoding snap (whose allocation `block`, from
 * mq_raft_snapshot_take, the job now owns) for sm. With threaded false it
 * decodes here and now, and block may be NULL (snap's bytes are read only
 * during the call). io->wake is called when a thread is done. 0 or
 * MQ_ENOMEM (block is freed then). */
int mq_install_start(struct mq_install **out, struct mq_loop_io *io, bool threaded,
                     const struct mq_sm *sm, const struct mq_raft_snapshot *snap, void *block);

uint64_t mq_install_index(const struct mq_install *j);
uint64_t mq_install_term(const struct mq_install *j);
size_t mq_install_bytes(const struct mq_install *j);

/* Keeps a committed entry (index above the snapshot's, in order) to apply
 * once installed. 0 or MQ_ENOMEM. */
int mq_install_keep(struct mq_install *j, const struct mq_raft_entry *e);

/* True once decoding ended; *rc then says how (0, or MQ_ECORRUPT or
 * MQ_ENOMEM as mq_sm_restore would). ms: how long it took. */
bool mq_install_done(struct mq_install *j, int *rc, int64_t *ms);

/* After mq_install_done with rc 0: swaps the decoded state into sm. */
void mq_install_swap(struct mq_install *j, struct mq_sm *sm);
bool mq_install_swapped(const struct mq_install *j);

/* After the swap: passes the kept entries to fn in order, a slice per
 * call (at least 512, and twice what was kept since the last call), so a
 * backlog does not hold the loop either. Returns how many are left. */
size_t mq_install_apply_kept(struct mq_install *j,
                             void (*fn)(void *arg, const struct mq_raft_entry *e), void *arg);
size_t mq_install_kept(const struct mq_install *j);

/* Ends a job (waits for its thread if it still decodes: a replica dropped
 * or a newer snapshot mid-way) and frees it; the state a swap replaced and
 * a decoded state never swapped in go to a thread that frees them
 * (joined by mq_reaper_poll), or are freed here when small or unthreaded. */
void mq_install_end(struct mq_install *j, struct mq_reaper *rp);

/* Joins the threads that finished freeing; with wait, all of them (at
 * shutdown). */
void mq_reaper_poll(struct mq_reaper *rp, bool wait);

#endif
