/* Key -> user id -> shard, exactly as DESIGN.md section 2 defines it.
 *
 * A key `user:{userId}:{rest}` or `user:{userId}` belongs to user userId;
 * any other key is hashed whole. shard = floorMod(javaStringHash(id), total)
 * where javaStringHash is Java's String.hashCode() over UTF-16 code units
 * with 32-bit wrap-around, so clients in any language can compute it. */
#ifndef MQ_CLUSTER_SHARDING_H
#define MQ_CLUSTER_SHARDING_H

#include <stddef.h>
#include <stdint.h>

/* Java's String.hashCode() of the UTF-8 string s (len bytes), computed over
 * its UTF-16 code units. Invalid UTF-8 bytes count as U+FFFD, as Java's
 * decoder would produce. */
int32_t mq_java_string_hash(const char *s, size_t len);

/* The id a key is sharded by: sets *id and *id_len to the user id part of a
 * `user:{id}[:rest]` key, else to the whole key. Borrowed from key. */
void mq_shard_id_of_key(const char *key, size_t len, const char **id, size_t *id_len);

/* The shard of a key, in [0, shards_total). shards_total > 0. */
int mq_shard_of_key(const char *key, size_t len, int shards_total);

#endif
