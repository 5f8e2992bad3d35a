/* Planted bugs, for proving that the cluster simulator's checks have teeth
 * (like core/bugs.h for the Raft simulator).
 *
 * A build with -DMQ_CLUSTER_BUG=ON -DMQ_CLUSTER_BUG_ID=N compiles exactly one
 * of these known-wrong behaviours into mq_cluster; tests/cluster-sim/
 * check-bugs.sh builds each one and expects cluster-sim to fail. Normal
 * builds define none.
 *   1 a write retried after a leader change gets a new request id (applied
 *     twice)
 *   2 an agent restarted with empty memory founds shards that exist
 *   3 resuming a watch from a snapshot skips the first event after its mark
 *   4 a member placement no longer wants is removed before its replacement
 *     is a voter, from as few voters as the replication factor
 *   5 a replica a stale message made is never dropped
 *   6 with discovery, a candidate founds on votes that are not locked (they
 *     can still move to another candidate) */
#ifndef MQ_CLUSTER_BUGS_H
#define MQ_CLUSTER_BUGS_H

#ifndef MQ_CLUSTER_BUG_ID
#define MQ_CLUSTER_BUG_ID 0
#endif
#define MQ_CLUSTER_BUG(n) (MQ_CLUSTER_BUG_ID == (n))

#endif
