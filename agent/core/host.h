/* Many Raft groups on one node. The host object owns the groups of this
 * node (one per shard), ticks them together, and batches their outgoing
 * messages per destination node, so the transport sends one frame per peer
 * per loop iteration (heartbeats of all groups to a peer ride in that one
 * frame). Frames are bytes: mq_raft_host_receive() takes a frame a peer
 * sent and steps each message into its group.
 *
 * A loop iteration of the owner (the core loop thread):
 *   mq_raft_host_tick(h);                        // on the tick timer
 *   mq_raft_host_receive(h, frame, len);         // per frame from a peer
 *   for (size_t i = 0; i < mq_raft_host_count(h); i++) {
 *     struct mq_raft *r = mq_raft_host_at(h, i);
 *     while (mq_raft_has_ready(r)) {
 *       struct mq_raft_ready rd;
 *       mq_raft_ready(r, &rd);
 *       ... restore rd.snapshot, then
 *       mq_raft_host_send(h, &rd);               // step 3 of raft.h: copies
 *       ... apply rd.committed, serve rd.reads ...
 *       mq_raft_advance(r, &rd);
 *     }
 *   }
 *   for (size_t i = 0; i < mq_raft_host_batches(h); i++) {
 *     mq_raft_host_batch(h, i, &node, &bytes, &len);  // send to node
 *   }
 *   mq_raft_host_batches_clear(h);
 *
 * Node identity: nodes are named by mq_raft_node_key(node id string); the
 * host keeps the names of the keys it was told about so the transport can
 * map a key back to an address (mq_raft_host_name_node()). */
#ifndef MQ_CORE_HOST_H
#define MQ_CORE_HOST_H

#include "core/raft.h"
#include "util/buf.h"

struct mq_raft_host_peer {
  uint64_t node;
  struct mq_buf frame;
  uint32_t count;
};

struct mq_raft_host_group {
  uint64_t id;
  struct mq_raft *r;
};

struct mq_raft_host_name {
  uint64_t node;
  char *name;
};

struct mq_raft_host {
  uint64_t node;
  struct mq_raft_host_group *groups; /* sorted by id */
  size_t n_groups, cap_groups;
  struct mq_raft_host_peer *peers;
  size_t n_peers, cap_peers;
  struct mq_raft_host_name *names;
  size_t n_names, cap_names;
  struct mq_raft_entry *scratch;
  size_t scratch_cap;
  uint64_t dropped; /* messages for groups this host does not have */
};

/* node: mq_raft_node_key() of this node's id. */
void mq_raft_host_init(struct mq_raft_host *h, uint64_t node);
/* Destroys every group. */
void mq_raft_host_close(struct mq_raft_host *h);

/* Records name -> key (copied); MQ_EEXIST if another name has that key. */
int mq_raft_host_name_node(struct mq_raft_host *h, const char *name,
                           uint64_t *node);
/* The name of a key recorded before, or NULL. Borrowed. */
const char *mq_raft_host_node_name(const struct mq_raft_host *h, uint64_t node);

/* Creates group o->group (see mq_raft_create()); MQ_EEXIST if present.
 * o->self.node must be this host's node. The group is owned by the host. */
int mq_raft_host_add(struct mq_raft_host *h, const struct mq_raft_options *o,
                     const struct mq_raft_conf *initial, struct mq_raft **out);
/* Destroys a group; MQ_ENOTFOUND if absent. */
int mq_raft_host_remove(struct mq_raft_host *h, uint64_t group);
struct mq_raft *mq_raft_host_get(const struct mq_raft_host *h, uint64_t group);
size_t mq_raft_host_count(const struct mq_raft_host *h);
struct mq_raft *mq_raft_host_at(const struct mq_raft_host *h, size_t i);

void mq_raft_host_tick(struct mq_raft_host *h);
/* Steps every message of a frame (borrowed) into its group. Returns 0 or
 * MQ_ECORRUPT (messages before the malformed one were stepped); never
 * crashes on any bytes. */
int mq_raft_host_receive(struct mq_raft_host *h, const void *frame, size_t len);
/* Encodes (copies) the messages of a ready batch into per-node frames. */
int mq_raft_host_send(struct mq_raft_host *h, const struct mq_raft_ready *rd);

size_t mq_raft_host_batches(const struct mq_raft_host *h);
/* Frame i (borrowed until mq_raft_host_batches_clear()). */
void mq_raft_host_batch(const struct mq_raft_host *h, size_t i, uint64_t *node,
                        const uint8_t **data, size_t *len);
void mq_raft_host_batches_clear(struct mq_raft_host *h);

#endif
