/* The peer transport (peer.h) as the core loop's struct mq_transport
 * (cluster/io.h): what agent.c hands to the node. The transport starts
 * when the node starts it (a lone agent never does) and is freed by its
 * owner after the node. */
#ifndef MQ_PEER_TRANSPORT_H
#define MQ_PEER_TRANSPORT_H

#include "cluster/io.h"
#include "config/config.h"

struct mq_cq;
struct mq_peer_net;

struct mq_peer_transport {
  struct mq_transport t; /* t.impl is this object */
  const struct mq_config *cfg;
  struct mq_cq *cq;
  struct mq_peer_net *net; /* NULL until started */
};

/* cfg borrowed; cq: the queue the transport puts its calls on (the loop's,
 * grpc/cq.h), or NULL for threads of its own. */
void mq_peer_transport_init(struct mq_peer_transport *pt, const struct mq_config *cfg,
                            struct mq_cq *cq);
/* After the node that used it is freed. */
void mq_peer_transport_close(struct mq_peer_transport *pt);

#endif
