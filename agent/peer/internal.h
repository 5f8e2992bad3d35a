/* Internals shared by the files of the peer transport (agent/peer):
 * peer.c (lifecycle, threads, handshake checks), server.c (the Pipe and
 * Call methods we serve), pipe.c (outgoing pipes and their frame queues),
 * call.c (outgoing calls); mutual TLS is grpc/tls.h's, set up in peer.c.
 *
 * Completion-queue model, as in the public server (rpc/internal.h): one
 * grpc_completion_queue, the core loop's (grpc/cq.h) or our own polled by
 * one or two threads of ours; every tag is a
 * struct mq_grpc_tag embedded in a heap object, and the polling thread calls
 * tag->fn(tag, ok). Each object is reference counted: one reference per
 * batch in flight, plus one for whoever else holds a pointer to it.
 *
 * Every batch we hand to the C core is counted in net->ops from before
 * grpc_call_start_batch() until its handler returned. Shutdown waits for
 * ops == 0 and then sets cq_closing under net->mu; nothing starts a batch
 * after that, so the queue is shut down only when it can hold no more of
 * our tags.
 *
 * Locking: net->mu guards the peer table, the list of live calls, the
 * call-channel cache, object reference counts and the state flags. User
 * callbacks always run without it. The C core never runs our code inside
 * its calls (completions only go to the queue), so starting batches,
 * cancelling calls and destroying channels under net->mu is safe. */
#ifndef MQ_PEER_INTERNAL_H
#define MQ_PEER_INTERNAL_H

#include "grpc/cq.h"
#include "grpc/pack.h"
#include "grpc/tag.h"
#include "grpc/tls.h"
#include "peer/peer.h"
#include "util/ratelimit.h"

#include "memquorum/v1/peer.pb-c.h"

#include <grpc/grpc.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define PN_MAX_MSG (64 * 1024 * 1024)     /* send and receive limit, bytes */
#define PN_QUEUE_FRAMES 256               /* per-peer queue bound, frames */
#define PN_QUEUE_BYTES (64 * 1024 * 1024) /* per-peer queue bound, frame bytes */
#define PN_MAX_FRAME (PN_MAX_MSG - 64)    /* room for the PipeMessage framing */
#define PN_BACKOFF_MIN_MS 50
#define PN_BACKOFF_MAX_MS 2000
#define PN_FRAME_TTL_MS 10000 /* frames older than this are not worth a dial */
#define PN_HANDSHAKE_MS 5000  /* dial + Hello/Welcome must fit in this */
#define PN_KEEPALIVE_MS 10000
#define PN_KEEPALIVE_TIMEOUT_MS 5000
#define PN_CALL_DEFAULT_MS 5000
#define PN_MAX_STREAMS 1024   /* per connection to our server */
#define PN_CHANNEL_CACHE 32   /* call channels kept, one per address */
#define PN_LOG_EVERY_MS 30000 /* repeated failures are logged this often */
#define PN_ERR_KEY "mq-err"   /* trailer carrying the exact MQ_E* code */

#define PN_PIPE_PATH "/memquorum.peer.v1.Peer/Pipe"
#define PN_CALL_PATH "/memquorum.peer.v1.Peer/Call"

enum pn_kind {
  PN_K_IPIPE,
  PN_K_INCALL,
  PN_K_OPIPE,
  PN_K_OCALL
};

/* A grpc call the transport can cancel at shutdown. Linked in net->live
 * while its object is alive; call is NULL once released early. */
struct pn_live {
  struct pn_live *prev, *next;
  grpc_call *call;
  enum pn_kind kind;
};

struct pn_frame {
  struct pn_frame *next;
  grpc_slice msg; /* a packed PipeMessage{frame} */
  size_t len;     /* the frame's own length */
  int64_t at_ms;  /* when it was queued */
};

enum pn_peer_state {
  PN_IDLE,
  PN_DIALING,
  PN_UP,
  PN_BACKOFF
};

struct pn_opipe;

/* One destination node. Lives until mq_peer_free(). Guarded by net->mu. */
struct pn_peer {
  struct pn_peer *next;
  char node_id[128];
  char addr[300];
  enum pn_peer_state state;
  grpc_channel *ch;
  struct pn_opipe *pipe;       /* the current attempt; NULL when none */
  bool sending;                /* a frame of pipe is on the wire */
  bool up_reported;            /* on_peer_up ran and on_peer_down not yet */
  struct mq_peer_hello remote; /* its Welcome, valid while up_reported */
  struct pn_frame *head, *tail;
  size_t n_frames, n_bytes;
  int backoff_ms;           /* next failed dial waits about this long */
  int64_t next_dial_ms;     /* PN_BACKOFF: when to dial again */
  int64_t dial_deadline_ms; /* PN_DIALING: when to give up the handshake */
  struct mq_ratelimit fail_log;
};

