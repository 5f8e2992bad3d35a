/* Private state of the node, shared by the files of agent/cluster/ that
 * make up the core loop (node.c, exec.c, watch.c). Everything here is owned
 * by the core loop thread unless a field says otherwise. */
#ifndef MQ_CLUSTER_INTERNAL_H
#define MQ_CLUSTER_INTERNAL_H

#include "cluster/mailbox.h"
#include "cluster/node.h"
#include "store/sm.h"
#include "util/buf.h"

#include <pthread.h>
#include <stdatomic.h>

/* Mailbox item kinds. */
enum {
  MAIL_REQ = 1,
  MAIL_WATCH_OPEN,
  MAIL_WATCH_CLOSE,
};

/* One shard replica hosted by this agent. */
struct shard {
  int32_t id;
  struct mq_sm *sm;
  uint64_t last_index; /* last log index assigned */
  uint64_t term;
  /* published for other threads (mq_node_metrics) after each apply */
  _Atomic uint64_t pub_keys, pub_bytes, pub_applied;
  _Atomic int64_t pub_revision;
};

struct watch_hub {
  struct mq_watch *head; /* active watches, core-thread owned list */
};

struct mq_node {
  const struct mq_config *cfg;
  struct mq_store_limits limits;
  struct shard *shards;
  int n_shards;

  struct mq_mailbox mailbox;
  pthread_t thread;
  bool started;
  atomic_bool stopping;
  atomic_bool ready;
  int timer_fd;
  int epoll_fd;

  /* Set when the core loop has exited (or never ran), under exit_lock: a
   * watch closed after that is released on the closing thread. */
  pthread_mutex_t exit_lock;
  pthread_cond_t exit_cond;
  bool loop_exited;

  struct mq_buf scratch; /* command encoding, core thread only */
  struct watch_hub watches;

  /* metrics, written by the core loop only */
  _Atomic uint64_t m_requests[MQ_REQ_TYPES];
  _Atomic uint64_t m_errors[MQ_REQ_TYPES];
  _Atomic uint64_t m_expired, m_watches_open, m_watch_events, m_watches_slow;
  uint64_t expire_scan_at_ms; /* monotonic ms of the next TTL sweep */
};

/* exec.c */
void mq_exec_request(struct mq_node *n, struct mq_req *r);
void mq_exec_expire_sweep(struct mq_node *n);
int64_t mq_now_wall_ms(void);
int64_t mq_now_mono_ms(void);

/* watch.c */
void mq_watch_open_on_loop(struct mq_node *n, struct mq_watch *w);
void mq_watch_close_on_loop(struct mq_node *n, struct mq_watch *w);
void mq_watch_dispatch(struct mq_node *n, const struct mq_event *ev);
void mq_watch_end_all(struct mq_node *n, int code, const char *msg);
struct mq_watch *mq_watch_from_mail(struct mq_mail *m);

#endif
