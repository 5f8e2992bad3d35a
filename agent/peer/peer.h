/* The peer transport: how agents talk to each other on the peer port
 * (DESIGN.md section 6, proto/memquorum/v1/peer.proto).
 *
 * It moves bytes and knows nothing of what they mean:
 *  - Raft frames: mq_peer_send() queues a frame for a node; one Pipe stream
 *    per ordered pair of agents carries them, opened lazily by the sender,
 *    re-dialed with exponential backoff (50 ms doubling to 2 s, jittered)
 *    when it breaks. Each pipe opens with a Hello/Welcome handshake that
 *    exchanges node id, incarnation, shards_total, protocol version and seed
 *    hash; a mismatch is refused with a clear log line on both sides.
 *    Frames are unreliable: Raft tolerates loss, so a full per-peer queue
 *    (bounded in frames and bytes) drops the oldest frame and counts it.
 *  - Calls: mq_peer_call() sends request bytes to an address and completes
 *    with the reply bytes or an error, within a deadline. The receiving side
 *    hands the bytes to the on_call callback and answers with
 *    mq_peer_reply().
 *
 * Security: plaintext, or mutual TLS when cfg names a certificate, key and
 * CA (grpc/tls.h): both ends verify the other's chain against the CA, and
 * the dialling end the fixed name MQ_PEER_TLS_NAME.
 *
 * The handshake, callbacks and call types are the core loop's transport
 * interface (cluster/io.h); peer/transport.h adapts this module to it.
 *
 * Threads: the transport puts its calls on the completion queue it is
 * given (grpc/cq.h), whose poller then runs its callbacks, or else runs
 * completion-queue threads of its own. Every function may be called from
 * any thread. Callbacks run on the polling thread, must not block, and
 * must copy what they keep. */
#ifndef MQ_PEER_PEER_H
#define MQ_PEER_PEER_H

#include "cluster/io.h"
#include "config/config.h"
#include "util/err.h"

#include <stddef.h>
#include <stdint.h>

struct mq_peer_net;
struct mq_cq;

/* Starts the peer server on 0.0.0.0:cfg->peer_port (0: any free port) and
 * the client side. self is copied; its peer_address may name port 0, in
 * which case the bound port replaces it. cq: the queue to use, polled by
 * its owner until mq_peer_shutdown() returned; NULL to run threads of our
 * own. Returns 0 or an error with a message. */
int mq_peer_start(struct mq_peer_net **out, const struct mq_config *cfg,
                  const struct mq_peer_hello *self, const struct mq_peer_callbacks *cb,
                  struct mq_cq *cq, struct mq_status *st);
int mq_peer_port(const struct mq_peer_net *p);

/* With --peer-tls-* set: reads the files and checks them as mq_peer_start()
 * would (readable PEM, the key matching the certificate, the
 * MQ_PEER_TLS_NAME subjectAltName), and warns when the certificate does
 * not verify against the CA. 0 when they pass or TLS is off. */
int mq_peer_tls_check(const struct mq_config *cfg, struct mq_status *st);
/* The hello this agent sends (with the bound port filled in). */
const struct mq_peer_hello *mq_peer_self(const struct mq_peer_net *p);

/* Queues a frame (copied) for node_id reachable at addr ("host:port").
 * Returns 0, MQ_ENOMEM, or MQ_EUNAVAIL after shutdown. Never blocks.
 * MQ_EINVAL for an empty or over-long node_id/addr, or a frame larger
 * than a peer accepts (64 MiB). */
int mq_peer_send(struct mq_peer_net *p, const char *node_id, const char *addr, const uint8_t *data,
                 size_t len);

/* From now on, frames queued by mq_peer_send() wait for mq_peer_flush(),
 * which puts each peer's queue on its pipe as one message. An owner that
 * sends a peer several frames in one pass (the core loop: Raft messages,
 * forwarded requests, their answers) and flushes once at its end pays one
 * write and one flow-control update for them, not one each. Without it,
 * a frame leaves at once when its pipe is idle. */
void mq_peer_defer_sends(struct mq_peer_net *p);
void mq_peer_flush(struct mq_peer_net *p);

/* Sends body (copied) to the peer at addr. deadline_ms is a CLOCK_MONOTONIC
 * time in ms (0: 5 s from now). done runs exactly once, on a transport
 * thread, unless this returns non-zero. */
int mq_peer_call(struct mq_peer_net *p, const char *addr, const uint8_t *body, size_t len,
                 int64_t deadline_ms, mq_peer_call_done done, void *arg);
/* Answers an incoming call (reply copied); rc != 0 sends that error status
 * with st's message instead of a body; the caller's done() gets exactly rc.
 * Frees ctx. If the caller already gave up (deadline, cancel) or the
 * transport was shut down, only frees ctx. Must be called before
 * mq_peer_free(), which frees contexts still unanswered. */
void mq_peer_reply(struct mq_peer_call_ctx *ctx, int rc, const struct mq_status *st,
                   const uint8_t *reply, size_t len);

struct mq_peer_stats {
  uint64_t frames_sent, frames_received, frames_dropped, bytes_sent, bytes_received;
  uint64_t dials, dial_failures, handshakes_refused;
  uint64_t calls_sent, calls_failed, calls_received;
  /* Gauges: frames and frame bytes waiting in all per-peer queues. */
  uint64_t frames_queued, bytes_queued;
};
void mq_peer_stats(const struct mq_peer_net *p, struct mq_peer_stats *out);

/* Stops dialing, ends pipes and calls (outgoing calls complete with
 * MQ_ECANCELED, incoming unanswered calls are cancelled), joins threads.
 * No callback runs after it returns. Call it from a thread of your own,
 * never from a callback or the thread that polls the queue. */
void mq_peer_shutdown(struct mq_peer_net *p);
void mq_peer_free(struct mq_peer_net *p);

#endif
