/* Plain value types shared by the store, the core loop and the front ends:
 * a KeyValue, a topic Entry, a precondition and a change event. They carry
 * no protobuf (STYLE.md rule 10); agent/api converts them at the edge. */
#ifndef MQ_STORE_TYPES_H
#define MQ_STORE_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A KeyValue. Who owns key/value is said where the struct is handed out. */
struct mq_kv {
  const char *key;
  size_t key_len;
  const uint8_t *value;
  size_t value_len;
  int64_t create_revision;
  int64_t mod_revision;
  int64_t version;       /* puts since creation, 1 after the first */
  int64_t expires_at_ms; /* wall-clock ms; 0: never */
  int32_t shard;
};

/* One record of a topic log. */
struct mq_entry {
  const char *key;
  size_t key_len;
  const uint8_t *value;
  size_t value_len;
  int64_t timestamp; /* ms since the epoch */
  int64_t offset;
  int32_t partition;
};

enum mq_precond_type {
  MQ_PRE_NONE = 0,
  MQ_PRE_ABSENT,       /* key must not exist */
  MQ_PRE_VERSION,      /* key must exist with version == num */
  MQ_PRE_MOD_REVISION, /* key must exist with mod_revision == num */
  MQ_PRE_VALUE,        /* key must exist with value == value */
};

struct mq_precond {
  enum mq_precond_type type;
  int64_t num;
  const uint8_t *value;
  size_t value_len;
};

enum mq_event_type {
  MQ_EV_PUT = 0,
  MQ_EV_DELETE = 1,
  MQ_EV_EXPIRE = 2,
  MQ_EV_PRODUCE = 3,
};

/* One committed mutation of a shard, in the shard's revision order.
 * PUT: kv is the new KeyValue. DELETE/EXPIRE: kv is the key with its last
 * value (value may be empty). PRODUCE: topic and entry are set. For every
 * type entry.timestamp is the change's time in ms since the epoch (for KV
 * changes, the proposer's clock when it proposed the change). */
struct mq_event {
  enum mq_event_type type;
  int32_t shard;
  int64_t revision;
  struct mq_kv kv;
  const char *topic;
  size_t topic_len;
  struct mq_entry entry;
};

#endif
