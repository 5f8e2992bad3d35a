/* The peer transport as the core loop's transport interface (transport.h):
 * each op forwards to peer.h. */
#include "peer/transport.h"
#include "peer/peer.h"

#include <stddef.h>

static struct mq_peer_transport *of(struct mq_transport *t) { return t->impl; }

static int start(struct mq_transport *t, const struct mq_peer_hello *self,
                 const struct mq_peer_callbacks *cb, struct mq_status *st) {
  struct mq_peer_transport *pt = of(t);
  int rc = mq_peer_start(&pt->net, pt->cfg, self, cb, pt->cq, st);
  if (rc == 0)
    mq_peer_defer_sends(pt->net); /* the loop flushes every round */
  return rc;
}

static const struct mq_peer_hello *self(struct mq_transport *t) { return mq_peer_self(of(t)->net); }

static int send(struct mq_transport *t, const char *node_id, const char *addr, const uint8_t *data,
                size_t len) {
  return mq_peer_send(of(t)->net, node_id, addr, data, len);
}

static void flush(struct mq_transport *t) {
  if (of(t)->net)
    mq_peer_flush(of(t)->net);
}

static int call(struct mq_transport *t, const char *addr, const uint8_t *body, size_t len,
                int64_t deadline_ms, mq_peer_call_done done, void *arg) {
  return mq_peer_call(of(t)->net, addr, body, len, deadline_ms, done, arg);
}

static void reply(struct mq_transport *t, struct mq_peer_call_ctx *ctx, int rc,
                  const struct mq_status *st, const uint8_t *data, size_t len) {
  (void)t;
  mq_peer_reply(ctx, rc, st, data, len);
}

static void shutdown(struct mq_transport *t) {
  if (of(t)->net)
    mq_peer_shutdown(of(t)->net);
}

void mq_peer_transport_init(struct mq_peer_transport *pt, const struct mq_config *cfg,
                            struct mq_cq *cq) {
  pt->t = (struct mq_transport){.impl = pt,
                                .start = start,
                                .self = self,
                                .send = send,
                                .flush = flush,
                                .call = call,
                                .reply = reply,
                                .shutdown = shutdown};
  pt->cfg = cfg;
  pt->cq = cq;
  pt->net = NULL;
}

void mq_peer_transport_close(struct mq_peer_transport *pt) {
  mq_peer_free(pt->net);
  pt->net = NULL;
}
