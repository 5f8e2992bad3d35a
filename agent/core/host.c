/* Many Raft groups on one node: one tick for all, and outgoing messages
 * gathered into one frame per destination node. Frame layout:
 *   u8 version (1) | u64 from node | u64 to node | message* (to the end)
 * with messages as in codec.c. */
#include <stdlib.h>
#include <string.h>

#include "core/host.h"
#include "util/err.h"

#define FRAME_VERSION 1

void mq_raft_host_init(struct mq_raft_host *h, uint64_t node) {
  memset(h, 0, sizeof(*h));
  h->node = node;
}

void mq_raft_host_close(struct mq_raft_host *h) {
  for (size_t i = 0; i < h->n_groups; i++) mq_raft_destroy(h->groups[i].r);
  for (size_t i = 0; i < h->n_peers; i++) mq_buf_close(&h->peers[i].frame);
  for (size_t i = 0; i < h->n_names; i++) free(h->names[i].name);
  free(h->groups);
  free(h->peers);
  free(h->names);
  free(h->scratch);
  memset(h, 0, sizeof(*h));
}

int mq_raft_host_name_node(struct mq_raft_host *h, const char *name,
                           uint64_t *node) {
  uint64_t k = mq_raft_node_key(name);
  for (size_t i = 0; i < h->n_names; i++) {
    if (h->names[i].node != k) continue;
    if (strcmp(h->names[i].name, name)) return MQ_EEXIST;
    *node = k;
    return 0;
  }
  if (h->n_names == h->cap_names) {
    size_t cap = h->cap_names ? h->cap_names * 2 : 8;
    struct mq_raft_host_name *p = realloc(h->names, cap * sizeof(*p));
    if (!p) return MQ_ENOMEM;
    h->names = p;
    h->cap_names = cap;
  }
  char *copy = strdup(name);
  if (!copy) return MQ_ENOMEM;
  h->names[h->n_names].node = k;
  h->names[h->n_names].name = copy;
  h->n_names++;
  *node = k;
  return 0;
}

const char *mq_raft_host_node_name(const struct mq_raft_host *h,
                                   uint64_t node) {
  for (size_t i = 0; i < h->n_names; i++)
    if (h->names[i].node == node) return h->names[i].name;
  return NULL;
}

