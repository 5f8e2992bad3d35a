/* Requests as the node holds them (implemented in req.c). */
#ifndef MQ_CLUSTER_REQ_H
#define MQ_CLUSTER_REQ_H

#include "cluster/node.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A FIFO of requests linked through pnext. */
struct req_list {
  struct mq_req *head, *tail;
};

void rl_push(struct req_list *l, struct mq_req *r);
struct mq_req *rl_pop(struct req_list *l);
static inline bool rl_empty(const struct req_list *l) { return l->head == NULL; }

/* Copies a key and a value into one block at *kout, both NUL-terminated:
 * the form of every key/value a request's outputs hold, which
 * mq_req_clear() frees. Returns 0 or MQ_ENOMEM. */
int req_copy_pair(const void *k, size_t klen, const void *v, size_t vlen, const char **kout,
                  const uint8_t **vout);

#endif
