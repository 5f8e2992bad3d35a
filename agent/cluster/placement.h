/* Placement: which members hold the replicas of a shard (DESIGN.md
 * section 6).
 *
 * mq_placement_pick: the replicas of a shard are the `rf` members with the highest rendezvous
 * (highest-random-weight) score of (shard, node id). Every agent computes
 * the same answer from the same member list, whatever order it learned the
 * members in, and adding or removing one member moves only the shards whose
 * top `rf` it enters or leaves. Pure: no clock, no I/O. */
#ifndef MQ_CLUSTER_PLACEMENT_H
#define MQ_CLUSTER_PLACEMENT_H

#include <stddef.h>
#include <stdint.h>

/* The rendezvous score of a node for a shard (a 64-bit mix of both). */
uint64_t mq_placement_score(int32_t shard, const char *node_id);

/* Picks the replicas of `shard` among n node ids: writes up to rf indexes
 * into out (highest score first; ties broken by node id) and returns how
 * many were written (min(rf, n)). */
size_t mq_placement_pick(int32_t shard, const char *const *node_ids, size_t n, size_t rf,
                         size_t *out);

/* Balanced placement of every shard at once: shard by shard in order, the
 * rf members of highest score that still have room, where room is a fair
 * share: no member holds more than ceil(shards * rf / n) replicas and only
 * as many reach that as the total needs, so every member ends within one
 * replica of even. Still a pure function of the set of ids (not their
 * order), and a member that joins or leaves mostly moves the replicas it
 * gains or loses. out[shard * rf + j] receives the index of the j-th
 * replica (highest score first; rows are rf wide even when n < rf);
 * returns the replicas per shard (min(rf, n)), 0 if n is 0. rf is at most
 * 16. */
size_t mq_placement_table(int32_t shards, const char *const *node_ids, size_t n, size_t rf,
                          size_t *out);

#endif
