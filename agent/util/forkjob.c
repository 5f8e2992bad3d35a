/* Bytes built by a child process (util/forkjob.h). */
#include "util/forkjob.h"

#include "util/err.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

struct mq_forkjob {
  pid_t pid; /* 0 once reaped */
  int status;
  int fd; /* read end; -1 at EOF */
  size_t room;
  uint8_t head[8]; /* the length, little-endian */
  size_t head_got;
  uint8_t *buf; /* room + len */
  uint64_t len, got;
};

static int write_all(int fd, const uint8_t *p, size_t n) {
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return -1;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* The child's output buffer: anonymous memory as large as the machine's
 * RAM, reserved but not committed, so the buffer never grows through
 * malloc (no allocator lock is taken in the child, see forkjob.h). */
static int child_buffer(struct mq_buf *b) {
  long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  if (pages <= 0 || page <= 0)
    return -1;
  size_t cap = (size_t)pages * (size_t)page;
  void *p =
      mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED)
    return -1;
  *b = (struct mq_buf){.data = p, .cap = cap};
  return 0;
}

static _Noreturn void child(int fd, pid_t parent, mq_forkjob_fn fn, void *arg) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent) /* the parent died before the line above */
    _exit(3);
  struct mq_buf b;
  if (child_buffer(&b))
    _exit(5);
  if (fn(arg, &b) || b.err)
    _exit(2);
  uint8_t head[8];
  for (int i = 0; i < 8; i++)
    head[i] = (uint8_t)((uint64_t)b.len >> (8 * i));
  if (write_all(fd, head, sizeof head) || write_all(fd, b.data, b.len))
    _exit(4);
  _exit(0);
}

int mq_forkjob_start(struct mq_forkjob **out, mq_forkjob_fn fn, void *arg, size_t room) {
  *out = NULL;
  struct mq_forkjob *j = calloc(1, sizeof *j);
  if (!j)
    return MQ_ENOMEM;
  int p[2];
  if (pipe2(p, O_CLOEXEC)) {
    free(j);
    return MQ_EIO;
  }
  (void)fcntl(p[0], F_SETPIPE_SZ, 1 << 20); /* fewer reads; the default 64 KiB works too */
  pid_t parent = getpid();
  /* fork() itself, without the handlers libraries registered with
   * pthread_atfork: gRPC's wait for its own threads to quiesce, which the
   * thread that polls its completion queue never lets happen. The child
   * needs none of them: it runs fn and system calls, nothing else. */
  pid_t pid = (pid_t)syscall(SYS_clone, SIGCHLD, NULL, NULL, NULL, NULL);
  if (pid == 0) {
    close(p[0]);
    child(p[1], parent, fn, arg);
  }
  int saved = errno;
  close(p[1]);
  if (pid < 0) {
    close(p[0]);
    free(j);
    errno = saved;
    return MQ_EIO;
  }
  (void)fcntl(p[0], F_SETFL, O_NONBLOCK);
  j->pid = pid;
  j->fd = p[0];
  j->room = room;
  *out = j;
  return 0;
}

/* Reaps the child if it exited; true once it has. */
static bool reap(struct mq_forkjob *j) {
  if (!j->pid)
    return true;
  pid_t r = waitpid(j->pid, &j->status, WNOHANG);
  if (r == 0 || (r < 0 && errno == EINTR))
    return false;
  if (r < 0) /* not ours any more: count it as failed */
    j->status = -1;
  j->pid = 0;
  return true;
}

int mq_forkjob_poll(struct mq_forkjob *j, size_t max, uint8_t **data, size_t *len) {
  while (j->fd >= 0 && max > 0) {
    uint8_t *dst;
    size_t want;
    if (j->head_got < sizeof j->head) {
      dst = j->head + j->head_got;
      want = sizeof j->head - j->head_got;
    } else {
      dst = j->buf + j->room + j->got;
      want = j->len - j->got < max ? (size_t)(j->len - j->got) : max;
      if (want == 0)
        break;
    }
    ssize_t r = read(j->fd, dst, want);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0 && errno == EAGAIN)
      return 0;
    if (r <= 0) { /* EOF or error: the child is done one way or the other */
      close(j->fd);
      j->fd = -1;
      break;
    }
    if (j->head_got < sizeof j->head) {
      j->head_got += (size_t)r;
      if (j->head_got == sizeof j->head) {
        for (int i = 0; i < 8; i++)
          j->len |= (uint64_t)j->head[i] << (8 * i);
        if (j->len > SIZE_MAX - j->room || !(j->buf = malloc(j->room + j->len)))
          return MQ_ENOMEM;
      }
    } else {
      j->got += (uint64_t)r;
      max -= (size_t)r;
    }
  }
  bool all = j->head_got == sizeof j->head && j->got == j->len;
  if (j->fd >= 0 && !all)
    return 0;
  if (!reap(j))
    return 0;
  if (!all || !WIFEXITED(j->status) || WEXITSTATUS(j->status) != 0)
    return MQ_EIO;
  if (j->fd >= 0) {
    close(j->fd);
    j->fd = -1;
  }
  *data = j->buf;
  *len = (size_t)j->len;
  j->buf = NULL;
  return 1;
}

void mq_forkjob_free(struct mq_forkjob *j) {
  if (!j)
    return;
  if (j->pid) {
    kill(j->pid, SIGKILL);
    while (waitpid(j->pid, &j->status, 0) < 0 && errno == EINTR)
      ;
  }
  if (j->fd >= 0)
    close(j->fd);
  free(j->buf);
  free(j);
}
