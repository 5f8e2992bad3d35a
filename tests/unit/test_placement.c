/* Placement: rendezvous choice of replicas is deterministic, independent of
 * member order, balanced, and moves few shards when membership changes. */
#include "check.h"
#include "cluster/placement.h"

#include <stdio.h>

#define SHARDS 64
#define RF 3

static void pick_names(int32_t shard, const char *const *ids, size_t n, const char **out) {
  size_t idx[RF];
  size_t k = mq_placement_pick(shard, ids, n, RF, idx);
  CHECK_EQ(k, n < RF ? n : RF);
  for (size_t i = 0; i < RF; i++)
    out[i] = i < k ? ids[idx[i]] : NULL;
}

static int same_set(const char **a, const char **b) {
  for (int i = 0; i < RF; i++) {
    int found = 0;
    for (int j = 0; j < RF; j++)
      found |= a[i] && b[j] && strcmp(a[i], b[j]) == 0;
    if (!found)
      return 0;
  }
  return 1;
}

static void test_order_independent(void) {
  const char *fwd[] = {"node-1", "node-2", "node-3", "node-4", "node-5"};
  const char *rev[] = {"node-5", "node-4", "node-3", "node-2", "node-1"};
  for (int32_t s = 0; s < SHARDS; s++) {
    const char *a[RF], *b[RF];
    pick_names(s, fwd, 5, a);
    pick_names(s, rev, 5, b);
    for (int i = 0; i < RF; i++)
      CHECK_STREQ(a[i], b[i]);
    CHECK(strcmp(a[0], a[1]) && strcmp(a[1], a[2]) && strcmp(a[0], a[2]));
  }
}

static void test_fewer_members_than_rf(void) {
  const char *ids[] = {"solo", "duo"};
  size_t idx[RF];
  CHECK_EQ(mq_placement_pick(3, ids, 2, RF, idx), 2);
  CHECK_EQ(mq_placement_pick(3, ids, 0, RF, idx), 0);
}

static void test_balance(void) {
  const char *ids[] = {"a", "b", "c", "d", "e", "f"};
  int load[6] = {0};
  for (int32_t s = 0; s < 600; s++) {
    size_t idx[RF];
    mq_placement_pick(s, ids, 6, RF, idx);
    for (int i = 0; i < RF; i++)
      load[idx[i]]++;
  }
  /* 600 shards * 3 replicas / 6 members = 300 each on average. */
  for (int i = 0; i < 6; i++) {
    CHECK_GT(load[i], 220);
    CHECK_LT(load[i], 380);
  }
}

static void test_minimal_movement(void) {
  const char *four[] = {"n1", "n2", "n3", "n4"};
  const char *five[] = {"n1", "n2", "n3", "n4", "n5"};
  int moved = 0;
  for (int32_t s = 0; s < SHARDS; s++) {
    const char *a[RF], *b[RF];
    pick_names(s, four, 4, a);
    pick_names(s, five, 5, b);
    if (same_set(a, b))
      continue;
    moved++;
    /* A changed set differs only by bringing in the new member. */
    int has_new = 0;
    for (int i = 0; i < RF; i++)
      has_new |= strcmp(b[i], "n5") == 0;
    CHECK(has_new);
  }
  /* Expect about RF/5 of the shards to take the new member. */
  CHECK_GT(moved, SHARDS / 10);
  CHECK_LT(moved, SHARDS * 9 / 10);
}

int main(void) {
  test_order_independent();
  test_fewer_members_than_rf();
  test_balance();
  test_minimal_movement();
  printf("placement: ok\n");
  return 0;
}
