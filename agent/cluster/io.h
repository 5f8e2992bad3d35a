/* What the core loop needs from the world, as two small operation tables
 * with an impl pointer (in the style of canonical/raft's raft_io):
 *
 *   struct mq_loop_io     the loop's wait and wake-up, its clocks and its
 *                         randomness;
 *   struct mq_transport   the other agents: Raft frames, calls and their
 *                         answers, and the handshake that names a peer.
 *
 * agent.c wires the real ones: grpc/cq.h polls the gRPC completion queue
 * that the peer transport and the API server share, and peer/transport.h
 * talks gRPC to the other agents. The cluster simulator (tests/cluster-sim)
 * wires in-memory ones over a simulated clock and network. Nothing in
 * cluster/ includes gRPC. */
#ifndef MQ_CLUSTER_IO_H
#define MQ_CLUSTER_IO_H

#include "util/err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- the loop --------------------------------------------------------- */

struct mq_loop_io {
  void *impl;
  /* Runs the events that are ready (at most max), waiting up to timeout_ms
   * for the first one. Returns how many ran, or -1 once shut down and
   * drained. The loop thread only. */
  int (*poll)(struct mq_loop_io *io, int timeout_ms, int max);
  /* Makes a poll in progress (or the next one) return. Any thread. */
  void (*wake)(struct mq_loop_io *io);
  /* Ends polling: poll runs what is queued, then returns -1. */
  void (*shutdown)(struct mq_loop_io *io);
  /* Monotonic time and the wall clock, in ms. Any thread. */
  int64_t (*mono_ms)(struct mq_loop_io *io);
  int64_t (*wall_ms)(struct mq_loop_io *io);
  /* Seeds and jitter (never for secrets). The loop thread only. */
  uint64_t (*random)(struct mq_loop_io *io);
  /* The node went quiet (idle: no requests or expiries for a while) or
   * busy again; the agent hands the memory its allocator keeps back to the
   * system while quiet (util/alloc.h). May be NULL. The loop thread only. */
  void (*idle)(struct mq_loop_io *io, bool idle);
  /* The process may fork a child to build a snapshot from a copy-on-write
   * image of itself (util/forkjob.h), and start a thread to decode one a
   * leader sent (cluster/install.h), so the loop never stalls for the
   * serialization of a large shard. False: both in the loop (a simulator
   * running many nodes in one deterministic process). */
  bool background_snapshots;
  /* Without background_snapshots: a snapshot a leader sent, decoded when
   * it arrives, goes in at the next tick instead of at once, as it would
   * once a thread is done with it; the entries committed meanwhile are
   * kept and applied after it. A simulator sets it to run that path. */
  bool defer_installs;
};

/* ---- the transport ---------------------------------------------------- */

#define MQ_PEER_PROTOCOL_VERSION 1

/* What an agent can do beyond its protocol version, as bits in its hello:
 * an agent uses a feature with another only when both list it, so agents
 * of different versions keep working together during a rolling upgrade. */
enum {
  /* forwarded requests and their answers ride the pipes (cluster/forward.c) */
  MQ_PEER_FEATURE_FORWARD_FRAMES = 1u
};

/* Who an agent is, as it says in its handshake. */
struct mq_peer_hello {
  char node_id[128];
  uint64_t incarnation;
  int32_t shards_total;
  uint32_t protocol_version;
  char peer_address[300]; /* host:port */
  uint64_t seed_hash;     /* of shards and replication factor: must match */
  uint64_t features;      /* MQ_PEER_FEATURE_* */
};

struct mq_peer_call_ctx; /* one incoming call awaiting its answer */

/* Events from the transport. They run on the thread that polls the loop
 * (or a transport thread of its own), must not block, and must copy what
 * they keep. */
struct mq_peer_callbacks {
  /* A Raft frame from `from` (borrowed for the call). */
  void (*on_frame)(void *arg, const struct mq_peer_hello *from, const uint8_t *data, size_t len);
  /* A peer completed a handshake with us, in either direction. Called
   * again when it comes back under a new incarnation, and also once per
   * new connection, so the same incarnation may be reported more than
   * once. */
  void (*on_peer_up)(void *arg, const struct mq_peer_hello *peer);
  /* Our connection to node_id broke (it is re-dialed while frames are sent
   * to it). Follows an on_peer_up of that connection. */
  void (*on_peer_down)(void *arg, const char *node_id);
  /* An incoming call: body borrowed for the call; answer exactly once
   * with reply(ctx, ...), from any thread, at any later time. */
  void (*on_call)(void *arg, struct mq_peer_call_ctx *ctx, const struct mq_peer_hello *from,
                  const uint8_t *body, size_t len);
  void *arg;
};

/* Completion of an outgoing call: rc 0 with the reply bytes (borrowed for
 * the callback), or MQ_EUNAVAIL (cannot connect / peer gone), MQ_ETIMEDOUT
 * (deadline), MQ_ECANCELED (shutdown), with a message in st. */
typedef void (*mq_peer_call_done)(void *arg, int rc, const struct mq_status *st,
                                  const uint8_t *reply, size_t len);

struct mq_transport {
  void *impl;
  /* Starts listening and dialing as `self` (copied; a port 0 in its
   * address is replaced by the bound one), reporting to cb. 0 or an error
   * with a message. */
  int (*start)(struct mq_transport *t, const struct mq_peer_hello *self,
               const struct mq_peer_callbacks *cb, struct mq_status *st);
  /* The hello this agent sends, once started. */
  const struct mq_peer_hello *(*self)(struct mq_transport *t);
  /* Queues a frame (copied) for node_id at addr ("host:port"). Frames may
   * be lost (Raft tolerates it). 0, MQ_ENOMEM, MQ_EINVAL, or MQ_EUNAVAIL
   * after shutdown. Never blocks. */
  int (*send)(struct mq_transport *t, const char *node_id, const char *addr, const uint8_t *data,
              size_t len);
  /* Optional. When set, frames send() queued may wait for it: the loop
   * calls it at the end of every round, so that what a round sends one
   * peer leaves together. */
  void (*flush)(struct mq_transport *t);
  /* Sends body (copied) to the agent at addr; done runs exactly once unless
   * this returns non-zero. deadline_ms is on the loop's mono_ms clock. */
  int (*call)(struct mq_transport *t, const char *addr, const uint8_t *body, size_t len,
              int64_t deadline_ms, mq_peer_call_done done, void *arg);
  /* Answers an incoming call (reply copied); rc != 0 sends that error with
   * st's message instead. Frees ctx. Any thread. */
  void (*reply)(struct mq_transport *t, struct mq_peer_call_ctx *ctx, int rc,
                const struct mq_status *st, const uint8_t *reply, size_t len);
  /* Stops: no callback runs after it returns. Not from a callback. */
  void (*shutdown)(struct mq_transport *t);
};

/* What a node is built with (cluster/node.h). Borrowed for its lifetime. */
struct mq_node_io {
  struct mq_loop_io *loop;
  struct mq_transport *transport;
};

#endif
