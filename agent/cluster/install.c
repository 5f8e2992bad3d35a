/* Installing a snapshot a leader sent, away from the core loop: see
 * install.h. */
#include "cluster/install.h"
#include "cluster/io.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* Replaced states with fewer keys are freed in the loop: a thread would
 * cost more than the frees. */
#define FREE_INLINE_KEYS 4096
/* Kept entries applied per mq_install_apply_kept at least: a backlog of
 * thousands applied in one go would hold the loop as the decoding did. */
#define APPLY_PER_CALL 512

struct mq_install {
  uint64_t index, term;
  const uint8_t *data;
  size_t len;
  void *block; /* holds data; from the core's allocation */
  const struct mq_sm *sm;
  struct mq_loop_io *io;
  struct mq_sm_image *img;
  int rc;
  int64_t started_ms, ms;
  bool threaded, joined;
  pthread_t thread;
  _Atomic bool done;
  struct mq_buf kept; /* entries: index, term, type, length, bytes */
  size_t n_kept;      /* kept in all */
  size_t n_applied;   /* of those, passed to the caller */
  size_t applied_off; /* where the next one starts in kept */
  size_t n_new;       /* kept since the last mq_install_apply_kept */
  bool swapped;
};

struct mq_reap {
  struct mq_reap *next;
  struct mq_sm_image *img;
  pthread_t thread;
  _Atomic bool done;
};

static void decode(struct mq_install *j) {
  j->rc = mq_sm_image_decode(j->sm, j->data, j->len, &j->img);
  j->ms = j->io->mono_ms(j->io) - j->started_ms;
}

static void *decode_thread(void *arg) {
  struct mq_install *j = arg;
  decode(j);
  atomic_store_explicit(&j->done, true, memory_order_release);
  j->io->wake(j->io);
  return NULL;
}

int mq_install_start(struct mq_install **out, struct mq_loop_io *io, bool threaded,
                     const struct mq_sm *sm, const struct mq_raft_snapshot *snap, void *block) {
  struct mq_install *j = calloc(1, sizeof *j);
  if (!j) {
    free(block);
    return MQ_ENOMEM;
  }
  j->index = snap->index;
  j->term = snap->term;
  j->data = snap->data;
  j->len = snap->len;
  j->block = block;
  j->sm = sm;
  j->io = io;
  j->started_ms = io->mono_ms(io);
  mq_buf_init(&j->kept);
  j->threaded = threaded && pthread_create(&j->thread, NULL, decode_thread, j) == 0;
  if (!j->threaded) {
    decode(j);
    atomic_store_explicit(&j->done, true, memory_order_relaxed);
  }
  *out = j;
  return 0;
}

uint64_t mq_install_index(const struct mq_install *j) { return j->index; }
uint64_t mq_install_term(const struct mq_install *j) { return j->term; }
size_t mq_install_bytes(const struct mq_install *j) { return j->len; }
size_t mq_install_kept(const struct mq_install *j) { return j->n_kept; }

int mq_install_keep(struct mq_install *j, const struct mq_raft_entry *e) {
  mq_buf_put_u64(&j->kept, e->index);
  mq_buf_put_u64(&j->kept, e->term);
  mq_buf_put_u8(&j->kept, (uint8_t)e->type);
  mq_buf_put_bytes(&j->kept, e->data, e->len);
  if (j->kept.err)
    return MQ_ENOMEM;
  j->n_kept++;
  j->n_new++;
  return 0;
}

static void join(struct mq_install *j) {
  if (j->threaded && !j->joined) {
    pthread_join(j->thread, NULL);
    j->joined = true;
  }
}

bool mq_install_done(struct mq_install *j, int *rc, int64_t *ms) {
  if (!atomic_load_explicit(&j->done, memory_order_acquire))
    return false;
  join(j);
  *rc = j->rc;
  *ms = j->ms;
  return true;
}

void mq_install_swap(struct mq_install *j, struct mq_sm *sm) {
  mq_sm_image_swap(sm, j->img);
  j->swapped = true;
}

bool mq_install_swapped(const struct mq_install *j) { return j->swapped; }

size_t mq_install_apply_kept(struct mq_install *j,
                             void (*fn)(void *arg, const struct mq_raft_entry *e), void *arg) {
  /* Twice what came in since the last call, so the rest shrinks even
   * while the group commits at full speed. */
  size_t max = j->n_new * 2 > APPLY_PER_CALL ? j->n_new * 2 : APPLY_PER_CALL;
  j->n_new = 0;
  struct mq_reader r;
  mq_reader_init(&r, j->kept.data + j->applied_off, j->kept.len - j->applied_off);
  for (size_t k = 0; k < max && j->n_applied < j->n_kept; k++) {
    struct mq_raft_entry e = {0};
    e.index = mq_get_u64(&r);
    e.term = mq_get_u64(&r);
    e.type = mq_get_u8(&r);
    size_t len;
    e.data = (uint8_t *)mq_get_bytes(&r, &len, j->kept.len);
    e.len = (uint32_t)len;
    if (r.err)
      break; /* cannot happen: written by mq_install_keep */
    j->n_applied++;
    j->applied_off = (size_t)(r.p - j->kept.data);
    fn(arg, &e);
  }
  return j->n_kept - j->n_applied;
}

static void *free_thread(void *arg) {
  struct mq_reap *rp = arg;
  mq_sm_image_free(rp->img);
  rp->img = NULL;
  atomic_store_explicit(&rp->done, true, memory_order_release);
  return NULL;
}

static void reap_image(struct mq_reaper *rp, struct mq_sm_image *img, bool threaded) {
  if (!img)
    return;
  if (threaded && mq_sm_image_keys(img) > FREE_INLINE_KEYS) {
    struct mq_reap *r = calloc(1, sizeof *r);
    if (r) {
      r->img = img;
      if (pthread_create(&r->thread, NULL, free_thread, r) == 0) {
        r->next = rp->head;
        rp->head = r;
        return;
      }
      free(r);
    }
  }
  mq_sm_image_free(img);
}

void mq_install_end(struct mq_install *j, struct mq_reaper *rp) {
  if (!j)
    return;
  join(j);
  reap_image(rp, j->img, j->threaded);
  free(j->block);
  mq_buf_close(&j->kept);
  free(j);
}

void mq_reaper_poll(struct mq_reaper *rp, bool wait) {
  struct mq_reap **p = &rp->head;
  while (*p) {
    struct mq_reap *r = *p;
    if (!wait && !atomic_load_explicit(&r->done, memory_order_acquire)) {
      p = &r->next;
      continue;
    }
    pthread_join(r->thread, NULL);
    *p = r->next;
    free(r);
  }
}
