/* Fan-out: a Scan wider than one user, or a Read of every partition, runs
 * as one sub-request per shard, each routed like any request, and the
 * answers merge into the parent: scan results in key order up to the
 * limit, entries in partition order up to the count. The first failing
 * shard's status becomes the parent's. */
#include "cluster/internal.h"

#include <stdlib.h>
#include <string.h>

struct scatter {
  struct mq_node *n;
  struct mq_req *parent;
  int left;
  int count;
  struct mq_req kids[];
};

static int kv_ptr_cmp(const void *pa, const void *pb) {
  const struct mq_kv *a = *(const struct mq_kv *const *)pa;
  const struct mq_kv *b = *(const struct mq_kv *const *)pb;
  size_t m = a->key_len < b->key_len ? a->key_len : b->key_len;
  int c = memcmp(a->key, b->key, m);
  if (c)
    return c;
  return (a->key_len > b->key_len) - (a->key_len < b->key_len);
}

static void merge_scan(struct scatter *sc) {
  struct mq_req *p = sc->parent;
  size_t limit = p->limit ? p->limit : 100;
  if (limit > 10000)
    limit = 10000;
  size_t total = 0;
  bool more = false;
  for (int i = 0; i < sc->count; i++) {
    total += sc->kids[i].n_kvs;
    more |= sc->kids[i].more;
  }
  struct mq_kv **all = malloc((total ? total : 1) * sizeof *all);
  if (!all) {
    mq_status_set(&p->status, MQ_ENOMEM, "out of memory merging scan results");
    return;
  }
  size_t k = 0;
  for (int i = 0; i < sc->count; i++)
    for (size_t j = 0; j < sc->kids[i].n_kvs; j++)
      all[k++] = &sc->kids[i].kvs[j];
  if (total > 1)
    qsort(all, total, sizeof *all, kv_ptr_cmp);
  size_t take = total < limit ? total : limit;
  p->kvs = calloc(take ? take : 1, sizeof *p->kvs);
  if (!p->kvs) {
    free(all);
    mq_status_set(&p->status, MQ_ENOMEM, "out of memory merging scan results");
    return;
  }
  for (size_t i = 0; i < take; i++) {
    p->kvs[i] = *all[i];
    all[i]->key = NULL; /* moved */
  }
  p->n_kvs = take;
  p->more = more || total > limit;
  free(all);
}

static void merge_read(struct scatter *sc) {
  struct mq_req *p = sc->parent;
  size_t count = p->count ? p->count : 100;
  if (count > 10000)
    count = 10000;
  size_t total = 0;
  int64_t hw = 0, start = INT64_MAX;
  for (int i = 0; i < sc->count; i++) {
    total += sc->kids[i].n_entries;
    if (sc->kids[i].high_watermark > hw)
      hw = sc->kids[i].high_watermark;
    if (sc->kids[i].log_start_offset < start)
      start = sc->kids[i].log_start_offset;
  }
  size_t take = total < count ? total : count;
  p->entries = calloc(take ? take : 1, sizeof *p->entries);
  if (!p->entries) {
    mq_status_set(&p->status, MQ_ENOMEM, "out of memory merging entries");
    return;
  }
  /* Kids are in partition order and each is in offset order. */
  for (int i = 0; i < sc->count && p->n_entries < take; i++) {
    struct mq_req *kid = &sc->kids[i];
    for (size_t j = 0; j < kid->n_entries && p->n_entries < take; j++) {
      p->entries[p->n_entries++] = kid->entries[j];
      kid->entries[j].key = NULL; /* moved */
    }
  }
  p->high_watermark = hw;
  p->log_start_offset = start == INT64_MAX ? 0 : start;
  p->next_offset = p->n_entries ? p->entries[p->n_entries - 1].offset + 1 : p->offset;
}

static void scatter_finish(struct scatter *sc) {
  struct mq_req *p = sc->parent;
  for (int i = 0; i < sc->count; i++)
    if (sc->kids[i].status.code) {
      p->status = sc->kids[i].status;
      break;
    }
  if (!p->status.code) {
    if (p->type == MQ_REQ_SCAN)
      merge_scan(sc);
    else
      merge_read(sc);
  }
  for (int i = 0; i < sc->count; i++)
    mq_req_clear(&sc->kids[i]);
  struct mq_node *n = sc->n;
  free(sc);
  mq_req_complete(n, p);
}

static void kid_done(struct mq_req *kid) {
  struct scatter *sc = kid->arg;
  if (__atomic_sub_fetch(&sc->left, 1, __ATOMIC_ACQ_REL) == 0)
    scatter_finish(sc);
}

void route_scatter(struct mq_node *n, struct mq_req *p) {
  int count = n->n_shards;
  struct scatter *sc = calloc(1, sizeof *sc + (size_t)count * sizeof(struct mq_req));
  if (!sc) {
    mq_status_set(&p->status, MQ_ENOMEM, "out of memory fanning out the request");
    mq_req_complete(n, p);
    return;
  }
  sc->n = n;
  sc->parent = p;
  sc->count = count;
  sc->left = count + 1; /* +1 until every kid is launched */
  for (int i = 0; i < count; i++) {
    struct mq_req *k = &sc->kids[i];
    mq_req_init(k, p->type);
    k->prefix = p->prefix;
    k->prefix_len = p->prefix_len;
    k->start_after = p->start_after;
    k->start_after_len = p->start_after_len;
    k->limit = p->limit;
    k->keys_only = p->keys_only;
    k->serializable = p->serializable;
    k->topic = p->topic;
    k->topic_len = p->topic_len;
    k->partition = -1;
    k->offset = p->offset;
    k->count = p->count;
    k->deadline_ms = p->deadline_ms;
    k->p_shard1 = i + 1;
    k->p_flags = REQ_INTERNAL | REQ_VALIDATED;
    k->done = kid_done;
    k->arg = sc;
  }
  for (int i = 0; i < count; i++)
    route_request(n, &sc->kids[i]);
  kid_done(&sc->kids[0]); /* drops the launch reference */
}
