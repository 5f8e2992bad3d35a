/* The core loop's mailbox: a multi-producer, single-consumer queue of
 * struct mq_mail items.
 *
 * Producers (any thread) push; the core loop takes the whole queue at once.
 * A push from another thread that finds the queue empty calls wake(), so a
 * burst of requests costs one wake-up, not one each; the loop's own pushes
 * (callbacks it runs while polling gRPC) wake nobody, since the loop takes
 * its mail before it waits again. Unbounded by itself: its producers bound
 * what they post (one item per in-flight gRPC call). */
#ifndef MQ_CLUSTER_MAILBOX_H
#define MQ_CLUSTER_MAILBOX_H

#include "cluster/node.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

struct mq_mailbox {
  pthread_mutex_t lock;
  struct mq_mail *head;
  struct mq_mail *tail;
  bool closed;
  void (*wake)(void *arg);
  void *wake_arg;
  pthread_t owner;
  atomic_bool owned;
};

/* wake(arg) makes the consumer come and take (any thread). */
void mq_mailbox_init(struct mq_mailbox *mb, void (*wake)(void *arg), void *arg);
void mq_mailbox_close(struct mq_mailbox *mb);
/* Names the calling thread the consumer: its pushes wake nobody. */
void mq_mailbox_own(struct mq_mailbox *mb);
/* Appends m. Returns 0, or MQ_EUNAVAIL once the mailbox is closed. */
int mq_mailbox_push(struct mq_mailbox *mb, struct mq_mail *m);
/* Takes every queued item in FIFO order (NULL if none). Consumer only. */
struct mq_mail *mq_mailbox_take(struct mq_mailbox *mb);
/* True if items are queued. Consumer only. */
bool mq_mailbox_pending(struct mq_mailbox *mb);
/* Refuses further pushes; returns what was still queued. */
struct mq_mail *mq_mailbox_shut(struct mq_mailbox *mb);

#endif
