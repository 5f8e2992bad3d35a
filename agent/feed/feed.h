/* The HTTP port: probes, metrics and the websocket change feed
 * (DESIGN.md sections 4 and 8).
 *
 * One libwebsockets context served by its own thread answers
 *   GET /healthz                 200 "ok" while the process runs
 *   GET /readyz                  200 when the node is ready and not draining,
 *                                else 503 with the reason
 *   GET /metrics                 Prometheus text exposition 0.0.4
 *   GET /actuator/health|info|metrics[/<name>]   Spring Boot actuator shapes
 *   GET /v1/watch (upgrade)      the websocket change feed
 * Anything else is 404; a method other than GET is 405.
 *
 * Bind address. The port binds every IPv4 interface (0.0.0.0), not
 * cfg->api_bind: the kubelet's httpGet probes come to the pod IP, and a
 * loopback-only /readyz would keep every pod unready. The change feed shares
 * the port, so it too is reachable from the pod network; where that network
 * is not trusted, set feed_token (and feed_allowed_origins for browsers).
 * The feed logs a warning at start when it serves all interfaces without a
 * token. Token and Origin checks apply to the websocket upgrade only, never
 * to probes or metrics.
 *
 * The feed protocol. A subscriber sends one text message
 *   {"subscribe": {"prefix": "user:123:", "topics": ["t1"], "from": {"7": 1042}}}
 * and gets {"subscribed": {...}} back once its watches are registered with
 * the core loop (a write made after that is seen), then one text message per
 * event, in revision order per shard. "from" resumes after the given
 * revision of each named shard. Errors arrive as {"error": ..., "message":
 * ...} followed by a close: 1008 bad subscription, 1003 binary message,
 * 1009 message too big, 4000 revision compacted (with a snapshot-then-resume
 * hint), 4008 subscriber too slow, 1001 agent shutting down.
 *
 * Threads: start, set_draining, stop and free are called from one thread
 * (main); set_draining may be called from any thread. Everything else runs
 * on the feed's service thread, except the watch notify callbacks, which run
 * on the core loop and only mark a connection and wake the service thread. */
#ifndef MQ_FEED_FEED_H
#define MQ_FEED_FEED_H

#include "util/err.h"

struct mq_node;
struct mq_config;
struct mq_feed;

/* Binds 0.0.0.0:cfg->http_port (0 = any free port) and starts the service
 * thread. node and cfg are borrowed until mq_feed_free(); the node must keep
 * running until mq_feed_stop() returns (watches are closed through it).
 * With cfg->http_port == -1 the feed is off: returns 0 and *out = NULL.
 * Returns 0, or MQ_EIO (cannot bind) / MQ_ENOMEM with a message in st. */
int mq_feed_start(struct mq_feed **out, struct mq_node *node, const struct mq_config *cfg,
                  struct mq_status *st);

/* The bound port. */
int mq_feed_port(const struct mq_feed *f);

/* From now on /readyz and /actuator/health answer 503 "draining" (graceful
 * shutdown: let the load balancer stop sending before the API stops).
 * Idempotent; f may be NULL. */
void mq_feed_set_draining(struct mq_feed *f);

/* Closes every websocket with 1001 "agent shutting down" (waiting up to 3 s
 * for the close handshakes), stops serving HTTP and joins the thread.
 * Idempotent; f may be NULL. */
void mq_feed_stop(struct mq_feed *f);

/* Stops if needed, then frees. f may be NULL. */
void mq_feed_free(struct mq_feed *f);

/* Metrics of a module outside the node (the Kafka consumer), appended to
 * /metrics by fn(arg, b) in the Prometheus text format, on the feed's
 * thread; fn must not block. One hook; fn NULL removes it, and once that
 * returns fn is not running and will not run. Any thread; f may be NULL. */
struct mq_buf;
typedef void (*mq_feed_metrics_fn)(void *arg, struct mq_buf *b);
void mq_feed_set_extra_metrics(struct mq_feed *f, mq_feed_metrics_fn fn, void *arg);

#endif
