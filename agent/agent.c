/* Process lifecycle: start the parts in order, wait for a signal, stop them
 * in reverse order. */
#include "agent.h"

#include "api/server.h"
#include "cluster/node.h"
#ifdef MQ_HAVE_NACOS
#include "discovery/nacos.h"
#endif
#include "feed/feed.h"
#include "grpc/cq.h"
#include "ingest/ingest.h"
#include "peer/peer.h"
#include "peer/transport.h"
#include "util/alloc.h"
#include "util/log.h"
#ifdef MQ_HAVE_DNS
#include "discovery/dns.h"
#endif

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* Blocks the stop signals in this thread, so every thread started after
 * inherits the mask and only sigwait() below receives them. */
static void block_stop_signals(sigset_t *set) {
  sigemptyset(set);
  sigaddset(set, SIGTERM);
  sigaddset(set, SIGINT);
  pthread_sigmask(SIG_BLOCK, set, NULL);
  signal(SIGPIPE, SIG_IGN);
}

/* A second SIGTERM or SIGINT while the drain waits: stop waiting. */
static bool stop_signalled(void *arg) {
  const sigset_t *stop = arg;
  struct timespec zero = {0, 0};
  int sig = sigtimedwait(stop, NULL, &zero);
  if (sig > 0)
    mq_warn("main", "received %s again: not waiting any longer",
            sig == SIGTERM ? "SIGTERM" : "SIGINT");
  return sig > 0;
}

static void ingest_metrics(void *ingest, struct mq_buf *b) { mq_ingest_metrics(ingest, b); }

static void loop_idle(struct mq_loop_io *io, bool idle) {
  (void)io;
  mq_alloc_trim(idle);
}

