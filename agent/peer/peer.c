/* The peer transport's lifecycle (rpc/peer.h): the peer server and its
 * completion-queue threads, batch accounting, the ordered shutdown, stats,
 * and the Hello checks both sides of a pipe apply (DESIGN.md section 6).
 * The methods themselves live in peer_server.c, peer_pipe.c and
 * peer_call.c; peer_internal.h describes the model they share. */
#include "peer/internal.h"
#include "util/clock.h"
#include "util/log.h"

#include <grpc/grpc_security.h>
#include <grpc/support/time.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------------ */
/* Small helpers */

grpc_call_error pn_start_batch(struct mq_peer_net *net, grpc_call *call, const grpc_op *ops,
                               size_t n, struct mq_grpc_tag *tag) {
  atomic_fetch_add(&net->ops, 1);
  tag->group = &net->group;
  grpc_call_error e = grpc_call_start_batch(call, ops, n, tag, NULL);
  if (e != GRPC_CALL_OK)
    pn_op_end(net);
  return e;
}

static void group_end(struct mq_grpc_tag_group *g) {
  pn_op_end(MQ_GRPC_CONTAINER(g, struct mq_peer_net, group));
}

void pn_op_end(struct mq_peer_net *net) {
  if (atomic_fetch_sub(&net->ops, 1) == 1) {
    pthread_mutex_lock(&net->mu);
    pthread_cond_broadcast(&net->cv);
    pthread_mutex_unlock(&net->mu);
  }
}

void pn_live_add(struct mq_peer_net *net, struct pn_live *l, grpc_call *call, enum pn_kind kind) {
  l->call = call;
  l->kind = kind;
  l->next = net->live.next;
  l->prev = &net->live;
  net->live.next->prev = l;
  net->live.next = l;
}

void pn_live_del(struct pn_live *l) {
  l->prev->next = l->next;
  l->next->prev = l->prev;
  l->prev = l->next = l;
}

void pn_live_cancel(struct pn_live *l) {
  /* Our own calls end as cancelled; calls peers made to us see the peer
   * going away. */
  if (l->kind == PN_K_IPIPE || l->kind == PN_K_INCALL)
    grpc_call_cancel_with_status(l->call, GRPC_STATUS_UNAVAILABLE, "peer shutting down", NULL);
  else
    grpc_call_cancel_with_status(l->call, GRPC_STATUS_CANCELLED, "peer transport shutting down",
                                 NULL);
}

int pn_jitter(struct mq_peer_net *net, int ms) {
  int half = ms / 2;
  return half + (int)(rand_r(&net->rand_state) % (unsigned)(ms - half + 1));
}

void pn_slice_str(grpc_slice s, char *buf, size_t cap) {
  size_t n = GRPC_SLICE_LENGTH(s);
  if (n >= cap)
    n = cap - 1;
  memcpy(buf, GRPC_SLICE_START_PTR(s), n);
  buf[n] = '\0';
}