/* Index of the first group with id >= group. */
static size_t lower(const struct mq_raft_host *h, uint64_t group) {
  size_t lo = 0, hi = h->n_groups;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (h->groups[mid].id < group)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

int mq_raft_host_add(struct mq_raft_host *h, const struct mq_raft_options *o,
                     const struct mq_raft_conf *initial, struct mq_raft **out) {
  if (o->self.node != h->node) return MQ_EINVAL;
  size_t at = lower(h, o->group);
  if (at < h->n_groups && h->groups[at].id == o->group) return MQ_EEXIST;
  if (h->n_groups == h->cap_groups) {
    size_t cap = h->cap_groups ? h->cap_groups * 2 : 16;
    struct mq_raft_host_group *p = realloc(h->groups, cap * sizeof(*p));
    if (!p) return MQ_ENOMEM;
    h->groups = p;
    h->cap_groups = cap;
  }
  struct mq_raft *r;
  int rc = mq_raft_create(o, initial, &r);
  if (rc) return rc;
  memmove(&h->groups[at + 1], &h->groups[at],
          (h->n_groups - at) * sizeof(h->groups[0]));
  h->groups[at].id = o->group;
  h->groups[at].r = r;
  h->n_groups++;
  if (out) *out = r;
  return 0;
}

int mq_raft_host_remove(struct mq_raft_host *h, uint64_t group) {
  size_t at = lower(h, group);
  if (at == h->n_groups || h->groups[at].id != group) return MQ_ENOTFOUND;
  mq_raft_destroy(h->groups[at].r);
  memmove(&h->groups[at], &h->groups[at + 1],
          (h->n_groups - at - 1) * sizeof(h->groups[0]));
  h->n_groups--;
  return 0;
}

struct mq_raft *mq_raft_host_get(const struct mq_raft_host *h, uint64_t group) {
  size_t at = lower(h, group);
  return at < h->n_groups && h->groups[at].id == group ? h->groups[at].r : NULL;
}

size_t mq_raft_host_count(const struct mq_raft_host *h) { return h->n_groups; }

struct mq_raft *mq_raft_host_at(const struct mq_raft_host *h, size_t i) {
  return i < h->n_groups ? h->groups[i].r : NULL;
}

void mq_raft_host_tick(struct mq_raft_host *h) {
  for (size_t i = 0; i < h->n_groups; i++) mq_raft_tick(h->groups[i].r);
}

int mq_raft_host_receive(struct mq_raft_host *h, const void *frame,
                         size_t len) {
  struct mq_reader rd;
  mq_reader_init(&rd, frame, len);
  uint8_t ver = mq_get_u8(&rd);
  uint64_t from = mq_get_u64(&rd), to = mq_get_u64(&rd);
  if (rd.err || ver != FRAME_VERSION || to != h->node) return MQ_ECORRUPT;
  while (mq_reader_left(&rd)) {
    struct mq_raft_msg m;
    int rc = mq_raft_msg_decode(&rd, &m, &h->scratch, &h->scratch_cap);
    if (rc) return rc;
    if (m.from.node != from || m.to.node != to) return MQ_ECORRUPT;
    struct mq_raft *r = mq_raft_host_get(h, m.group);
    if (!r) {
      h->dropped++;
      continue;
    }
    rc = mq_raft_step(r, &m);
    if (rc) return rc;
  }
  return 0;
}

static struct mq_raft_host_peer *peer(struct mq_raft_host *h, uint64_t node) {
  for (size_t i = 0; i < h->n_peers; i++)
    if (h->peers[i].node == node) return &h->peers[i];
  if (h->n_peers == h->cap_peers) {
    size_t cap = h->cap_peers ? h->cap_peers * 2 : 8;
    struct mq_raft_host_peer *p = realloc(h->peers, cap * sizeof(*p));
    if (!p) return NULL;
    h->peers = p;
    h->cap_peers = cap;
  }
  struct mq_raft_host_peer *p = &h->peers[h->n_peers++];
  p->node = node;
  p->count = 0;
  mq_buf_init(&p->frame);
  return p;
}

int mq_raft_host_send(struct mq_raft_host *h, const struct mq_raft_ready *rd) {
  for (size_t i = 0; i < rd->n_msgs; i++) {
    const struct mq_raft_msg *m = &rd->msgs[i];
    struct mq_raft_host_peer *p = peer(h, m->to.node);
    if (!p) return MQ_ENOMEM;
    if (p->frame.len == 0) {
      mq_buf_put_u8(&p->frame, FRAME_VERSION);
      mq_buf_put_u64(&p->frame, h->node);
      mq_buf_put_u64(&p->frame, m->to.node);
    }
    mq_raft_msg_encode(&p->frame, m);
    p->count++;
    if (p->frame.err) return p->frame.err;
  }
  return 0;
}

size_t mq_raft_host_batches(const struct mq_raft_host *h) {
  size_t n = 0;
  for (size_t i = 0; i < h->n_peers; i++) n += h->peers[i].count > 0;
  return n;
}

void mq_raft_host_batch(const struct mq_raft_host *h, size_t i, uint64_t *node,
                        const uint8_t **data, size_t *len) {
  for (size_t k = 0; k < h->n_peers; k++) {
    if (!h->peers[k].count) continue;
    if (i-- == 0) {
      *node = h->peers[k].node;
      *data = h->peers[k].frame.data;
      *len = h->peers[k].frame.len;
      return;
    }
  }
  *node = 0;
  *data = NULL;
  *len = 0;
}

void mq_raft_host_batches_clear(struct mq_raft_host *h) {
  for (size_t i = 0; i < h->n_peers; i++) {
    mq_buf_reset(&h->peers[i].frame);
    h->peers[i].count = 0;
  }
}
