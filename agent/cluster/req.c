/* Requests as the node holds them: FIFOs linked through pnext, and the
 * helpers that set up, copy into and release a struct mq_req
 * (cluster/node.h). */
#include "cluster/req.h"

#include "util/err.h"

#include <stdlib.h>
#include <string.h>

void rl_push(struct req_list *l, struct mq_req *r) {
  r->pnext = NULL;
  if (l->tail)
    l->tail->pnext = r;
  else
    l->head = r;
  l->tail = r;
}

struct mq_req *rl_pop(struct req_list *l) {
  struct mq_req *r = l->head;
  if (r) {
    l->head = r->pnext;
    if (!l->head)
      l->tail = NULL;
    r->pnext = NULL;
  }
  return r;
}

void mq_req_init(struct mq_req *r, enum mq_req_type type) {
  memset(r, 0, sizeof *r);
  r->type = type;
  r->ingest_recorded = MQ_INGEST_UNKNOWN;
}

int req_copy_pair(const void *k, size_t klen, const void *v, size_t vlen, const char **kout,
                  const uint8_t **vout) {
  char *block = malloc(klen + vlen + 2);
  if (!block)
    return MQ_ENOMEM;
  if (klen)
    memcpy(block, k, klen);
  block[klen] = '\0';
  if (vlen)
    memcpy(block + klen + 1, v, vlen);
  block[klen + 1 + vlen] = '\0';
  *kout = block;
  *vout = (const uint8_t *)block + klen + 1;
  return 0;
}

void mq_req_clear(struct mq_req *r) {
  /* Copies made by the node hold key and value in one block at ->key. */
  if (r->has_kv)
    free((void *)r->kv.key);
  memset(&r->kv, 0, sizeof r->kv);
  r->has_kv = false;
  for (size_t i = 0; i < r->n_kvs; i++)
    free((void *)r->kvs[i].key);
  free(r->kvs);
  r->kvs = NULL;
  r->n_kvs = 0;
  for (size_t i = 0; i < r->n_entries; i++)
    free((void *)r->entries[i].key);
  free(r->entries);
  r->entries = NULL;
  r->n_entries = 0;
  if (r->node_status)
    mq_node_status_free(r->node_status);
  r->node_status = NULL;
  free(r->recover);
  r->recover = NULL;
}

void mq_node_status_free(struct mq_node_status *s) {
  if (!s)
    return;
  free(s->members);
  free(s->shards);
  free(s);
}
