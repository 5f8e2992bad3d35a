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

/* ---- the balanced table -------------------------------------------------- */

static const char *names[] = {"memquorum-0", "memquorum-1", "memquorum-2", "memquorum-3",
                              "memquorum-4", "memquorum-5", "memquorum-6", "memquorum-7"};

/* table of `shards` over the first n names; load per name into load[] */
static void table_of(int32_t shards, size_t n, size_t *table, int *load) {
  CHECK_EQ(mq_placement_table(shards, names, n, RF, table), n < RF ? n : RF);
  for (size_t i = 0; i < 8; i++)
    load[i] = 0;
  size_t per = n < RF ? n : RF;
  for (int32_t s = 0; s < shards; s++)
    for (size_t j = 0; j < per; j++) {
      load[table[(size_t)s * RF + j]]++;
      for (size_t k = 0; k < j; k++) /* distinct replicas */
        CHECK(table[(size_t)s * RF + j] != table[(size_t)s * RF + k]);
    }
}

/* Every member holds within one replica of even, for every member count
 * and shard count a cluster is likely to use. */
static void test_table_balanced(void) {
  static size_t table[4096 * RF];
  int load[8];
  const int32_t counts[] = {1, 2, 3, 7, 16, 17, 64, 100, 4096};
  for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++)
    for (size_t n = 1; n <= 8; n++) {
      table_of(counts[c], n, table, load);
      size_t per = n < RF ? n : RF;
      int lo = (int)((size_t)counts[c] * per / n), hi = lo + ((size_t)counts[c] * per % n != 0);
      for (size_t i = 0; i < n; i++)
        if (load[i] < lo || load[i] > hi)
          CHECK_FAIL("%d shards over %zu members: member %zu holds %d replicas, want %d-%d",
                     counts[c], n, i, load[i], lo, hi);
    }
}

/* The same set of members in another order gives the same replicas. */
static void test_table_order_independent(void) {
  const char *rev[5];
  for (int i = 0; i < 5; i++)
    rev[i] = names[4 - i];
  size_t a[64 * RF], b[64 * RF];
  mq_placement_table(64, names, 5, RF, a);
  mq_placement_table(64, rev, 5, RF, b);
  for (size_t i = 0; i < 64 * RF; i++)
    CHECK_STREQ(names[a[i]], rev[b[i]]);
}

/* Replicas that change hands when one member joins or leaves, against the
 * least possible (what the joiner must receive, or the leaver held). */
static int moved(int32_t shards, size_t n_before, size_t n_after) {
  static size_t before[4096 * RF], after[4096 * RF];
  mq_placement_table(shards, names, n_before, RF, before);
  mq_placement_table(shards, names, n_after, RF, after);
  int kept = 0;
  for (int32_t s = 0; s < shards; s++)
    for (int i = 0; i < RF; i++)
      for (int j = 0; j < RF; j++)
        kept += before[s * RF + i] == after[s * RF + j];
  return shards * RF - kept;
}

static void test_table_moves(void) {
  const struct {
    int32_t shards;
    size_t from, to;
  } cases[] = {{16, 3, 4}, {16, 4, 5}, {16, 5, 4}, {16, 5, 3}, {64, 5, 6}, {64, 6, 5}, {256, 7, 8}};
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    size_t big = cases[c].from > cases[c].to ? cases[c].from : cases[c].to;
    int least = (int)((size_t)cases[c].shards * RF / big) *
                (int)(big - (cases[c].from < cases[c].to ? cases[c].from : cases[c].to));
    int m = moved(cases[c].shards, cases[c].from, cases[c].to);
    printf("placement: %d shards, %zu -> %zu members: %d replicas move (at least %d)\n",
           cases[c].shards, cases[c].from, cases[c].to, m, least);
    CHECK(m >= least);
    CHECK(m <= 2 * least + 4);
  }
}

int main(void) {
  test_order_independent();
  test_fewer_members_than_rf();
  test_balance();
  test_minimal_movement();
  test_table_balanced();
  test_table_order_independent();
  test_table_moves();
  printf("placement: ok\n");
  return 0;
}
