/* Topic logs of one shard (internal to agent/store): per topic an
 * append-only log of entries with offsets start, start+1, ..., kept in a
 * ring of pointers so that appending, trimming the head for retention and
 * reading at an offset are all O(1). Topics are kept sorted by name, so
 * snapshots list them in one order on every replica; a shard holds few
 * topics, so insertion into the sorted array is cheap. */
#ifndef MQ_STORE_TOPIC_H
#define MQ_STORE_TOPIC_H

#include <stddef.h>
#include <stdint.h>

struct mq_logent {
  int64_t timestamp;
  uint32_t key_len;
  uint32_t value_len;
  uint8_t data[]; /* key bytes, then value bytes */
};

static inline const char *mq_logent_key(const struct mq_logent *e) { return (const char *)e->data; }
static inline const uint8_t *mq_logent_value(const struct mq_logent *e) {
  return e->data + e->key_len;
}

struct mq_topic {
  char *name;
  size_t name_len;
  int64_t start; /* offset of the oldest retained entry */
  struct mq_logent **ring;
  size_t head, count, cap;
  uint64_t bytes; /* keys + values of the retained entries */
};

static inline int64_t mq_topic_end(const struct mq_topic *t) {
  return t->start + (int64_t)t->count;
}

/* The entry at offset, which must be in [start, end). */
static inline const struct mq_logent *mq_topic_at(const struct mq_topic *t, int64_t offset) {
  size_t i = (t->head + (size_t)(offset - t->start)) & (t->cap - 1);
  return t->ring[i];
}

struct mq_topics {
  struct mq_topic **v; /* sorted by name, byte-wise */
  size_t n, cap;
  uint64_t mem; /* approximate memory held */
};

void mq_topics_init(struct mq_topics *ts);
void mq_topics_close(struct mq_topics *ts);
struct mq_topic *mq_topics_find(const struct mq_topics *ts, const char *name, size_t len);
/* Finds or creates (empty, start offset `start`) a topic. Returns 0 or
 * MQ_ENOMEM. */
int mq_topics_get(struct mq_topics *ts, const char *name, size_t len, int64_t start,
                  struct mq_topic **out);
/* Removes a topic that holds no entries (used to undo a failed first append). */
void mq_topics_drop_empty(struct mq_topics *ts, struct mq_topic *t);

/* Appends an entry (copied). Returns 0 or MQ_ENOMEM (topic unchanged). */
int mq_topic_append(struct mq_topics *ts, struct mq_topic *t, const char *key, size_t key_len,
                    const uint8_t *value, size_t value_len, int64_t timestamp);

/* Drops the oldest entries while the log holds more than max_entries, more
 * than max_bytes, or entries older than max_age_ms at now_ms (0: no such
 * limit), always keeping the newest entry. */
void mq_topic_retain(struct mq_topics *ts, struct mq_topic *t, uint64_t max_entries,
                     uint64_t max_bytes, int64_t max_age_ms, int64_t now_ms);

#endif
