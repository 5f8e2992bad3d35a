/* Fuzz target: the websocket subscribe message (feed/subscribe.c), the
 * first thing a feed client sends. Promises checked: 0, MQ_EINVAL or
 * MQ_ENOMEM, an error with a message; an accepted subscription has
 * NUL-terminated strings of the lengths it says, distinct topics and
 * shards, within the limits of feed/internal.h. */
#include "feed/internal.h"
#include "fuzz/fuzz.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > MQ_FEED_MAX_IN) /* the feed refuses larger messages first */
    return 0;
  struct mq_feed_sub sub;
  struct mq_status st;
  mq_status_clear(&st);
  int rc = mq_feed_sub_parse((const char *)data, size, &sub, &st);
  FUZZ_CHECK(rc == 0 || rc == MQ_EINVAL || rc == MQ_ENOMEM);
  if (rc) {
    FUZZ_CHECK(st.code == rc && st.msg[0] != '\0');
    return 0;
  }
  FUZZ_CHECK(!sub.prefix || sub.prefix[sub.prefix_len] == '\0');
  FUZZ_CHECK(sub.n_topics >= 0 && sub.n_topics <= MQ_FEED_MAX_TOPICS);
  for (int i = 0; i < sub.n_topics; i++) {
    FUZZ_CHECK(sub.topics[i][sub.topic_lens[i]] == '\0');
    for (int j = 0; j < i; j++)
      FUZZ_CHECK(sub.topic_lens[i] != sub.topic_lens[j] ||
                 memcmp(sub.topics[i], sub.topics[j], sub.topic_lens[i]) != 0);
  }
  FUZZ_CHECK(sub.n_starts <= MQ_FEED_MAX_STARTS);
  for (size_t i = 0; i < sub.n_starts; i++) {
    FUZZ_CHECK(sub.starts[i].shard >= 0 && sub.starts[i].revision >= 0);
    for (size_t j = 0; j < i; j++)
      FUZZ_CHECK(sub.starts[i].shard != sub.starts[j].shard);
  }
  mq_feed_sub_free(&sub);
  return 0;
}
