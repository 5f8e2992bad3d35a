/* Sharding function of DESIGN.md section 2: Java String.hashCode over UTF-16
 * code units, floorMod by shards_total, user:{id} keys sharded by id. */
#include "cluster/sharding.h"

#include "check.h"

#include <string.h>

static int shard(const char *key) { return mq_shard_of_key(key, strlen(key), 16); }
static int32_t hash(const char *s) { return mq_java_string_hash(s, strlen(s)); }

/* The vectors DESIGN.md publishes for clients in other languages. */
static void test_design_vectors(void) {
  CHECK_EQ(hash("123"), 48690);
  CHECK_EQ(hash("alice"), 92903040);
  CHECK_EQ(hash("u7919x"), -892815911);
  CHECK_EQ(shard("123"), 2);
  CHECK_EQ(shard("456"), 5);
  CHECK_EQ(shard("789"), 8);
  CHECK_EQ(shard("alice"), 0);
  CHECK_EQ(shard("u7919x"), 9); /* negative hash: floorMod, not C's % */
  CHECK_EQ(shard("customer-9001"), 7);
  CHECK_EQ(shard("\xf0\x9f\x98\x80"), 3); /* U+1F600: two UTF-16 units */
  CHECK_EQ(hash("\xf0\x9f\x98\x80"), 1772899);
}

static void test_key_forms(void) {
  CHECK_EQ(shard("user:123:session"), 2);
  CHECK_EQ(shard("user:123"), 2);
  CHECK_EQ(shard("user:alice:x:y"), 0);
  CHECK_EQ(shard("user:u7919x:profile"), 9);

  /* Not user keys: hashed whole. */
  CHECK_EQ(hash("orders:42"), -390703309);
  CHECK_EQ(shard("orders:42"), 3);
  CHECK_EQ(shard("user:"), 15); /* hash("user:") = 111578575 */
  CHECK_EQ(shard("user"), 11);

  const char *id;
  size_t len;
  mq_shard_id_of_key("user:123:a:b", 12, &id, &len);
  CHECK_EQ(len, 3);
  CHECK(memcmp(id, "123", 3) == 0);
  mq_shard_id_of_key("user:", 5, &id, &len);
  CHECK_EQ(len, 5);
  /* "user::x" has an empty user id; it is still a user key. */
  mq_shard_id_of_key("user::x", 7, &id, &len);
  CHECK_EQ(len, 0);
  CHECK_EQ(mq_shard_of_key("user::x", 7, 16), 0);
  /* The key is a byte range: bytes past len are not read. */
  CHECK_EQ(mq_shard_of_key("user:123:session-and-more", 8, 16), 2);
}

static void test_other_totals(void) {
  CHECK_EQ(mq_shard_of_key("u7919x", 6, 1), 0);
  for (int total = 1; total <= 4096; total *= 3) {
    int s = mq_shard_of_key("u7919x", 6, total);
    CHECK_GE(s, 0);
    CHECK_LT(s, total);
    int64_t want = ((int64_t)-892815911 % total + total) % total;
    CHECK_EQ(s, want);
  }
}

/* Java decodes each invalid byte here to U+FFFD; the hash must not crash
 * and must stay in range for any bytes. */
static void test_invalid_utf8(void) {
  CHECK_EQ(hash("\xff"), 65533);
  CHECK_EQ(hash("a\xff"
                "b"),
           2124838);
  CHECK_EQ(hash("\xc0\xaf"), 31 * 65533 + 65533); /* overlong '/' */
  const char *bad[] = {"\xe2\x82", "\xf0\x9f\x98", "\xed\xa0\x80", "\xf4\x90\x80\x80",
                       "\x80\x80", "user:\xfe:x",  "\xc3"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    int s = shard(bad[i]);
    CHECK_GE(s, 0);
    CHECK_LT(s, 16);
  }
  unsigned char all[256];
  for (int i = 0; i < 256; i++)
    all[i] = (unsigned char)(255 - i);
  for (size_t n = 0; n <= sizeof all; n++) {
    int s = mq_shard_of_key((const char *)all, n, 16);
    CHECK_GE(s, 0);
    CHECK_LT(s, 16);
  }
}

int main(void) {
  test_design_vectors();
  test_key_forms();
  test_other_totals();
  test_invalid_utf8();
  printf("test_sharding: ok\n");
  return 0;
}
