/* Planted bugs, for proving that the simulator's checker has teeth.
 *
 * A build with -DMQ_RAFT_BUG=ON -DMQ_RAFT_BUG_ID=N compiles exactly one of
 * these known-wrong behaviours into mq_core; tests/raft/check-bugs.sh
 * builds each one and expects raft-sim to fail. Normal builds define none.
 *   1 commit a previous-term entry by counting replicas (breaks §5.4.2)
 *   2 allow a membership change before the leader committed in its term
 *   3 a restarted node keeps its old incarnation (forgets its vote)
 *   4 a snapshot install keeps the conflicting log suffix (breaks §7)
 *   5 an entry is handed to the state machine twice
 *   6 a group is rebuilt from its survivors when that is not provably
 *     lossless (mq_raft_recovery_lossless() always says yes) */
#ifndef MQ_CORE_BUGS_H
#define MQ_CORE_BUGS_H

#ifndef MQ_RAFT_BUG_ID
#define MQ_RAFT_BUG_ID 0
#endif
#define MQ_BUG(n) (MQ_RAFT_BUG_ID == (n))

#endif
