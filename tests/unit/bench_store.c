/* Micro-benchmark of the shard state machine (not run by ctest): the cost
 * of applying puts (new keys and updates), gets, and scans of one page, at
 * 1M keys by default. Usage: bench_store [keys] */
#include "rng.h"
#include "store/sm.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* CPU time of this thread: a put's own cost, without the time the
 * scheduler gave other processes (this machine is shared). */
static double cpu_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_float(const void *a, const void *b) {
  float x = *(const float *)a, y = *(const float *)b;
  return (x > y) - (x < y);
}

static int count_kv(void *arg, const struct mq_kv *kv) {
  (*(size_t *)arg) += kv->key_len;
  return 0;
}

static int key_of(char *buf, size_t n, uint64_t i) {
  /* user-style keys, shuffled so inserts do not arrive in key order */
  uint64_t h = i * 0x9e3779b97f4a7c15ULL;
  return snprintf(buf, n, "user:%" PRIu64 ":session:%016" PRIx64, h % 100000, h);
}

int main(int argc, char **argv) {
  uint64_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 1000000;
  rng_state = 0x9e3779b97f4a7c15ULL;
  struct mq_store_limits l;
  mq_store_limits_default(&l);
  struct mq_sm *sm;
  if (mq_sm_new(&sm, 0, &l))
    return 1;
  /* keys made up front, so formatting them is not measured */
  char(*keys)[48] = malloc(n * sizeof *keys);
  uint8_t *lens = malloc(n);
  if (!keys || !lens)
    return 1;
  for (uint64_t i = 0; i < n; i++)
    lens[i] = (uint8_t)key_of(keys[i], sizeof keys[i], i);
  char key[64];
  uint8_t value[100];
  memset(value, 'v', sizeof value);
  struct mq_cmd c;
  memset(&c, 0, sizeof c);
  c.type = MQ_CMD_PUT;
  c.ingest_partition = -1;
  c.now_ms = 1700000000000;
  c.value = value;
  c.value_len = sizeof value;
  struct mq_apply_result res;
  uint64_t index = 1;

  /* Each new-key put timed on its own: growth of the hash table must not
   * show as one slow put (the tail below), only in the mean. */
  float *lat = malloc(n * sizeof *lat);
  if (!lat)
    return 1;
  double t0 = now_ns();
  for (uint64_t i = 0; i < n; i++) {
    c.key = keys[i];
    c.key_len = lens[i];
    double a = cpu_ns();
    mq_sm_apply(sm, index++, &c, &res);
    lat[i] = (float)(cpu_ns() - a);
    if (res.status.code)
      return 2;
  }
  double t1 = now_ns();
  qsort(lat, n, sizeof *lat, cmp_float);
  for (uint64_t i = 0; i < n; i++) {
    uint64_t k = rnd() % n;
    c.key = keys[k];
    c.key_len = lens[k];
    mq_sm_apply(sm, index++, &c, &res);
  }
  double t2 = now_ns();
  struct mq_kv kv;
  size_t found = 0;
  for (uint64_t i = 0; i < n; i++) {
    uint64_t k = rnd() % n;
    found += mq_sm_get(sm, keys[k], lens[k], c.now_ms, &kv) == 0;
  }
  double t3 = now_ns();
  size_t scans = 100000, bytes = 0;
  bool more;
  for (size_t i = 0; i < scans; i++) {
    int len = snprintf(key, sizeof key, "user:%" PRIu64 ":", rnd() % 100000);
    mq_sm_scan(sm, key, (size_t)len, NULL, 0, 100, c.now_ms, count_kv, &bytes, &more);
  }
  double t4 = now_ns();
  /* key-ordered scan pages of 100 from random points over the whole map */
  for (size_t i = 0; i < scans; i++) {
    uint64_t k = rnd() % n;
    mq_sm_scan(sm, "", 0, keys[k], lens[k], 100, c.now_ms, count_kv, &bytes, &more);
  }
  double t5 = now_ns();

  printf("keys %" PRIu64 " (%" PRIu64 " found of %" PRIu64 " gets), value 100 B, history %zu\n",
         mq_sm_key_count(sm), (uint64_t)found, n, l.history_events);
  printf("put (new key)     %7.0f ns/op\n", (t1 - t0) / (double)n);
  printf("put (new key) CPU time tail p99 %.1f us, p99.9 %.1f us, p99.99 %.1f us, max %.1f us\n",
         lat[n * 99 / 100] / 1e3, lat[n * 999 / 1000] / 1e3, lat[n * 9999 / 10000] / 1e3,
         lat[n ? n - 1 : 0] / 1e3);
  free(lat);
  printf("put (update)      %7.0f ns/op\n", (t2 - t1) / (double)n);
  printf("get               %7.0f ns/op\n", (t3 - t2) / (double)n);
  printf("scan user prefix  %7.0f ns/op (about %.0f keys each)\n", (t4 - t3) / (double)scans,
         (double)n / 100000.0);
  printf("scan page of 100  %7.0f ns/op\n", (t5 - t4) / (double)scans);
  printf("memory            %7.1f MB (%" PRIu64 " B/key)\n", (double)mq_sm_bytes(sm) / 1e6,
         mq_sm_bytes(sm) / (n ? n : 1));
  double t6 = now_ns();
  struct mq_buf snap;
  mq_buf_init(&snap);
  mq_sm_snapshot(sm, &snap);
  double t7 = now_ns();
  struct mq_sm *r;
  mq_sm_new(&r, 0, &l);
  int rc = mq_sm_restore(r, snap.data, snap.len);
  double t8 = now_ns();
  printf("snapshot          %7.0f ms (%zu MB), restore %.0f ms (rc %d, digests %s)\n",
         (t7 - t6) / 1e6, snap.len >> 20, (t8 - t7) / 1e6, rc,
         mq_sm_digest(sm) == mq_sm_digest(r) ? "equal" : "DIFFER");
  mq_buf_close(&snap);
  mq_sm_free(r);
  mq_sm_free(sm);
  free(keys);
  free(lens);
  return 0;
}