struct pn_channel {
  char addr[300];
  grpc_channel *ch;
  int64_t used_ms;
};

struct mq_peer_net {
  struct mq_peer_hello self;
  struct mq_peer_callbacks cb;
  grpc_server *server;
  grpc_completion_queue *cq;
  bool shared_cq;                 /* the core loop's (grpc/cq.h): no threads of ours */
  struct mq_grpc_tag_group group; /* every batch of ours: counted in ops */
  void *pipe_method, *call_method;
  int port;
  bool tls_on;       /* mutual TLS on the peer links; else plaintext */
  struct mq_tls tls; /* valid while tls_on */
  pthread_t threads[2];
  int n_threads;
  pthread_t timer;
  bool timer_started;

  pthread_mutex_t mu;
  pthread_cond_t cv; /* ops drained, server notified, timer wake-ups */
  atomic_long ops;   /* batches in flight (see top of file) */
  bool stopping;     /* no new dials, sends, calls or slots */
  bool cq_closing;   /* no batch may start any more */
  bool shut;         /* mq_peer_shutdown finished */
  bool server_notified;
  struct mq_grpc_tag shutdown_tag;
  struct pn_live live; /* list head */
  struct pn_peer *peers;
  bool deferred; /* sends wait for mq_peer_flush() (mq_peer_defer_sends) */
  struct pn_channel chans[PN_CHANNEL_CACHE];
  unsigned rand_state;
  struct mq_ratelimit refuse_log;
  struct mq_ratelimit unreachable_log; /* calls that found no connection */

  struct {
    atomic_uint_fast64_t frames_sent, frames_received, frames_dropped, bytes_sent, bytes_received,
        dials, dial_failures, handshakes_refused, calls_sent, calls_failed, calls_received;
  } st;
};

#define PN_STAT_ADD(net, field, n)                                                                 \
  atomic_fetch_add_explicit(&(net)->st.field, (uint_fast64_t)(n), memory_order_relaxed)

/* ---- peer.c ---- */
/* Starts a batch, counting it in net->ops. The caller guarantees that the
 * queue is not closing: it holds a batch of its own, or it checked
 * !stopping (or !cq_closing) under net->mu. */
grpc_call_error pn_start_batch(struct mq_peer_net *net, grpc_call *call, const grpc_op *ops,
                               size_t n, struct mq_grpc_tag *tag);
/* Ends the count of a batch that was counted but never started. */
void pn_op_end(struct mq_peer_net *net);
void pn_live_add(struct mq_peer_net *net, struct pn_live *l, grpc_call *call,
                 enum pn_kind kind); /* under mu */
void pn_live_del(struct pn_live *l); /* under mu */
/* Cancels l->call as shutdown does (under mu, l->call set). */
void pn_live_cancel(struct pn_live *l);
/* Checks a remote hello against ours. Returns true when compatible;
 * otherwise writes "shards_total 32 != ours 16" into reason. */
bool pn_hello_ok(const struct mq_peer_net *net, const struct mq_peer_hello *h, char *reason,
                 size_t cap);
/* Message <-> struct. from_msg fails (with a reason) on missing or
 * over-long fields. to_msg borrows the strings of h. */
bool pn_hello_from_msg(const Memquorum__Peer__V1__Hello *m, struct mq_peer_hello *h, char *reason,
                       size_t cap);
void pn_hello_to_msg(const struct mq_peer_hello *h, Memquorum__Peer__V1__Hello *m);
/* A jittered delay in [ms/2, ms]; under mu. */
int pn_jitter(struct mq_peer_net *net, int ms);
/* A channel to addr with the args pipes and calls share, over mutual TLS
 * when it is on (the credentials read the files again if they changed). */
grpc_channel *pn_channel_create(struct mq_peer_net *net, const char *addr);
/* Copies a slice into a NUL-terminated buffer (truncating). */
void pn_slice_str(grpc_slice s, char *buf, size_t cap);

/* ---- peer_server.c ---- */
int pn_server_post_slots(struct mq_peer_net *net);
/* At shutdown, with ops drained: drops the grpc_call of every unanswered
 * incoming call, and at free, frees them. */
void pn_server_release_calls(struct mq_peer_net *net);
void pn_server_free_calls(struct mq_peer_net *net);

/* ---- peer_pipe.c ---- */
/* Timer thread: dials due peers, times out handshakes. */
void *pn_timer_thread(void *arg);
/* At shutdown, with ops drained: destroys peer channels; at free, frees
 * peers and their queues. */
void pn_pipes_release(struct mq_peer_net *net);
void pn_pipes_free(struct mq_peer_net *net);

/* ---- peer_call.c ---- */
void pn_calls_release(struct mq_peer_net *net);

#endif
