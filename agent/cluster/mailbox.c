/* MPSC mailbox; wake-ups through the consumer's callback. */
#include "cluster/mailbox.h"

void mq_mailbox_init(struct mq_mailbox *mb, void (*wake)(void *arg), void *arg) {
  mb->head = mb->tail = NULL;
  mb->closed = false;
  mb->wake = wake;
  mb->wake_arg = arg;
  atomic_init(&mb->owned, false);
  pthread_mutex_init(&mb->lock, NULL);
}

void mq_mailbox_close(struct mq_mailbox *mb) { pthread_mutex_destroy(&mb->lock); }

void mq_mailbox_own(struct mq_mailbox *mb) {
  mb->owner = pthread_self();
  atomic_store(&mb->owned, true);
}

int mq_mailbox_push(struct mq_mailbox *mb, struct mq_mail *m) {
  m->next = NULL;
  pthread_mutex_lock(&mb->lock);
  if (mb->closed) {
    pthread_mutex_unlock(&mb->lock);
    return MQ_EUNAVAIL;
  }
  bool was_empty = mb->head == NULL;
  if (mb->tail)
    mb->tail->next = m;
  else
    mb->head = m;
  mb->tail = m;
  pthread_mutex_unlock(&mb->lock);
  if (was_empty && mb->wake &&
      !(atomic_load(&mb->owned) && pthread_equal(mb->owner, pthread_self())))
    mb->wake(mb->wake_arg);
  return 0;
}

struct mq_mail *mq_mailbox_take(struct mq_mailbox *mb) {
  pthread_mutex_lock(&mb->lock);
  struct mq_mail *m = mb->head;
  mb->head = mb->tail = NULL;
  pthread_mutex_unlock(&mb->lock);
  return m;
}

bool mq_mailbox_pending(struct mq_mailbox *mb) {
  pthread_mutex_lock(&mb->lock);
  bool any = mb->head != NULL;
  pthread_mutex_unlock(&mb->lock);
  return any;
}

struct mq_mail *mq_mailbox_shut(struct mq_mailbox *mb) {
  pthread_mutex_lock(&mb->lock);
  mb->closed = true;
  struct mq_mail *m = mb->head;
  mb->head = mb->tail = NULL;
  pthread_mutex_unlock(&mb->lock);
  return m;
}
