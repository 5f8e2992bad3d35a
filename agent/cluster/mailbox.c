/* MPSC mailbox with eventfd wake-ups. */
#include "cluster/mailbox.h"

#include <errno.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <unistd.h>

int mq_mailbox_init(struct mq_mailbox *mb) {
  mb->head = mb->tail = NULL;
  mb->closed = false;
  mb->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (mb->efd < 0)
    return mq_err_from_errno(errno);
  pthread_mutex_init(&mb->lock, NULL);
  return 0;
}

void mq_mailbox_close(struct mq_mailbox *mb) {
  close(mb->efd);
  pthread_mutex_destroy(&mb->lock);
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
  if (was_empty) {
    uint64_t one = 1;
    ssize_t w = write(mb->efd, &one, sizeof one);
    (void)w; /* EAGAIN only if the counter is saturated: a wake-up is pending anyway */
  }
  return 0;
}

struct mq_mail *mq_mailbox_take(struct mq_mailbox *mb) {
  uint64_t v;
  ssize_t r = read(mb->efd, &v, sizeof v);
  (void)r;
  pthread_mutex_lock(&mb->lock);
  struct mq_mail *m = mb->head;
  mb->head = mb->tail = NULL;
  pthread_mutex_unlock(&mb->lock);
  return m;
}

struct mq_mail *mq_mailbox_shut(struct mq_mailbox *mb) {
  pthread_mutex_lock(&mb->lock);
  mb->closed = true;
  struct mq_mail *m = mb->head;
  mb->head = mb->tail = NULL;
  pthread_mutex_unlock(&mb->lock);
  return m;
}
