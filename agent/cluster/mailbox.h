/* The core loop's mailbox: a multi-producer, single-consumer queue of
 * struct mq_mail items plus an eventfd the consumer polls.
 *
 * Producers (any thread) push; the core loop takes the whole queue at once.
 * The eventfd is written only when a push finds the queue empty, so a burst
 * of requests costs one wake-up, not one syscall each. Unbounded by itself:
 * its producers bound what they post (one item per in-flight gRPC call). */
#ifndef MQ_CLUSTER_MAILBOX_H
#define MQ_CLUSTER_MAILBOX_H

#include "cluster/node.h"

#include <pthread.h>
#include <stdbool.h>

struct mq_mailbox {
  pthread_mutex_t lock;
  struct mq_mail *head;
  struct mq_mail *tail;
  int efd;
  bool closed;
};

int mq_mailbox_init(struct mq_mailbox *mb);
void mq_mailbox_close(struct mq_mailbox *mb);
/* Appends m. Returns 0, or MQ_EUNAVAIL once the mailbox is closed. */
int mq_mailbox_push(struct mq_mailbox *mb, struct mq_mail *m);
/* Takes every queued item in FIFO order (NULL if none) and clears the
 * eventfd. Consumer thread only. */
struct mq_mail *mq_mailbox_take(struct mq_mailbox *mb);
/* Refuses further pushes; returns what was still queued. */
struct mq_mail *mq_mailbox_shut(struct mq_mailbox *mb);

#endif
