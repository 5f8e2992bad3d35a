/* Fuzz target: restoring a shard snapshot (mq_sm_restore), as a follower
 * does with the chunks a leader sends. Half the inputs get a correct
 * checksum written over their last 8 bytes, so the fuzzer gets past it to
 * the structure. Promises checked: a refused snapshot leaves the state as
 * it was; an accepted one snapshots again to bytes that restore to the same
 * state (same digest, same bytes). */
#include "fuzz/fuzz.h"
#include "store/hash.h"
#include "store/sm.h"
#include "util/err.h"

#include <stdbool.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0)
    return 0;
  /* the first byte says whether to fix the checksum; the rest is the
   * snapshot */
  bool fix = data[0] & 1;
  size_t len = size - 1;
  uint8_t *snap = malloc(len ? len : 1);
  FUZZ_CHECK(snap);
  memcpy(snap, data + 1, len);
  if (fix && len >= 8) {
    uint64_t h = mq_fnv64(MQ_FNV64_INIT, snap, len - 8);
    for (int i = 0; i < 8; i++)
      snap[len - 8 + i] = (uint8_t)(h >> (8 * i));
  }

  struct mq_store_limits l;
  mq_store_limits_default(&l);
  struct mq_sm *sm, *sm2;
  FUZZ_CHECK(mq_sm_new(&sm, 0, &l) == 0);
  FUZZ_CHECK(mq_sm_new(&sm2, 0, &l) == 0);
  uint64_t empty = mq_sm_digest(sm);
  int rc = mq_sm_restore(sm, snap, len);
  FUZZ_CHECK(rc == 0 || rc == MQ_ECORRUPT || rc == MQ_ENOMEM);
  if (rc) {
    FUZZ_CHECK(mq_sm_digest(sm) == empty && mq_sm_applied_index(sm) == 0);
  } else {
    struct mq_buf b1, b2;
    mq_buf_init(&b1);
    mq_buf_init(&b2);
    FUZZ_CHECK(mq_sm_snapshot(sm, &b1) == 0);
    FUZZ_CHECK(mq_sm_restore(sm2, b1.data, b1.len) == 0);
    FUZZ_CHECK(mq_sm_digest(sm2) == mq_sm_digest(sm));
    FUZZ_CHECK(mq_sm_applied_index(sm2) == mq_sm_applied_index(sm));
    FUZZ_CHECK(mq_sm_snapshot(sm2, &b2) == 0);
    FUZZ_CHECK(b1.len == b2.len && memcmp(b1.data, b2.data, b1.len) == 0);
    mq_buf_close(&b1);
    mq_buf_close(&b2);
  }
  mq_sm_free(sm);
  mq_sm_free(sm2);
  free(snap);
  return 0;
}
