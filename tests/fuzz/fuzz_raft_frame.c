/* Fuzz target: peer frames stepped into live Raft groups
 * (mq_raft_host_receive, then mq_raft_step), interleaved with ticks,
 * proposals and reads on node A of raft_node.h. The promise checked is
 * core/raft.h's: nothing a peer sends trips an assertion or breaks the
 * node's own bookkeeping (fz_drain() checks applied <= commit <= last
 * after every operation); a Byzantine peer may make it do wrong things,
 * not crash. */
#include "fuzz/fuzz.h"
#include "fuzz/raft_node.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct mq_raft_host h;
  fz_start(&h, FZ_A);
  struct mq_reader rd;
  mq_reader_init(&rd, data, size);
  uint64_t reads = 0;
  while (fz_op(&h, &rd, &reads))
    mq_raft_host_batches_clear(&h); /* what A sends goes nowhere */
  mq_raft_host_close(&h);
  return 0;
}