int mq_agent_run(const struct mq_config *cfg) {
  sigset_t stop;
  block_stop_signals(&stop);

  struct mq_status st;
  mq_status_clear(&st);
  struct mq_node *node = NULL;
  struct mq_api_server *rpc = NULL;
  struct mq_feed *feed = NULL;
  struct mq_ingest *ingest = NULL;
#ifdef MQ_HAVE_DNS
  struct mq_dns_discovery *dns = NULL;
#endif
  int status = 1;

#ifdef MQ_HAVE_NACOS
  /* The Nacos config is read before anything starts (flags and the
   * environment still win); the agent then runs with the result. */
  struct mq_nacos *nacos = NULL;
  static struct mq_config with_nacos;
  if (cfg->nacos_addr[0]) {
    if (mq_nacos_new(&nacos, cfg, &with_nacos, &st)) {
      mq_error("main", "cannot start the Nacos client: %s", st.msg);
      return 1;
    }
    cfg = &with_nacos;
  }
#endif

  /* The completion queue the core loop polls: the peer transport's calls
   * and, with one gRPC thread, the API server's are served on it. */
  struct mq_cq *cq = NULL;
  if (mq_cq_new(&cq, &st)) {
    mq_error("main", "cannot create the completion queue: %s", st.msg);
#ifdef MQ_HAVE_NACOS
    mq_nacos_free(nacos);
#endif
    return 1;
  }
  struct mq_loop_io loop;
  mq_cq_loop_io(cq, &loop);
  loop.idle = loop_idle;
  loop.background_snapshots = cfg->snapshot_fork;
  struct mq_peer_transport transport;
  mq_peer_transport_init(&transport, cfg, cq);
  struct mq_node_io io = {&loop, &transport.t};

  /* Even a lone agent, which opens no peer port, refuses TLS files that
   * would fail once peers come. */
  if (mq_peer_tls_check(cfg, &st)) {
    mq_error("main", "%s", st.msg);
    goto out_node;
  }
  if (mq_node_new(&node, cfg, &io, &st)) {
    mq_error("main", "cannot create the node: %s", st.msg);
    goto out_node;
  }
  if (mq_node_start(node, &st)) {
    mq_error("main", "cannot start the core loop: %s", st.msg);
    goto out_node;
  }
#ifdef MQ_HAVE_DNS
  if (cfg->dns_name[0] && mq_dns_discovery_start(&dns, node, cfg, &st)) {
    mq_error("main", "cannot start DNS discovery for %s: %s", cfg->dns_name, st.msg);
    goto out_node;
  }
#endif
  if (mq_api_server_start(&rpc, node, cfg, cfg->grpc_threads <= 1 ? cq : NULL, &st)) {
    mq_error("main", "cannot start the gRPC API on %s:%d: %s", cfg->api_bind, cfg->port, st.msg);
    goto out_node;
  }
  /* HTTP feed (agent/feed): probes, metrics, websocket change feed. */
  if (mq_feed_start(&feed, node, cfg, &st)) {
    mq_error("main", "cannot start the HTTP server on port %d: %s", cfg->http_port, st.msg);
    mq_api_server_shutdown(rpc);
    mq_api_server_free(rpc);
    goto out_node;
  }
  /* Kafka ingestion (agent/ingest): a front end like the API. */
  if (mq_ingest_start(&ingest, node, cfg, &st)) {
    mq_error("main", "cannot start Kafka ingestion: %s", st.msg);
    mq_feed_stop(feed);
    mq_feed_free(feed);
    mq_api_server_shutdown(rpc);
    mq_api_server_free(rpc);
    goto out_node;
  }
  mq_feed_set_extra_metrics(feed, ingest_metrics, ingest);
#ifdef MQ_HAVE_NACOS
  /* Every port is known now: register, list, follow the config. */
  if (nacos)
    mq_nacos_start(nacos, node, mq_api_server_port(rpc), feed ? mq_feed_port(feed) : -1);
#endif
  /* A lone agent is ready within milliseconds; an agent of a cluster may
   * wait for its peers, and says so on /readyz meanwhile. */
  for (int waited = 0; !mq_node_ready(node) && waited < 2000; waited += 5)
    nanosleep(&(struct timespec){0, 5 * 1000000L}, NULL);
  mq_info("main", "serving the API on %s:%d (%d shards)", cfg->api_bind, mq_api_server_port(rpc),
          cfg->shards_total);
  char http[32] = "";
  if (feed)
    snprintf(http, sizeof http, " http=0.0.0.0:%d", mq_feed_port(feed));
  const char *peer_addr = mq_node_peer_address(node);
  printf("memquorum ready: node=%s api=%s:%d%s%s%s\n", cfg->node_id, cfg->api_bind,
         mq_api_server_port(rpc), http, peer_addr[0] ? " peer=" : "", peer_addr);
  fflush(stdout);

  int sig = 0;
  sigwait(&stop, &sig);
  mq_info("main", "received %s: shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
  status = 0;
#ifdef MQ_HAVE_NACOS
  mq_nacos_deregister(nacos); /* before the drain: nobody new finds this agent */
#endif

  /* /readyz turns 503 first; the agent keeps serving until leaving costs
   * no shard its majority (at most --drain-timeout, or until a second
   * signal), then hands its led shards to other replicas; then stop
   * accepting and finish in-flight calls while the core loop still serves
   * them; close the websockets (1001) while their watches can still be
   * closed through the loop; then stop the loop. */
  /* Ingestion stops first, while the node still commits: it leaves the
   * group with its offsets committed, and another agent takes over its
   * partitions during the drain. */
  mq_feed_set_extra_metrics(feed, NULL, NULL);
  mq_ingest_stop(ingest);
  mq_feed_set_draining(feed);
  mq_node_drain(node, cfg->drain_timeout_ms, stop_signalled, &stop);
  mq_api_server_shutdown(rpc);
  mq_feed_stop(feed);
  mq_feed_free(feed);
#ifdef MQ_HAVE_DNS
  mq_dns_discovery_stop(dns);
  dns = NULL;
#endif
  /* The API server is freed after the loop stops: a call the node
   * completes while stopping still needs its completion queue. */
  mq_node_stop(node);
  mq_api_server_free(rpc);
out_node:
#ifdef MQ_HAVE_DNS
  mq_dns_discovery_stop(dns);
#endif
#ifdef MQ_HAVE_NACOS
  mq_nacos_free(nacos); /* before the node: its thread calls into it */
#endif
  if (node)
    mq_node_stop(node);
  mq_node_free(node);
  /* After the node: its loop polled the queue until mq_node_free(). */
  mq_peer_transport_close(&transport);
  mq_cq_shutdown(cq);
  while (mq_cq_poll(cq, 1000, 64) >= 0) {
  }
  mq_cq_free(cq);
  if (status == 0)
    mq_info("main", "stopped cleanly");
  return status;
}