grpc_channel *pn_channel_create(struct mq_peer_net *net, const char *addr) {
  grpc_arg args[11];
  int n = 0;
#define PN_INT_ARG(k, v)                                                                           \
  do {                                                                                             \
    args[n].type = GRPC_ARG_INTEGER;                                                               \
    args[n].key = (char *)(k);                                                                     \
    args[n++].value.integer = (v);                                                                 \
  } while (0)
  PN_INT_ARG(GRPC_ARG_MAX_SEND_MESSAGE_LENGTH, PN_MAX_MSG);
  PN_INT_ARG(GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, PN_MAX_MSG);
  PN_INT_ARG(GRPC_ARG_KEEPALIVE_TIME_MS, PN_KEEPALIVE_MS);
  PN_INT_ARG(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, PN_KEEPALIVE_TIMEOUT_MS);
  PN_INT_ARG(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  /* Each channel owns its connection, so a fresh channel never inherits
   * another's reconnect backoff: our own backoff decides when to dial. */
  PN_INT_ARG(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  PN_INT_ARG(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, PN_BACKOFF_MIN_MS);
  PN_INT_ARG(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, PN_BACKOFF_MAX_MS);
  PN_INT_ARG(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, PN_HANDSHAKE_MS); /* connect timeout */
  /* A forwarded request reaches the leader at most once per mq_peer_call. */
  PN_INT_ARG(GRPC_ARG_ENABLE_RETRIES, 0);
#undef PN_INT_ARG
  grpc_channel_credentials *creds;
  if (net->tls_on) {
    /* Peers are dialled by IP or host name; every peer certificate carries
     * this one name instead (peer.h). */
    args[n].type = GRPC_ARG_STRING;
    args[n].key = (char *)GRPC_SSL_TARGET_NAME_OVERRIDE_ARG;
    args[n++].value.string = (char *)MQ_PEER_TLS_NAME;
    creds = mq_tls_channel_creds(&net->tls);
  } else {
    creds = grpc_insecure_credentials_create();
  }
  if (!creds)
    return NULL;
  grpc_channel_args chargs = {(size_t)n, args};
  grpc_channel *ch = grpc_channel_create(addr, creds, &chargs);
  grpc_channel_credentials_release(creds);
  return ch;
}

/* ------------------------------------------------------------------------ */
/* Hello */

bool pn_hello_from_msg(const Memquorum__Peer__V1__Hello *m, struct mq_peer_hello *h, char *reason,
                       size_t cap) {
  memset(h, 0, sizeof *h);
  if (!m) {
    snprintf(reason, cap, "no hello");
    return false;
  }
  size_t id_len = m->node_id ? strlen(m->node_id) : 0;
  size_t addr_len = m->peer_address ? strlen(m->peer_address) : 0;
  if (id_len >= sizeof h->node_id) {
    snprintf(reason, cap, "node_id longer than %zu bytes", sizeof h->node_id - 1);
    return false;
  }
  if (addr_len >= sizeof h->peer_address) {
    snprintf(reason, cap, "peer_address longer than %zu bytes", sizeof h->peer_address - 1);
    return false;
  }
  memcpy(h->node_id, m->node_id ? m->node_id : "", id_len);
  memcpy(h->peer_address, m->peer_address ? m->peer_address : "", addr_len);
  h->incarnation = m->incarnation;
  h->shards_total = m->shards_total;
  h->protocol_version = m->protocol_version;
  h->seed_hash = m->seed_hash;
  h->features = m->features;
  return true;
}

void pn_hello_to_msg(const struct mq_peer_hello *h, Memquorum__Peer__V1__Hello *m) {
  memquorum__peer__v1__hello__init(m);
  m->node_id = (char *)h->node_id;
  m->incarnation = h->incarnation;
  m->shards_total = h->shards_total;
  m->protocol_version = h->protocol_version;
  m->peer_address = (char *)h->peer_address;
  m->seed_hash = h->seed_hash;
  m->features = h->features;
}

bool pn_hello_ok(const struct mq_peer_net *net, const struct mq_peer_hello *h, char *reason,
                 size_t cap) {
  const struct mq_peer_hello *me = &net->self;
  if (h->protocol_version != MQ_PEER_PROTOCOL_VERSION)
    snprintf(reason, cap, "protocol_version %" PRIu32 " != ours %d", h->protocol_version,
             MQ_PEER_PROTOCOL_VERSION);
  else if (h->shards_total != me->shards_total)
    snprintf(reason, cap, "shards_total %" PRId32 " != ours %" PRId32, h->shards_total,
             me->shards_total);
  else if (h->seed_hash != me->seed_hash)
    snprintf(reason, cap,
             "seed_hash %016" PRIx64 " != ours %016" PRIx64
             " (a different replication factor or shard count)",
             h->seed_hash, me->seed_hash);
  else if (h->node_id[0] == '\0')
    snprintf(reason, cap, "empty node_id");
  else if (strcmp(h->node_id, me->node_id) == 0)
    snprintf(reason, cap, "node_id %s is our own", h->node_id);
  else
    return true;
  return false;
}

/* ------------------------------------------------------------------------ */
/* Threads */

static void *cq_thread(void *arg) {
  struct mq_peer_net *net = arg;
  pthread_setname_np(pthread_self(), "mq-peer");
  for (;;) {
    grpc_event ev = grpc_completion_queue_next(net->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    if (ev.type == GRPC_QUEUE_SHUTDOWN)
      break;
    if (ev.type == GRPC_OP_COMPLETE)
      mq_grpc_tag_run(ev.tag, ev.success != 0);
  }
  return NULL;
}

static void shutdown_fn(struct mq_grpc_tag *t, bool ok) {
  struct mq_peer_net *net = MQ_GRPC_CONTAINER(t, struct mq_peer_net, shutdown_tag);
  (void)ok;
  pthread_mutex_lock(&net->mu);
  net->server_notified = true;
  pthread_mutex_unlock(&net->mu);
}

/* ------------------------------------------------------------------------ */
/* Start */

/* Our advertised address with the bound port in place of a missing or 0
 * port. */
static void fill_address(struct mq_peer_net *net, const struct mq_config *cfg) {
  char *a = net->self.peer_address;
  size_t cap = sizeof net->self.peer_address;
  size_t n = strlen(a);
  if (n == 0) {
    const char *host = cfg->advertise_addr[0] ? cfg->advertise_addr : "127.0.0.1";
    if (strchr(host, ':'))
      snprintf(a, cap, "[%s]:%d", host, net->port);
    else
      snprintf(a, cap, "%s:%d", host, net->port);
  } else if (n >= 2 && strcmp(a + n - 2, ":0") == 0) {
    a[n - 1] = '\0';
    size_t m = strlen(a);
    snprintf(a + m, cap - m, "%d", net->port);
  }
}

/* Mutual TLS on the peer port: every certificate carries MQ_PEER_TLS_NAME. */
static void tls_files(const struct mq_config *cfg, struct mq_tls_files *f) {
  *f = (struct mq_tls_files){
      .path = {cfg->peer_tls_cert, cfg->peer_tls_key, cfg->peer_tls_ca},
      .flag = {"--peer-tls-cert", "--peer-tls-key", "--peer-tls-ca"},
      .name = MQ_PEER_TLS_NAME,
      .what = "peer",
      .log = "peer",
  };
}

int mq_peer_tls_check(const struct mq_config *cfg, struct mq_status *st) {
  if (!cfg->peer_tls_cert[0])
    return 0;
  struct mq_tls_files f;
  struct mq_tls t;
  tls_files(cfg, &f);
  int rc = mq_tls_init(&t, &f, st);
  if (rc == 0) {
    mq_tls_warn_unverified(&t); /* once: the transport's own init is quiet */
    mq_tls_close(&t);
  }
  return rc;
}

static int start_server(struct mq_peer_net *net, const struct mq_config *cfg,
                        struct mq_status *st) {
  grpc_arg args[7];
  int n = 0;
#define PN_INT_ARG(k, v)                                                                           \
  do {                                                                                             \
    args[n].type = GRPC_ARG_INTEGER;                                                               \
    args[n].key = (char *)(k);                                                                     \
    args[n++].value.integer = (v);                                                                 \
  } while (0)
  PN_INT_ARG(GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, PN_MAX_MSG);
  PN_INT_ARG(GRPC_ARG_MAX_SEND_MESSAGE_LENGTH, PN_MAX_MSG);
  PN_INT_ARG(GRPC_ARG_ALLOW_REUSEPORT, 0);
  PN_INT_ARG(GRPC_ARG_KEEPALIVE_TIME_MS, PN_KEEPALIVE_MS);
  PN_INT_ARG(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, PN_KEEPALIVE_TIMEOUT_MS);
  /* Dialers ping every PN_KEEPALIVE_MS; accept that rather than GOAWAY. */
  PN_INT_ARG(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, PN_KEEPALIVE_MS / 2);
  /* A peer gets a pipe and its forwarded calls, not unbounded streams. */
  PN_INT_ARG(GRPC_ARG_MAX_CONCURRENT_STREAMS, PN_MAX_STREAMS);
#undef PN_INT_ARG
  grpc_channel_args chargs = {(size_t)n, args};
  char addr[64];

  net->server = grpc_server_create(&chargs, NULL);
  grpc_server_register_completion_queue(net->server, net->cq, NULL);
  net->pipe_method =
      grpc_server_register_method(net->server, PN_PIPE_PATH, NULL, GRPC_SRM_PAYLOAD_NONE, 0);
  net->call_method = grpc_server_register_method(net->server, PN_CALL_PATH, NULL,
                                                 GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0);
  if (!net->pipe_method || !net->call_method)
    return mq_status_set(st, MQ_EINTERNAL, "cannot register the peer methods");
  snprintf(addr, sizeof addr, "0.0.0.0:%d", cfg->peer_port);
  grpc_server_credentials *creds =
      net->tls_on ? mq_tls_server_creds(&net->tls) : grpc_insecure_server_credentials_create();
  if (!creds)
    return mq_status_set(st, MQ_EINTERNAL, "peer TLS: gRPC refused the server credentials");
  net->port = grpc_server_add_http2_port(net->server, addr, creds);
  grpc_server_credentials_release(creds);
  if (net->port <= 0)
    return mq_status_set(st, MQ_EIO, "cannot listen on %s for peers (port in use?)", addr);
  grpc_server_start(net->server);
  return 0;
}

int mq_peer_start(struct mq_peer_net **out, const struct mq_config *cfg,
                  const struct mq_peer_hello *self, const struct mq_peer_callbacks *cb,
                  struct mq_cq *cq, struct mq_status *st) {
  struct mq_peer_net *net;
  pthread_condattr_t ca;
  int rc;

  *out = NULL;
  net = calloc(1, sizeof *net);
  if (!net)
    return mq_status_set(st, MQ_ENOMEM, "out of memory");
  net->self = *self;
  net->self.node_id[sizeof net->self.node_id - 1] = '\0';
  net->self.peer_address[sizeof net->self.peer_address - 1] = '\0';
  net->cb = *cb;
  net->live.next = net->live.prev = &net->live;
  net->shutdown_tag.fn = shutdown_fn;
  net->shutdown_tag.group = &net->group;
  net->group.end = group_end;
  net->rand_state = (unsigned)mq_clock_mono_ms() ^ (unsigned)getpid() ^ (unsigned)(uintptr_t)net;
  atomic_init(&net->ops, 0);
  pthread_mutex_init(&net->mu, NULL);
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&net->cv, &ca);
  pthread_condattr_destroy(&ca);

  if (cfg->peer_tls_cert[0]) {
    struct mq_tls_files f;
    tls_files(cfg, &f);
    rc = mq_tls_init(&net->tls, &f, st);
    if (rc)
      goto err_tls;
    net->tls_on = true;
  } else if (cfg->n_peers > 0 || cfg->nacos_addr[0] || cfg->dns_name[0]) {
    mq_warn("peer", "peer traffic is not encrypted: set --peer-tls-cert, --peer-tls-key and "
                    "--peer-tls-ca for mutual TLS");
  }
  grpc_init();
  net->shared_cq = cq != NULL;
  net->cq = cq ? mq_cq_queue(cq) : grpc_completion_queue_create_for_next(NULL);
  rc = start_server(net, cfg, st);
  if (rc)
    goto err_server;
  fill_address(net, cfg);

  int want = net->shared_cq ? 0 : cfg->grpc_threads >= 2 ? 2 : 1;
  for (int i = 0; i < want; i++) {
    if (pthread_create(&net->threads[i], NULL, cq_thread, net) != 0)
      break;
    net->n_threads++;
  }
  if (net->n_threads == want && pthread_create(&net->timer, NULL, pn_timer_thread, net) == 0)
    net->timer_started = true;
  if (!net->timer_started) {
    mq_peer_free(net);
    return mq_status_set(st, MQ_ENOMEM, "cannot start the peer transport threads");
  }
  rc = pn_server_post_slots(net);
  if (rc) {
    mq_peer_free(net);
    return mq_status_set(st, rc, "cannot accept peer calls (out of memory)");
  }
  mq_info("peer", "listening on 0.0.0.0:%d as %s (%s, incarnation %" PRIu64 ", %s)", net->port,
          net->self.node_id, net->self.peer_address, net->self.incarnation,
          net->tls_on ? "mutual TLS" : "plaintext");
  *out = net;
  return 0;

err_server:
  grpc_server_destroy(net->server);
  if (!net->shared_cq)
    mq_grpc_cq_close(net->cq, NULL, 0);
  grpc_shutdown();
  if (net->tls_on)
    mq_tls_close(&net->tls);
err_tls:
  pthread_cond_destroy(&net->cv);
  pthread_mutex_destroy(&net->mu);
  free(net);
  return rc;
}

int mq_peer_port(const struct mq_peer_net *p) { return p->port; }

const struct mq_peer_hello *mq_peer_self(const struct mq_peer_net *p) { return &p->self; }

void mq_peer_stats(const struct mq_peer_net *p, struct mq_peer_stats *o) {
  struct mq_peer_net *net = (struct mq_peer_net *)p;
#define PN_LOAD(f) o->f = (uint64_t)atomic_load_explicit(&net->st.f, memory_order_relaxed)
  PN_LOAD(frames_sent);
  PN_LOAD(frames_received);
  PN_LOAD(frames_dropped);
  PN_LOAD(bytes_sent);
  PN_LOAD(bytes_received);
  PN_LOAD(dials);
  PN_LOAD(dial_failures);
  PN_LOAD(handshakes_refused);
  PN_LOAD(calls_sent);
  PN_LOAD(calls_failed);
  PN_LOAD(calls_received);
#undef PN_LOAD
  o->frames_queued = o->bytes_queued = 0;
  pthread_mutex_lock(&net->mu);
  for (const struct pn_peer *q = net->peers; q; q = q->next) {
    o->frames_queued += q->n_frames;
    o->bytes_queued += q->n_bytes;
  }
  pthread_mutex_unlock(&net->mu);
}

/* ------------------------------------------------------------------------ */
/* Shutdown */

void mq_peer_shutdown(struct mq_peer_net *net) {
  if (net->shut)
    return;
  net->shut = true;

  pthread_mutex_lock(&net->mu);
  net->stopping = true;
  pthread_cond_broadcast(&net->cv);
  pthread_mutex_unlock(&net->mu);
  if (net->timer_started) {
    pthread_join(net->timer, NULL);
    net->timer_started = false;
  }

  /* Nothing new starts now: every call that exists is in net->live. */
  atomic_fetch_add(&net->ops, 1);
  grpc_server_shutdown_and_notify(net->server, net->cq, &net->shutdown_tag);
  pthread_mutex_lock(&net->mu);
  for (struct pn_live *l = net->live.next; l != &net->live; l = l->next)
    if (l->call)
      pn_live_cancel(l);
  pthread_mutex_unlock(&net->mu);
  grpc_server_cancel_all_calls(net->server);

  int64_t t0 = mq_clock_mono_ms();
  bool warned = false;
  pthread_mutex_lock(&net->mu);
  while (atomic_load(&net->ops) > 0) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += 1;
    pthread_cond_timedwait(&net->cv, &net->mu, &ts);
    if (!warned && mq_clock_mono_ms() - t0 > 5000) {
      mq_warn("peer", "shutdown still waits for %ld operations", atomic_load(&net->ops));
      warned = true;
    }
  }
  net->cq_closing = true;
  pthread_mutex_unlock(&net->mu);

  pn_pipes_release(net);
  pn_server_release_calls(net);
  pn_calls_release(net);
  grpc_server_destroy(net->server);
  net->server = NULL;
  if (!net->shared_cq)
    mq_grpc_cq_close(net->cq, net->threads, net->n_threads);
  net->n_threads = 0;
  net->cq = NULL;
  mq_info("peer", "peer transport stopped");
}

void mq_peer_free(struct mq_peer_net *net) {
  if (!net)
    return;
  mq_peer_shutdown(net);
  pn_server_free_calls(net);
  pn_pipes_free(net);
  grpc_shutdown();
  if (net->tls_on)
    mq_tls_close(&net->tls);
  pthread_cond_destroy(&net->cv);
  pthread_mutex_destroy(&net->mu);
  free(net);
}
