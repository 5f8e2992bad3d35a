/* Bytes built by a forked child (agent/util/forkjob.c): the child sees the
 * parent's memory as it was at the fork, its bytes arrive whole behind the
 * room asked for, in pieces no larger than asked, and a child that fails,
 * or is no longer wanted, ends cleanly. */
#include "check.h"
#include "util/err.h"
#include "util/forkjob.h"

#include <time.h>
#include <unistd.h>

#define BIG (8u << 20)

static uint8_t *source;

static int copy_source(void *arg, struct mq_buf *out) {
  (void)arg;
  mq_buf_put(out, source, BIG);
  return 0;
}

static int fail(void *arg, struct mq_buf *out) {
  (void)arg;
  mq_buf_put(out, "partial", 7);
  return -1;
}

static int nothing(void *arg, struct mq_buf *out) {
  (void)arg, (void)out;
  return 0;
}

static int sleep_long(void *arg, struct mq_buf *out) {
  (void)arg, (void)out;
  sleep(60);
  return 0;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Polls j to the end, max bytes at a time; returns poll's last answer. */
static int finish(struct mq_forkjob *j, size_t max, uint8_t **data, size_t *len) {
  double deadline = now_s() + 30;
  int rc;
  while ((rc = mq_forkjob_poll(j, max, data, len)) == 0) {
    CHECK(now_s() < deadline);
    usleep(1000);
  }
  return rc;
}

static void test_snapshot_of_the_fork_instant(void) {
  source = malloc(BIG);
  CHECK(source);
  for (size_t i = 0; i < BIG; i++)
    source[i] = (uint8_t)(i * 7 + 1);
  struct mq_forkjob *j;
  CHECK_EQ(mq_forkjob_start(&j, copy_source, NULL, 100), 0);
  memset(source, 0xEE, BIG); /* after the fork: the child must not see it */
  uint8_t *data = NULL;
  size_t len = 0;
  CHECK_EQ(finish(j, 64 << 10, &data, &len), 1);
  CHECK_EQ(len, BIG);
  for (size_t i = 0; i < BIG; i++)
    if (data[100 + i] != (uint8_t)(i * 7 + 1))
      CHECK_FAIL("byte %zu differs", i);
  mq_forkjob_free(j);
  free(data);
  free(source);
}

static void test_child_failure(void) {
  struct mq_forkjob *j;
  CHECK_EQ(mq_forkjob_start(&j, fail, NULL, 0), 0);
  uint8_t *data = NULL;
  size_t len = 0;
  CHECK_EQ(finish(j, 1 << 20, &data, &len), MQ_EIO);
  CHECK(data == NULL);
  mq_forkjob_free(j);
}

static void test_empty(void) {
  struct mq_forkjob *j;
  CHECK_EQ(mq_forkjob_start(&j, nothing, NULL, 16), 0);
  uint8_t *data = NULL;
  size_t len = 99;
  CHECK_EQ(finish(j, 1 << 20, &data, &len), 1);
  CHECK_EQ(len, 0);
  mq_forkjob_free(j);
  free(data);
}

static void test_free_kills_a_running_child(void) {
  struct mq_forkjob *j;
  CHECK_EQ(mq_forkjob_start(&j, sleep_long, NULL, 0), 0);
  uint8_t *data = NULL;
  size_t len = 0;
  CHECK_EQ(mq_forkjob_poll(j, 1 << 20, &data, &len), 0);
  double t0 = now_s();
  mq_forkjob_free(j);
  CHECK(now_s() - t0 < 5);
  mq_forkjob_free(NULL);
}

int main(void) {
  test_snapshot_of_the_fork_instant();
  test_child_failure();
  test_empty();
  test_free_kills_a_running_child();
  printf("test_forkjob: ok\n");
  return 0;
}
