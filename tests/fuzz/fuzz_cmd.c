/* Fuzz target: a store command, the data of a shard's Raft log entry
 * (store/cmd.h). Whatever decodes must encode to bytes that decode to the
 * same command again, and applying it to a state machine that holds a key
 * and a topic entry must give a result, never a crash (mq_sm_apply re-checks
 * what a hostile leader could have put in the log). */
#include "fuzz/fuzz.h"
#include "store/cmd.h"
#include "store/sm.h"
#include "util/err.h"

#include <string.h>

static void apply_to_a_shard(const struct mq_cmd *c) {
  struct mq_store_limits l;
  mq_store_limits_default(&l);
  struct mq_sm *sm;
  FUZZ_CHECK(mq_sm_new(&sm, 0, &l) == 0);
  struct mq_apply_result res;
  struct mq_cmd put = {.type = MQ_CMD_PUT,
                       .now_ms = 1700000000000,
                       .ingest_partition = -1,
                       .key = "user:1:a",
                       .key_len = 8,
                       .value = (const uint8_t *)"v",
                       .value_len = 1,
                       .ttl_ms = 60000};
  mq_sm_apply(sm, 1, &put, &res);
  FUZZ_CHECK(res.status.code == 0);
  struct mq_cmd produce = {.type = MQ_CMD_PRODUCE,
                           .now_ms = 1700000000000,
                           .ingest_partition = -1,
                           .topic = "t",
                           .topic_len = 1,
                           .key = "k",
                           .key_len = 1};
  mq_sm_apply(sm, 2, &produce, &res);
  FUZZ_CHECK(res.status.code == 0);
  mq_sm_apply(sm, 3, c, &res);
  FUZZ_CHECK(res.status.code <= 0);
  mq_sm_free(sm);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct mq_cmd c;
  int rc = mq_cmd_decode(data, size, &c);
  FUZZ_CHECK(rc == 0 || rc == MQ_ECORRUPT);
  if (rc)
    return 0;
  struct mq_buf b1, b2;
  struct mq_cmd c2;
  mq_buf_init(&b1);
  mq_buf_init(&b2);
  FUZZ_CHECK(mq_cmd_encode(&c, &b1) == 0);
  FUZZ_CHECK(mq_cmd_decode(b1.data, b1.len, &c2) == 0);
  FUZZ_CHECK(mq_cmd_encode(&c2, &b2) == 0);
  FUZZ_CHECK(b1.len == b2.len && memcmp(b1.data, b2.data, b1.len) == 0);
  mq_buf_close(&b1);
  mq_buf_close(&b2);
  apply_to_a_shard(&c);
  return 0;
}
