/* The Raft node that the raft_frame target drives, and the two peers that
 * corpus_gen.c runs beside it to record real frames.
 *
 * Node A holds three groups: 0 with voters A, B, C; 1 with A alone (it
 * leads at once); 2 with voters A, B and learner C. Snapshots are taken
 * every 8 applied entries, so snapshot messages and compaction happen too.
 * Everything is seeded: the same operations give the same node.
 *
 * An input is a sequence of operations on A, one byte each, the low two
 * bits the kind:
 *   FRAME    a peer frame: bit 2 picks the sender (B or C), then a varint
 *            length and the messages (the frame header is added)
 *   TICK     (byte >> 2) + 1 ticks of every group
 *   PROPOSE  a command to group (byte >> 2) % 3
 *   READ     a ReadIndex round on group (byte >> 2) % 3
 * After each, every ready batch is handled as raft.h says. */
#ifndef MQ_TESTS_FUZZ_RAFT_NODE_H
#define MQ_TESTS_FUZZ_RAFT_NODE_H

#include "core/host.h"

#include <stdbool.h>

enum {
  FZ_A,
  FZ_B,
  FZ_C
};
enum {
  FZ_OP_FRAME,
  FZ_OP_TICK,
  FZ_OP_PROPOSE,
  FZ_OP_READ
};
#define FZ_GROUPS 3

struct mq_raft_member fz_member(int who);
/* Initialises h as node `who` with its groups; aborts on failure. */
void fz_start(struct mq_raft_host *h, int who);
/* Handles every ready batch of every group of h; outgoing messages are left
 * in h's batches. */
void fz_drain(struct mq_raft_host *h);
/* A frame to `to` as bytes: header, then the messages body[0..n). */
void fz_frame(struct mq_buf *b, int from, int to, const uint8_t *body, size_t n);
/* Reads one operation from rd and does it on node A (h), then fz_drain().
 * *reads numbers the ReadIndex rounds. Returns false at the end of the
 * input (or when it ends inside an operation). */
bool fz_op(struct mq_raft_host *h, struct mq_reader *rd, uint64_t *reads);

#endif
