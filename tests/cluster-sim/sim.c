/* cluster-sim: the real cluster layer (agent/cluster: routing, forwarding,
 * members, bootstrap, placement, reconciliation, recovery, watches) of
 * several agents in one process, over a simulated clock and network.
 *
 * Each agent is a real struct mq_node built with in-memory ops tables
 * (cluster/io.h): its loop io reads the simulated clock and draws from a
 * PRNG seeded from the run's seed; its transport hands frames and calls to
 * the simulated network, which delays, loses, reorders and cuts them, and
 * reports connections up and down the way the peer transport does. The
 * simulator steps every node's loop itself (mq_node_step), one simulated
 * millisecond at a time, so one seed reproduces a run exactly.
 *
 * Faults: message loss, delay and reordering, partitions (one agent cut
 * off, splits, one-way cuts), crashes with memory loss and restarts under a
 * new incarnation, soon or after --replace-dead-after moved the agent's
 * replicas elsewhere (they move back when it returns). Clients put and read keys spread over every
 * shard through random agents, one request at a time per key; one agent, never crashed, watches
 * every change.
 *
 * Checks, after every step or at the end:
 *   founding      every shard is founded once (the same first
 *                 configuration, with one founder, wherever it is seen);
 *   moves         a membership change never removes a live, current voter
 *                 unless a majority of live, current voters remains, and
 *                 removes a voter that is not gone (an old incarnation)
 *                 only from more voters than the replication factor;
 *   at most once  a key's version never exceeds the puts sent for it (a
 *                 forwarded write retried across leader changes applies
 *                 once), and never falls below the puts acknowledged;
 *   acknowledged  every acknowledged put is readable at the end (the last
 *                 value acknowledged, or a later one whose outcome was
 *                 unknown);
 *   watch         the watcher saw every shard's revisions in order, without
 *                 a gap or a repeat, and each key's puts once;
 *   convergence   after healing every shard has a leader, replication-factor
 *                 current voters and equal contents on every replica, no
 *                 agent holds a replica its group does not include, every
 *                 agent holds within one replica of even and leads at most
 *                 a fair share plus one;
 *   hostile       a forwarded request naming a shard the cluster lacks is
 *                 answered INVALID_ARGUMENT (an agent sends a few such
 *                 batches to another during the run), never served;
 *   one cluster   every agent that knows a cluster id knows the same one.
 *
 * Versions. In one seed in three, the agents in slots 1, 3 and 5 start as
 * the version before peer features (their hello lists none: forwarded
 * requests to and from them go by Call, the others' by pipe frames) and
 * come back from a crash as the current one, as in a rolling upgrade.
 *
 * Installs. In one seed in two (by seed / 3), a snapshot a leader sent
 * goes in at the agent's next tick rather than at once (io
 * defer_installs), as when a thread decodes it: entries committed
 * meanwhile are kept and applied after it, and a newer snapshot may
 * replace one not yet in.
 *
 * Discovery. One seed in four runs without --peers: the agents find each
 * other through discovery (as with --dns-name), each starting with a
 * partial view that grows at random times over the first seconds (a DNS
 * record or a Nacos instance that one agent sees before another), and
 * found the cluster by vote (--bootstrap-expect 3, or more than half the
 * agents). One seed in eight of those is elastic: three agents found the
 * cluster, a fourth and a fifth join at 8 s and 12 s, the fifth leaves for
 * good at the first healthy moment after 25 s (its replicas move after
 * --replace-dead-after); convergence
 * then asks for the even share over the four. Restarted agents find
 * the others the same way.
 *
 *   cluster-sim --seeds A-B [--steps MS] [--verbose]
 * A failing seed is printed with the broken check. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/internal.h"
#include "cluster/sharding.h"
#include "util/log.h"

#define MAXN 6
#define SHARDS 8
#define KEYS 48
#define DEFAULT_STEPS 40000 /* simulated ms of faults, before healing */
#define HEAL_MS 30000       /* to converge after healing */

/* ---- the run ------------------------------------------------------------ */

enum {
  M_FRAME,
  M_CALL,
  M_REPLY,
  M_UP,
  M_DOWN
};

struct call {
  struct call *next;
  int from, to;
  uint64_t from_gen;
  mq_peer_call_done done;
  void *arg;
  int64_t deadline;
  bool finished;
  int refs; /* messages and incoming contexts that point to it */
};

/* An incoming call, held by the callee until it answers. */
struct mq_peer_call_ctx {
  struct call *call;
  int callee;
};

struct msg {
  int64_t at;
  int kind, from, to;
  uint64_t to_gen; /* connection events and replies: for this incarnation only */
  struct call *call;
  int rc;
  struct mq_status st;
  uint8_t *data;
  size_t len;
  struct mq_peer_hello hello; /* M_UP: who is up */
  char node_id[128];          /* M_DOWN */
};

struct sim;

struct snode {
  struct sim *sim;
  int i;
  bool alive;
  uint64_t gen; /* incarnations of this slot, for the network's bookkeeping */
  int64_t down_until;
  struct mq_config cfg;
  struct mq_loop_io io;
  struct mq_transport tr;
  struct mq_peer_callbacks cb;
  struct mq_peer_hello hello;
  bool started;
  struct mq_node *node;
  uint64_t rng;
  bool conn[MAXN]; /* our connection to j is up (we reported it) */
};

struct key {
  char name[64];
  int shard;
  bool busy;
  uint64_t next_val;
  uint64_t attempted, acked;
  char last_acked[32]; /* value of the last acknowledged put */
  char unknown[8][32]; /* values of puts after it whose outcome is unknown */
  int n_unknown;
  int64_t watched_puts; /* PUT events the watcher saw for it */
};

struct creq {
  struct mq_req req;
  struct sim *sim;
  struct creq *prev, *next; /* outstanding requests */
  int key, via;
  bool put;
  char value[32];
};

struct sim {
  uint64_t seed, rng;
  bool defer_installs;
  int64_t now;
  int n;
  struct snode nodes[MAXN];
  struct msg *q;
  size_t nq, capq;
  struct call *calls; /* outgoing calls not finished */
  struct creq *reqs;  /* client requests not completed */
  bool cut[MAXN][MAXN];
  unsigned loss_pm, max_delay;
  struct key keys[KEYS];
  /* checks */
  uint64_t founder[SHARDS]; /* member key of the founding voter; 0: not seen */
  uint64_t founder_inc[SHARDS];
  uint64_t conf_seen[MAXN][SHARDS]; /* last configuration index checked per replica */
  struct mq_watch *watch;
  int64_t watch_rev[SHARDS];
  bool failed;
  char why[512];
  bool verbose;
  bool dynamic;                  /* discovery instead of --peers */
  bool elastic;                  /* dynamic, and agents join and leave */
  bool retired[MAXN];            /* elastic: left for good (scale-in) */
  int64_t sees_from[MAXN][MAXN]; /* dynamic: when i's discovery starts listing j */
  unsigned old_agents;           /* slots whose first incarnation lists no features */
  /* counters */
  uint64_t puts_acked, reads_ok, crashes, msgs, n_calls, unknown, hostile_refused;
};

static uint64_t mix64(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static uint64_t rnd(struct sim *s) { return mix64(&s->rng); }
static bool chance(struct sim *s, unsigned one_in) { return rnd(s) % one_in == 0; }

static void fail(struct sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(struct sim *s, const char *fmt, ...) {
  if (s->failed)
    return;
  s->failed = true;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(s->why, sizeof s->why, fmt, ap);
  va_end(ap);
}

static void note(struct sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(struct sim *s, const char *fmt, ...) {
  if (!s->verbose)
    return;
  va_list ap;
  va_start(ap, fmt);
  printf("  t=%" PRId64 " ", s->now);
  vprintf(fmt, ap);
  printf("\n");
  va_end(ap);
}

/* ---- the network -------------------------------------------------------- */

static void enqueue(struct sim *s, struct msg m) {
  if (s->nq == s->capq) {
    s->capq = s->capq ? 2 * s->capq : 1024;
    s->q = realloc(s->q, s->capq * sizeof *s->q);
    if (!s->q)
      abort();
  }
  m.at = s->now + 1 + (s->max_delay ? (int64_t)(rnd(s) % (s->max_delay + 1)) : 0);
  s->q[s->nq++] = m;
}

static uint8_t *copy(const uint8_t *p, size_t n) {
  uint8_t *c = malloc(n ? n : 1);
  if (!c)
    abort();
  if (n)
    memcpy(c, p, n);
  return c;
}

static bool link_ok(struct sim *s, int a, int b) {
  return s->nodes[b].alive && s->nodes[b].started && !s->cut[a][b];
}

static int slot_of_addr(struct sim *s, const char *addr) {
  for (int i = 0; i < s->n; i++) {
    char a[64];
    snprintf(a, sizeof a, "10.9.0.%d:7070", i + 1);
    if (strcmp(a, addr) == 0)
      return i;
  }
  return -1;
}

/* A connection from a to b comes up or goes down as a sends; both sides
 * hear of it the way the peer transport reports it. */
static void connection(struct sim *s, int a, int b) {
  struct snode *na = &s->nodes[a], *nb = &s->nodes[b];
  bool ok = link_ok(s, a, b) && link_ok(s, b, a);
  if (ok && !na->conn[b]) {
    na->conn[b] = true;
    enqueue(s,
            (struct msg){.kind = M_UP, .from = b, .to = a, .to_gen = na->gen, .hello = nb->hello});
    enqueue(s,
            (struct msg){.kind = M_UP, .from = a, .to = b, .to_gen = nb->gen, .hello = na->hello});
  } else if (!ok && na->conn[b]) {
    na->conn[b] = false;
    struct msg m = {.kind = M_DOWN, .from = b, .to = a, .to_gen = na->gen};
    snprintf(m.node_id, sizeof m.node_id, "%s", nb->cfg.node_id);
    enqueue(s, m);
  }
}

static int tr_start(struct mq_transport *t, const struct mq_peer_hello *self,
                    const struct mq_peer_callbacks *cb, struct mq_status *st) {
  (void)st;
  struct snode *sn = t->impl;
  sn->hello = *self;
  if (sn->gen == 1 && sn->sim->old_agents & (1u << sn->i))
    sn->hello.features = 0; /* an agent of the version before the feature */
  sn->cb = *cb;
  sn->started = true;
  return 0;
}

static const struct mq_peer_hello *tr_self(struct mq_transport *t) {
  return &((struct snode *)t->impl)->hello;
}

static int tr_send(struct mq_transport *t, const char *node_id, const char *addr,
                   const uint8_t *data, size_t len) {
  (void)node_id;
  struct snode *sn = t->impl;
  struct sim *s = sn->sim;
  if (!sn->alive)
    return MQ_EUNAVAIL;
  int to = slot_of_addr(s, addr);
  if (to < 0 || to == sn->i)
    return MQ_EINVAL;
  connection(s, sn->i, to);
  if (!sn->conn[to] || (s->loss_pm && rnd(s) % 1000 < s->loss_pm))
    return 0; /* lost: Raft tolerates it */
  s->msgs++;
  enqueue(s, (struct msg){
                 .kind = M_FRAME, .from = sn->i, .to = to, .data = copy(data, len), .len = len});
  return 0;
}

static void finish(struct sim *s, struct call *c, int rc, const struct mq_status *st,
                   const uint8_t *data, size_t len) {
  if (c->finished)
    return;
  c->finished = true;
  struct snode *caller = &s->nodes[c->from];
  if (caller->alive && caller->gen == c->from_gen)
    c->done(c->arg, rc, st, data, len);
}

static int tr_call(struct mq_transport *t, const char *addr, const uint8_t *body, size_t len,
                   int64_t deadline_ms, mq_peer_call_done done, void *arg) {
  struct snode *sn = t->impl;
  struct sim *s = sn->sim;
  if (!sn->alive)
    return MQ_EUNAVAIL;
  int to = slot_of_addr(s, addr);
  if (to < 0)
    return MQ_EINVAL;
  struct call *c = calloc(1, sizeof *c);
  if (!c)
    abort();
  *c = (struct call){
      s->calls, sn->i, to, sn->gen, done, arg, deadline_ms ? deadline_ms : s->now + 5000, false, 1};
  s->calls = c;
  s->n_calls++;
  if (to == sn->i || !link_ok(s, sn->i, to) || (s->loss_pm && rnd(s) % 1000 < s->loss_pm)) {
    struct msg m = {.kind = M_REPLY,
                    .from = to,
                    .to = sn->i,
                    .to_gen = sn->gen,
                    .call = c,
                    .rc = MQ_EUNAVAIL}; /* takes the call's first reference */
    mq_status_set(&m.st, MQ_EUNAVAIL, "cannot reach %s (simulated)", addr);
    enqueue(s, m);
    return 0;
  }
  enqueue(
      s,
      (struct msg){
          .kind = M_CALL, .from = sn->i, .to = to, .call = c, .data = copy(body, len), .len = len});
  return 0;
}

static void tr_reply(struct mq_transport *t, struct mq_peer_call_ctx *ctx, int rc,
                     const struct mq_status *st, const uint8_t *data, size_t len) {
  struct snode *sn = t->impl;
  struct sim *s = sn->sim;
  struct call *c = ctx->call;
  free(ctx);
  c->refs--; /* the context's */
  if (!sn->alive || !link_ok(s, sn->i, c->from) || (s->loss_pm && rnd(s) % 1000 < s->loss_pm))
    return; /* the caller times out */
  struct msg m = {
      .kind = M_REPLY, .from = sn->i, .to = c->from, .to_gen = c->from_gen, .call = c, .rc = rc};
  c->refs++;
  if (st)
    m.st = *st;
  if (!rc) {
    m.data = copy(data, len);
    m.len = len;
  }
  enqueue(s, m);
}

/* As the real transport does, shutdown ends every call this node still
 * waits for (done runs with MQ_ECANCELED, so whatever the call's argument
 * owns is freed) before it returns; nothing runs for them later. */
static void tr_shutdown(struct mq_transport *t) {
  struct snode *sn = t->impl;
  struct sim *s = sn->sim;
  sn->started = false;
  for (struct call *c = s->calls; c; c = c->next) {
    if (c->finished || c->from != sn->i || c->from_gen != sn->gen)
      continue;
    struct mq_status st;
    mq_status_set(&st, MQ_ECANCELED, "transport shut down");
    c->finished = true;
    c->done(c->arg, MQ_ECANCELED, &st, NULL, 0);
  }
}

static void deliver(struct sim *s, struct msg *m) {
  struct snode *to = &s->nodes[m->to];
  bool here = to->alive && to->started;
  switch (m->kind) {
  case M_FRAME:
    if (here && !s->cut[m->from][m->to])
      to->cb.on_frame(to->cb.arg, &s->nodes[m->from].hello, m->data, m->len);
    break;
  case M_CALL:
    if (here && !s->cut[m->from][m->to] && !m->call->finished) {
      struct mq_peer_call_ctx *ctx = malloc(sizeof *ctx);
      if (!ctx)
        abort();
      ctx->call = m->call;
      ctx->callee = m->to;
      m->call->refs++;
      to->cb.on_call(to->cb.arg, ctx, &s->nodes[m->from].hello, m->data, m->len);
    }
    break;
  case M_REPLY:
    finish(s, m->call, m->rc, &m->st, m->data, m->len);
    break;
  case M_UP:
    if (here && to->gen == m->to_gen)
      to->cb.on_peer_up(to->cb.arg, &m->hello);
    break;
  case M_DOWN:
    if (here && to->gen == m->to_gen)
      to->cb.on_peer_down(to->cb.arg, m->node_id);
    break;
  }
  if (m->call)
    m->call->refs--; /* the message's */
  free(m->data);
}

/* Delivers every message due now, in random order. */
static void deliver_due(struct sim *s) {
  for (;;) {
    size_t due = 0;
    for (size_t k = 0; k < s->nq; k++)
      due += s->q[k].at <= s->now;
    if (!due)
      return;
    size_t pick = rnd(s) % due;
    for (size_t k = 0; k < s->nq; k++) {
      if (s->q[k].at > s->now || pick-- != 0)
        continue;
      struct msg m = s->q[k];
      s->q[k] = s->q[--s->nq];
      deliver(s, &m);
      break;
    }
  }
}

/* Calls past their deadline time out; finished ones are freed. */
static void sweep_calls(struct sim *s) {
  struct call **pp = &s->calls;
  while (*pp) {
    struct call *c = *pp;
    if (!c->finished && s->now >= c->deadline) {
      struct mq_status st;
      mq_status_set(&st, MQ_ETIMEDOUT, "call timed out (simulated)");
      finish(s, c, MQ_ETIMEDOUT, &st, NULL, 0);
    }
    if (c->finished && c->refs == 0) {
      *pp = c->next;
      free(c);
    } else {
      pp = &c->next;
    }
  }
}

/* ---- the loop io -------------------------------------------------------- */

static int io_poll(struct mq_loop_io *io, int timeout_ms, int max) {
  (void)io, (void)timeout_ms, (void)max;
  return 0; /* the network delivers by calling the transport's callbacks */
}
static void io_nop(struct mq_loop_io *io) { (void)io; }
static int64_t io_mono(struct mq_loop_io *io) { return ((struct snode *)io->impl)->sim->now; }
static int64_t io_wall(struct mq_loop_io *io) {
  return 1700000000000LL + ((struct snode *)io->impl)->sim->now;
}
static uint64_t io_random(struct mq_loop_io *io) { return mix64(&((struct snode *)io->impl)->rng); }

/* ---- agents ------------------------------------------------------------- */

static void config_of(struct sim *s, int i, struct mq_config *c) {
  mq_config_defaults(c);
  snprintf(c->node_id, sizeof c->node_id, "n%d", i + 1);
  snprintf(c->advertise_addr, sizeof c->advertise_addr, "10.9.0.%d", i + 1);
  c->peer_port = 7070;
  c->shards_total = SHARDS;
  c->replication_factor = 3;
  c->replication_factor_configured = 3;
  /* with discovery, more than half of the agents that start together (what
   * the chart sets): two founders would need twice as many */
  c->bootstrap_expect = s->dynamic ? (s->n / 2 + 1 > 3 ? s->n / 2 + 1 : 3) : s->n;
  c->replace_dead_ms = 5000;
  c->snapshot_entries = 16;
  c->watch_history_events = 100000;
  c->leader_follow_ms = 3000;
  if (s->dynamic)
    snprintf(c->dns_name, sizeof c->dns_name, "peers.sim");
  for (int j = 0; j < s->n && !s->dynamic; j++) {
    struct mq_peer_addr *p = &c->peers[c->n_peers++];
    snprintf(p->node_id, sizeof p->node_id, "n%d", j + 1);
    snprintf(p->host, sizeof p->host, "10.9.0.%d", j + 1);
    p->port = 7070;
  }
}

static void agent_start(struct sim *s, int i) {
  struct snode *sn = &s->nodes[i];
  sn->sim = s;
  sn->i = i;
  sn->gen++;
  sn->rng = s->seed * 1000003ull + (uint64_t)i * 7919u + sn->gen;
  memset(sn->conn, 0, sizeof sn->conn);
  for (int j = 0; j < s->n; j++)
    s->nodes[j].conn[i] = false; /* a new process: connections to it start over */
  config_of(s, i, &sn->cfg);
  sn->io = (struct mq_loop_io){.impl = sn,
                               .poll = io_poll,
                               .wake = io_nop,
                               .shutdown = io_nop,
                               .mono_ms = io_mono,
                               .wall_ms = io_wall,
                               .random = io_random,
                               .defer_installs = s->defer_installs};
  sn->tr = (struct mq_transport){.impl = sn,
                                 .start = tr_start,
                                 .self = tr_self,
                                 .send = tr_send,
                                 .call = tr_call,
                                 .reply = tr_reply,
                                 .shutdown = tr_shutdown}; /* frames leave at once: no flush */
  struct mq_node_io io = {&sn->io, &sn->tr};
  struct mq_status st;
  sn->alive = true;
  if (mq_node_new(&sn->node, &sn->cfg, &io, &st) || mq_node_start_stepped(sn->node, &st)) {
    fail(s, "n%d does not start: %s", i + 1, st.msg);
    return;
  }
  memset(s->conf_seen[i], 0, sizeof s->conf_seen[i]);
  note(s, "n%d starts (generation %" PRIu64 ")", i + 1, sn->gen);
}

/* kill -9: the process and its memory are gone; nothing it sends now
 * arrives. */
static void agent_crash(struct sim *s, int i) {
  struct snode *sn = &s->nodes[i];
  note(s, "n%d crashes", i + 1);
  sn->alive = false;
  mq_node_free(sn->node);
  sn->node = NULL;
  sn->started = false;
  s->crashes++;
  /* Its clients' calls fail with the process: outcomes unknown. */
  struct creq *c = s->reqs;
  while (c) {
    struct creq *next = c->next;
    if (c->via == i) {
      mq_status_set(&c->req.status, MQ_EUNAVAIL, "the agent died");
      c->req.done(&c->req);
    }
    c = next;
  }
}

/* ---- clients ------------------------------------------------------------ */

static void req_unlink(struct sim *s, struct creq *c) {
  if (c->prev)
    c->prev->next = c->next;
  else
    s->reqs = c->next;
  if (c->next)
    c->next->prev = c->prev;
}

static void req_done(struct mq_req *r) {
  struct creq *c = (struct creq *)r;
  struct sim *s = c->sim;
  struct key *k = &s->keys[c->key];
  req_unlink(s, c);
  k->busy = false;
  if (c->put) {
    if (r->status.code == 0) {
      k->acked++;
      snprintf(k->last_acked, sizeof k->last_acked, "%s", c->value);
      k->n_unknown = 0;
      s->puts_acked++;
    } else if (r->status.code != MQ_EPRECOND && r->status.code != MQ_EINVAL) {
      /* may or may not have applied */
      if (k->n_unknown < 8)
        snprintf(k->unknown[k->n_unknown++], sizeof k->unknown[0], "%s", c->value);
      s->unknown++;
    }
  } else if (r->status.code == 0 && r->has_kv) {
    s->reads_ok++;
  }
  mq_req_clear(r);
  free(c);
}

static void client_op(struct sim *s) {
  int ki = (int)(rnd(s) % KEYS), via = (int)(rnd(s) % (uint64_t)s->n);
  struct key *k = &s->keys[ki];
  struct snode *sn = &s->nodes[via];
  if (k->busy || !sn->alive)
    return;
  struct creq *c = calloc(1, sizeof *c);
  if (!c)
    abort();
  c->sim = s;
  c->key = ki;
  c->via = via;
  c->put = chance(s, 3) ? false : true;
  if (c->put) {
    if (k->n_unknown == 8)
      return (void)free(c); /* enough unknowns for this key */
    mq_req_init(&c->req, MQ_REQ_PUT);
    snprintf(c->value, sizeof c->value, "%s#%" PRIu64, k->name, ++k->next_val);
    c->req.value = (const uint8_t *)c->value;
    c->req.value_len = strlen(c->value);
    k->attempted++;
  } else {
    mq_req_init(&c->req, MQ_REQ_GET);
  }
  c->req.key = k->name;
  c->req.key_len = strlen(k->name);
  c->req.deadline_ms = s->now + 3000;
  c->req.done = req_done;
  k->busy = true;
  if (mq_node_submit(sn->node, &c->req)) {
    k->busy = false;
    if (c->put)
      k->attempted--;
    free(c);
    return;
  }
  c->next = s->reqs;
  if (s->reqs)
    s->reqs->prev = c;
  s->reqs = c;
}

/* ---- the watcher -------------------------------------------------------- */

static void watch_notify(void *arg) { (void)arg; }

static void watch_drain(struct sim *s) {
  if (!s->watch)
    return;
  for (;;) {
    struct mq_watch_event *ev;
    struct mq_status st;
    int rc = mq_watch_pop(s->watch, &ev, &st);
    if (rc == 1)
      return;
    if (rc < 0) {
      fail(s, "watch: ended: %s", st.msg);
      s->watch = NULL;
      return;
    }
    int sh = ev->ev.shard;
    if (sh < 0 || sh >= SHARDS)
      fail(s, "watch: event of shard %d", sh);
    else if (ev->ev.revision != s->watch_rev[sh] + 1)
      fail(s, "watch: shard %d revision %" PRId64 " after %" PRId64 " (a gap or a repeat)", sh,
           ev->ev.revision, s->watch_rev[sh]);
    else
      s->watch_rev[sh] = ev->ev.revision;
    if (ev->ev.type == MQ_EV_PUT)
      for (int i = 0; i < KEYS; i++)
        if (ev->ev.kv.key_len == strlen(s->keys[i].name) &&
            !memcmp(ev->ev.kv.key, s->keys[i].name, ev->ev.kv.key_len))
          s->keys[i].watched_puts++;
    mq_watch_event_free(ev);
  }
}

/* ---- checks after every step -------------------------------------------- */

static bool live_current(struct sim *s, struct mq_raft_member m) {
  for (int j = 0; j < s->n; j++) {
    struct snode *sn = &s->nodes[j];
    if (sn->alive && sn->node && sn->node->self.node == m.node && sn->node->self.inc == m.inc)
      return true;
  }
  return false;
}

/* A member whose slot now runs another incarnation: it never votes again. */
static bool gone(struct sim *s, struct mq_raft_member m) {
  for (int j = 0; j < s->n; j++) {
    struct snode *sn = &s->nodes[j];
    if (sn->node && sn->node->self.node == m.node)
      return sn->node->self.inc != m.inc;
  }
  return false; /* down and not back yet: not known to be gone */
}

static void check_replica(struct sim *s, int i, int sh) {
  struct shard *sd = &s->nodes[i].node->shards[sh];
  if (!sd->raft)
    return;
  struct mq_raft_status rs;
  mq_raft_status(sd->raft, &rs);
  /* founding: entry 1 is the first configuration, with one voter */
  if (rs.first_index == 1 && rs.last_index >= 1) {
    const struct mq_raft_entry *e = mq_raft_entry_at(sd->raft, 1);
    struct mq_raft_conf c;
    if (e && e->type == MQ_RAFT_ENTRY_CONF && !mq_raft_conf_decode(&c, e->data, e->len) &&
        c.n >= 1) {
      if (!s->founder[sh]) {
        s->founder[sh] = c.m[0].id.node;
        s->founder_inc[sh] = c.m[0].id.inc;
      } else if (s->founder[sh] != c.m[0].id.node || s->founder_inc[sh] != c.m[0].id.inc) {
        fail(s,
             "founding: shard %d founded twice (n%d holds a first configuration by another "
             "founder)",
             sh, i + 1);
      }
    }
  }
  /* moves: a leader's new configuration removes no live, current voter
   * unless a majority of live, current voters remains */
  if (rs.role != MQ_RAFT_LEADER || rs.conf_index <= s->conf_seen[i][sh])
    return;
  struct mq_raft_conf prev;
  uint64_t at = rs.conf_index;
  s->conf_seen[i][sh] = at;
  if (at <= rs.first_index)
    return;
  bool found = false;
  for (uint64_t x = at - 1; x >= rs.first_index && x > 0 && !found; x--) {
    const struct mq_raft_entry *e = mq_raft_entry_at(sd->raft, x);
    if (e && e->type == MQ_RAFT_ENTRY_CONF && !mq_raft_conf_decode(&prev, e->data, e->len))
      found = true;
  }
  if (!found)
    return;
  int voters = 0, live = 0;
  for (uint32_t k = 0; k < rs.conf.n; k++) {
    if (rs.conf.m[k].role != MQ_RAFT_VOTER)
      continue;
    voters++;
    live += live_current(s, rs.conf.m[k].id);
  }
  int prev_voters = 0;
  for (uint32_t k = 0; k < prev.n; k++)
    prev_voters += prev.m[k].role == MQ_RAFT_VOTER;
  for (uint32_t k = 0; k < prev.n; k++) {
    if (prev.m[k].role != MQ_RAFT_VOTER || mq_raft_conf_find(&rs.conf, prev.m[k].id) >= 0)
      continue;
    if (live_current(s, prev.m[k].id) && live < voters / 2 + 1)
      fail(s, "moves: shard %d: n%d removed a live voter, leaving %d live of %d voters", sh, i + 1,
           live, voters);
    /* the rule recovery's proof relies on (core/raft.h): a voter that is
     * not gone leaves only a configuration of more than RF voters */
    if (!gone(s, prev.m[k].id) && prev_voters <= 3)
      fail(s, "moves: shard %d: n%d removed a voter that is not gone from %d voters", sh, i + 1,
           prev_voters);
  }
}

static void check_step(struct sim *s) {
  uint64_t cluster = 0;
  for (int i = 0; i < s->n; i++) {
    struct snode *sn = &s->nodes[i];
    if (!sn->alive || !sn->node)
      continue;
    for (int sh = 0; sh < SHARDS; sh++)
      check_replica(s, i, sh);
    uint64_t id = sn->node->cluster_id;
    if (id && cluster && id != cluster) {
      fail(s, "one cluster: n%d knows cluster %016" PRIx64 ", another agent %016" PRIx64, i + 1, id,
           cluster);
      return;
    }
    if (id)
      cluster = id;
  }
  watch_drain(s);
}

/* Discovery rounds (dynamic seeds): every agent's source lists the agents
 * it sees by now, itself included, as a DNS name would. */
static void discovery_round(struct sim *s) {
  for (int i = 0; i < s->n; i++) {
    struct snode *sn = &s->nodes[i];
    if (!sn->alive || !sn->node || (s->now + 97 * i) % 500 != 0)
      continue;
    struct mq_discovered found[MAXN];
    size_t k = 0;
    for (int j = 0; j < s->n; j++) {
      if (s->now < s->sees_from[i][j])
        continue;
      memset(&found[k], 0, sizeof found[k]);
      snprintf(found[k].addr, sizeof found[k].addr, "10.9.0.%d:7070", j + 1);
      k++;
    }
    mq_node_discovered(sn->node, MQ_DISCOVERY_DNS, found, k);
  }
}

/* ---- faults ------------------------------------------------------------- */

static void heal(struct sim *s) {
  memset(s->cut, 0, sizeof s->cut);
  s->loss_pm = 0;
  s->max_delay = 2;
}

static void chaos(struct sim *s) {
  unsigned kind = (unsigned)(rnd(s) % 100);
  int a = (int)(rnd(s) % (uint64_t)s->n), b = (int)(rnd(s) % (uint64_t)s->n);
  if (kind < 40) {
    heal(s);
    note(s, "heal");
  } else if (kind < 60) {
    for (int j = 0; j < s->n; j++)
      if (j != a)
        s->cut[a][j] = s->cut[j][a] = true;
    note(s, "isolate n%d", a + 1);
  } else if (kind < 72) {
    uint64_t side = rnd(s);
    for (int i = 0; i < s->n; i++)
      for (int j = 0; j < s->n; j++)
        s->cut[i][j] = ((side >> i) & 1) != ((side >> j) & 1);
    note(s, "split %" PRIx64, side & 0x3f);
  } else if (kind < 85) {
    if (a != b) {
      s->cut[a][b] = true;
      note(s, "cut n%d -> n%d", a + 1, b + 1);
    }
  } else {
    s->loss_pm = (unsigned)(rnd(s) % 200);
    s->max_delay = (unsigned)(rnd(s) % 30);
    note(s, "flaky: loss %u per mille, delay <= %u ms", s->loss_pm, s->max_delay);
  }
}

/* Every shard led by a live agent whose configuration has every voter live
 * and current and no learner: the state a rolling restart waits for. */
static bool healthy(struct sim *s) {
  for (int sh = 0; sh < SHARDS; sh++) {
    bool led = false;
    for (int i = 0; i < s->n && !led; i++) {
      struct snode *sn = &s->nodes[i];
      if (!sn->alive || !sn->node || !sn->node->shards[sh].raft)
        continue;
      struct mq_raft_status rs;
      mq_raft_status(sn->node->shards[sh].raft, &rs);
      if (rs.role != MQ_RAFT_LEADER)
        continue;
      int voters = 0;
      for (uint32_t k = 0; k < rs.conf.n; k++) {
        if (rs.conf.m[k].role != MQ_RAFT_VOTER || !live_current(s, rs.conf.m[k].id))
          return false;
        voters++;
      }
      led = voters == (s->n < 3 ? s->n : 3);
    }
    if (!led)
      return false;
  }
  return true;
}

/* ---- the end ------------------------------------------------------------ */

static struct shard *leader_replica(struct sim *s, int sh) {
  for (int i = 0; i < s->n; i++) {
    struct snode *sn = &s->nodes[i];
    if (sn->alive && sn->node->shards[sh].raft && replica_is_leader(&sn->node->shards[sh]))
      return &sn->node->shards[sh];
  }
  return NULL;
}

/* Converged: every shard has one leader, replication-factor live current
 * voters, no learner, and every replica has applied its commit index with
 * the same contents; no client request is outstanding. */
static bool converged_why(struct sim *s, char *why, size_t cap) {
  for (int k = 0; k < KEYS; k++)
    if (s->keys[k].busy)
      return snprintf(why, cap, "a request on %s is still outstanding", s->keys[k].name), false;
  if (!healthy(s))
    return snprintf(why, cap, "some shard has no leader with RF live, current voters"), false;
  for (int sh = 0; sh < SHARDS; sh++) {
    uint64_t digest = 0, commit = 0;
    int holders = 0;
    for (int i = 0; i < s->n; i++) {
      struct snode *sn = &s->nodes[i];
      if (!sn->alive || !sn->node->shards[sh].raft)
        continue;
      struct shard *sd = &sn->node->shards[sh];
      struct mq_raft_status rs;
      mq_raft_status(sd->raft, &rs);
      if (mq_raft_conf_find(&rs.conf, sn->node->self) < 0)
        return snprintf(why, cap, "shard %d: n%d holds a replica its group does not include", sh,
                        i + 1),
               false;
      if (sd->applied != rs.commit || (commit && rs.commit != commit))
        return snprintf(why, cap,
                        "shard %d: n%d applied %" PRIu64 " commit %" PRIu64
                        " (other replica %" PRIu64 ")",
                        sh, i + 1, sd->applied, rs.commit, commit),
               false;
      uint64_t d = mq_sm_digest(sd->sm);
      if (holders && d != digest)
        return snprintf(why, cap, "shard %d: replicas differ", sh), false;
      commit = rs.commit;
      digest = d;
      holders++;
    }
    if (holders != (s->n < 3 ? s->n : 3))
      return snprintf(why, cap, "shard %d has %d replicas", sh, holders), false;
  }
  /* every agent holds within one replica of even, and leads at most a
   * fair share plus one */
  int held[MAXN] = {0}, led[MAXN] = {0}, live = 0;
  for (int i = 0; i < s->n; i++) {
    if (!s->nodes[i].alive)
      continue;
    live++;
    for (int sh = 0; sh < SHARDS; sh++) {
      held[i] += s->nodes[i].node->shards[sh].raft != NULL;
      led[i] += replica_is_leader(&s->nodes[i].node->shards[sh]);
    }
  }
  int most = 0, least = SHARDS, fair = (SHARDS + live - 1) / (live ? live : 1);
  for (int i = 0; i < s->n; i++) {
    if (!s->nodes[i].alive)
      continue;
    most = held[i] > most ? held[i] : most;
    least = held[i] < least ? held[i] : least;
    if (led[i] > fair + 1)
      return snprintf(why, cap, "n%d leads %d shards, a fair share is %d", i + 1, led[i], fair),
             false;
  }
  if (most > least + 1)
    return snprintf(why, cap, "replicas are uneven: one agent holds %d, another %d", most, least),
           false;
  watch_drain(s);
  for (int sh = 0; sh < SHARDS && s->watch; sh++) {
    struct shard *sd = leader_replica(s, sh);
    if (sd && s->watch_rev[sh] != mq_sm_revision(sd->sm))
      return snprintf(why, cap, "the watcher saw shard %d up to revision %" PRId64 " of %" PRId64,
                      sh, s->watch_rev[sh], mq_sm_revision(sd->sm)),
             false;
  }
  return true;
}

static bool converged(struct sim *s) {
  char why[256];
  return converged_why(s, why, sizeof why);
}

static void final_checks(struct sim *s) {
  for (int ki = 0; ki < KEYS && !s->failed; ki++) {
    struct key *k = &s->keys[ki];
    struct shard *sd = leader_replica(s, k->shard);
    if (!sd) {
      fail(s, "acknowledged: no leader of shard %d to read %s", k->shard, k->name);
      return;
    }
    struct mq_kv kv;
    bool found = mq_sm_get(sd->sm, k->name, strlen(k->name), s->now + 1700000000000LL, &kv) == 0;
    uint64_t version = found ? (uint64_t)kv.version : 0;
    if (version > k->attempted)
      fail(s, "at most once: %s has version %" PRIu64 " after %" PRIu64 " puts sent", k->name,
           version, k->attempted);
    else if (version < k->acked)
      fail(s, "acknowledged: %s has version %" PRIu64 " after %" PRIu64 " puts acknowledged",
           k->name, version, k->acked);
    else if ((int64_t)version != k->watched_puts && s->watch)
      fail(s, "watch: saw %" PRId64 " puts of %s, its version is %" PRIu64, k->watched_puts,
           k->name, version);
    if (s->failed || !k->acked)
      continue;
    bool ok = found && kv.value_len == strlen(k->last_acked) &&
              !memcmp(kv.value, k->last_acked, kv.value_len);
    for (int u = 0; u < k->n_unknown && !ok && found; u++)
      ok = kv.value_len == strlen(k->unknown[u]) && !memcmp(kv.value, k->unknown[u], kv.value_len);
    if (!ok)
      fail(s, "acknowledged: %s reads %.*s, not the last acknowledged %s (or a later unknown)",
           k->name, found ? (int)kv.value_len : 6, found ? (const char *)kv.value : "absent",
           k->last_acked);
  }
}

/* Every live replica of every shard, for a failure report. */
static void dump(struct sim *s) {
  for (int i = 0; i < s->n; i++) {
    struct snode *sn = &s->nodes[i];
    if (!sn->alive) {
      printf("  n%d: down\n", i + 1);
      continue;
    }
    printf("  n%d.%" PRIu64 ":%s\n", i + 1, sn->node->self.inc,
           sn->node->formed ? "" : " (not formed)");
    for (int sh = 0; sh < SHARDS; sh++) {
      struct shard *sd = &sn->node->shards[sh];
      if (!sd->raft)
        continue;
      struct mq_raft_status rs;
      mq_raft_status(sd->raft, &rs);
      printf("    shard %d:%s role %d term %" PRIu64 " commit %" PRIu64 " applied %" PRIu64
             " last %" PRIu64 " leader %" PRIu64 ".%" PRIu64 " conf@%" PRIu64 ":",
             sh, rs.removed ? " (removed)" : "", rs.role, rs.term, rs.commit, sd->applied,
             rs.last_index, rs.leader.node % 1000, rs.leader.inc % 1000, rs.conf_index);
      for (uint32_t k = 0; k < rs.conf.n; k++) {
        struct member *m = member_by_key(sn->node, rs.conf.m[k].id.node);
        printf(" %s.%" PRIu64 "%s", m ? m->id : "?", rs.conf.m[k].id.inc % 1000,
               rs.conf.m[k].role == MQ_RAFT_LEARNER ? "(L)" : "");
      }
      printf("\n");
    }
  }
}

/* ---- one seed ----------------------------------------------------------- */

static void key_names(struct sim *s) {
  for (int i = 0; i < KEYS; i++) {
    struct key *k = &s->keys[i];
    int want = i % SHARDS;
    for (int u = 0;; u++) {
      char uid[32];
      snprintf(uid, sizeof uid, "u%d-%d", i, u);
      if (mq_shard_of_key(uid, strlen(uid), SHARDS) == want) {
        snprintf(k->name, sizeof k->name, "user:%s:k", uid);
        k->shard = want;
        break;
      }
    }
  }
}

/* Every shard from its first revision: shards n1 does not hold are
 * followed from a replica (follow.c), which must replay and then keep up
 * across leader changes, crashes and partitions. */
static void open_watch(struct sim *s) {
  struct mq_watch_start starts[SHARDS];
  for (int i = 0; i < SHARDS; i++)
    starts[i] = (struct mq_watch_start){i, 0};
  struct mq_watch_params p = {
      .prefix = "", .prefix_len = 0, .starts = starts, .n_starts = SHARDS, .max_queued = 1000000};
  struct mq_status st;
  if (mq_node_watch_open(s->nodes[0].node, &p, watch_notify, s, &s->watch, &st))
    fail(s, "watch: cannot open: %s", st.msg);
}

/* A forwarded batch from agent a to agent b whose requests name shards
 * past the last: a write with no request id yet (the receiver would assign
 * one from that shard's sequence) and a read of shard INT32_MAX - 1. */
static void hostile_done(void *arg, int rc, const struct mq_status *st, const uint8_t *data,
                         size_t len) {
  struct sim *s = arg;
  (void)st;
  if (rc)
    return; /* lost or refused on the way: nothing to check */
  struct mq_reader rd;
  mq_reader_init(&rd, data, len);
  uint64_t k = mq_get_varint(&rd);
  if (rd.err || k != 2) {
    fail(s, "hostile: answer of %" PRIu64 " results to a batch of 2", k);
    return;
  }
  for (uint64_t i = 0; i < k; i++) {
    size_t rl;
    const uint8_t *res = mq_get_bytes(&rd, &rl, len);
    struct mq_req r;
    mq_req_init(&r, MQ_REQ_GET);
    if (!res || reqcodec_decode_result(res, rl, &r)) {
      fail(s, "hostile: result %" PRIu64 " does not decode", i);
    } else if (r.status.code != MQ_EINVAL) {
      fail(s,
           "hostile: request %" PRIu64 " for a shard past the last answered %d (%s), want "
           "INVALID_ARGUMENT",
           i, r.status.code, r.status.msg);
    } else {
      s->hostile_refused++;
    }
    mq_req_clear(&r);
  }
}

static void hostile_forward(struct sim *s, int a, int b) {
  struct snode *sn = &s->nodes[a];
  struct mq_req w, r;
  mq_req_init(&w, MQ_REQ_PUT);
  w.key = "user:1:hostile";
  w.key_len = strlen(w.key);
  w.value = (const uint8_t *)"v";
  w.value_len = 1;
  w.deadline_ms = s->now + 1000;
  w.p_shard1 = SHARDS + 1;
  mq_req_init(&r, MQ_REQ_GET);
  r.key = w.key;
  r.key_len = w.key_len;
  r.deadline_ms = s->now + 1000;
  r.p_shard1 = INT32_MAX;
  struct mq_buf one, body;
  mq_buf_init(&one);
  mq_buf_init(&body);
  mq_buf_put_u8(&body, CALL_REQ);
  mq_buf_put_varint(&body, 2);
  struct reqcodec_clock now = {s->now, 1700000000000LL + s->now};
  reqcodec_encode_req(&one, &w, now);
  mq_buf_put_bytes(&body, one.data, one.len);
  one.len = 0;
  reqcodec_encode_req(&one, &r, now);
  mq_buf_put_bytes(&body, one.data, one.len);
  if (one.err || body.err)
    abort();
  char addr[64];
  snprintf(addr, sizeof addr, "10.9.0.%d:7070", b + 1);
  sn->tr.call(&sn->tr, addr, body.data, body.len, s->now + 1000, hostile_done, s);
  mq_buf_close(&one);
  mq_buf_close(&body);
}

struct totals {
  uint64_t puts, reads, crashes, msgs, calls, unknown, watcher_snaps, follows, hostile;
  int64_t max_converge;
};

static void sim_free(struct sim *s) {
  if (s->watch)
    mq_watch_close(s->watch, NULL, NULL);
  for (int i = 0; i < s->n; i++)
    if (s->nodes[i].alive) {
      s->nodes[i].alive = false;
      mq_node_free(s->nodes[i].node);
    }
  for (size_t k = 0; k < s->nq; k++)
    free(s->q[k].data);
  free(s->q);
  while (s->calls) {
    struct call *c = s->calls;
    s->calls = c->next;
    free(c);
  }
  free(s);
}

static int run_seed(uint64_t seed, int64_t steps, bool verbose, struct totals *t) {
  struct sim *s = calloc(1, sizeof *s);
  if (!s)
    abort();
  s->seed = seed;
  s->rng = seed * 0x2545f4914f6cdd1dull + 7;
  s->n = 3 + (int)(seed % 3);
  s->verbose = verbose;
  s->dynamic = seed % 4 == 3;
  s->elastic = seed % 8 == 7;
  if (s->elastic)
    s->n = 5;
  if (seed / 4 % 3 == 1)
    s->old_agents = 0x2a; /* slots 1, 3, 5 */
  s->defer_installs = seed / 3 % 2 == 1;
  for (int i = 0; i < s->n && s->dynamic; i++)
    for (int j = 0; j < s->n; j++)
      s->sees_from[i][j] = i == j ? 0 : (int64_t)(rnd(s) % 4000);
  s->max_delay = 2;
  key_names(s);
  for (int i = 0; i < (s->elastic ? 3 : s->n); i++)
    agent_start(s, i);
  bool watching = false, healed = false;
  int64_t healed_at = 0, end = steps + HEAL_MS;
  for (s->now = 1; s->now <= end && !s->failed; s->now++) {
    deliver_due(s);
    if (s->now % 10 == 0)
      sweep_calls(s);
    if (s->dynamic)
      discovery_round(s);
    for (int i = 0; i < s->n; i++)
      if (s->nodes[i].alive)
        mq_node_step(s->nodes[i].node);
    if (!watching && s->nodes[0].node->formed) {
      open_watch(s);
      watching = true;
    }
    for (int i = 0; i < s->n; i++) {
      struct snode *sn = &s->nodes[i];
      if (!sn->alive && sn->down_until && s->now >= sn->down_until) {
        sn->down_until = 0;
        agent_start(s, i);
      }
    }
    if (s->now < steps) {
      if (chance(s, 2000))
        chaos(s);
      if (chance(s, 4))
        client_op(s);
      if (chance(s, 1000)) {
        int a = (int)(rnd(s) % (uint64_t)s->n), b = (int)(rnd(s) % (uint64_t)s->n);
        if (a != b && s->nodes[a].alive && s->nodes[a].started)
          hostile_forward(s, a, b);
      }
      if (s->elastic && (s->now == 8000 || s->now == 12000)) {
        int i = s->now == 8000 ? 3 : 4;
        note(s, "scale out: n%d joins", i + 1);
        agent_start(s, i);
      } else if (s->elastic && s->now >= 25000 && !s->retired[4] && healthy(s)) {
        /* a scale-in takes a pod away while the cluster is healthy (a
         * StatefulSet waits for the previous pod; the drain waits too), not
         * in the middle of another agent's repair */
        note(s, "scale in: n5 leaves for good");
        agent_crash(s, 4);
        s->nodes[4].down_until = 0;
        s->retired[4] = true;
      }
      int victim = 1 + (int)(rnd(s) % (uint64_t)(s->n - 1)); /* n1 watches: never */
      if (s->now > 3000 && chance(s, 3000) && healthy(s) && s->nodes[victim].alive &&
          !s->retired[victim]) {
        agent_crash(s, victim);
        /* back soon, or after its replicas were moved elsewhere (and are
         * moved back when it returns) */
        s->nodes[victim].down_until = s->now + (chance(s, 3) ? 6000 + (int64_t)(rnd(s) % 4000)
                                                             : 200 + (int64_t)(rnd(s) % 3000));
      }
    } else if (!healed) {
      healed = true;
      healed_at = s->now;
      heal(s);
      note(s, "heal everything; waiting for convergence");
    } else if (s->now - healed_at < 2000 && chance(s, 4)) {
      client_op(s);
    }
    if (s->now % 10 == 0)
      check_step(s);
    if (healed && s->now - healed_at > 2000 && s->now % 100 == 0 && converged(s)) {
      if (s->now - healed_at > t->max_converge)
        t->max_converge = s->now - healed_at;
      break;
    }
  }
  if (!s->failed && s->now > end) {
    char why[256];
    converged_why(s, why, sizeof why);
    fail(s, "convergence: not converged %d ms after healing: %s", HEAL_MS, why);
  }
  if (!s->failed) {
    watch_drain(s);
    final_checks(s);
  }
  int rc = s->failed ? 1 : 0;
  if (s->failed) {
    printf("FAIL seed=%" PRIu64 " t=%" PRId64 " agents=%d%s: %s\n", seed, s->now, s->n,
           s->dynamic ? " (discovery)" : "", s->why);
    dump(s);
  }
  t->puts += s->puts_acked;
  t->reads += s->reads_ok;
  t->crashes += s->crashes;
  t->msgs += s->msgs;
  t->calls += s->n_calls;
  t->unknown += s->unknown;
  t->hostile += s->hostile_refused;
  if (s->nodes[0].node)
    t->watcher_snaps += atomic_load(&s->nodes[0].node->m_snapshots_installed);
  sim_free(s);
  return rc;
}

/* --founding: only the start of a cluster with discovery, many times: 3 to
 * 6 agents, views that grow at random times over the first 3 s, message
 * delays up to 60 ms (stale votes), no clients and no faults; after 10 s
 * every agent must have joined one cluster. */
static int run_founding(uint64_t seed, bool verbose, struct totals *t) {
  struct sim *s = calloc(1, sizeof *s);
  if (!s)
    abort();
  s->seed = seed;
  s->rng = seed * 0x9e3779b97f4a7c15ull + 11;
  s->n = 3 + (int)(rnd(s) % 4);
  s->verbose = verbose;
  s->dynamic = true;
  s->max_delay = 1 + (unsigned)(rnd(s) % 60);
  for (int i = 0; i < s->n; i++)
    for (int j = 0; j < s->n; j++)
      s->sees_from[i][j] = i == j ? 0 : (int64_t)(rnd(s) % 3000);
  key_names(s);
  for (int i = 0; i < s->n; i++)
    agent_start(s, i);
  for (s->now = 1; s->now <= 10000 && !s->failed; s->now++) {
    deliver_due(s);
    if (s->now % 10 == 0)
      sweep_calls(s);
    discovery_round(s);
    for (int i = 0; i < s->n; i++)
      mq_node_step(s->nodes[i].node);
    if (s->now % 10 == 0)
      check_step(s);
  }
  for (int i = 0; i < s->n && !s->failed; i++)
    if (!s->nodes[i].node->cluster_id)
      fail(s, "founding: n%d has not joined a cluster after 10 s", i + 1);
  int rc = s->failed ? 1 : 0;
  if (s->failed)
    printf("FAIL seed=%" PRIu64 " t=%" PRId64 " agents=%d (founding, delay <= %u ms): %s\n", seed,
           s->now, s->n, s->max_delay, s->why);
  t->msgs += s->msgs;
  t->calls += s->n_calls;
  sim_free(s);
  return rc;
}

int main(int argc, char **argv) {
  uint64_t lo = 1, hi = 20;
  int64_t steps = DEFAULT_STEPS;
  bool verbose = false, founding = false;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--seeds") && i + 1 < argc) {
      unsigned long long a, b;
      int k = sscanf(argv[++i], "%llu-%llu", &a, &b);
      if (k == 1)
        b = a;
      if (k < 1 || a > b) {
        fprintf(stderr, "bad --seeds %s\n", argv[i]);
        return 2;
      }
      lo = a;
      hi = b;
    } else if (!strcmp(argv[i], "--steps") && i + 1 < argc) {
      steps = atoll(argv[++i]);
    } else if (!strcmp(argv[i], "--verbose")) {
      verbose = true;
    } else if (!strcmp(argv[i], "--founding")) {
      founding = true;
    } else {
      fprintf(stderr, "usage: %s --seeds A-B [--steps MS] [--founding] [--verbose]\n", argv[0]);
      return 2;
    }
  }
  mq_log_set_level(verbose ? MQ_LOG_INFO : MQ_LOG_ERROR);
  struct totals t = {0};
  int failed = 0;
  if (founding) {
    for (uint64_t seed = lo; seed <= hi; seed++)
      failed += run_founding(seed, verbose, &t);
    printf("cluster-sim --founding: seeds %llu-%llu: %d failed; every round one cluster that "
           "every agent joined; %llu frames, %llu calls\n",
           (unsigned long long)lo, (unsigned long long)hi, failed, (unsigned long long)t.msgs,
           (unsigned long long)t.calls);
    return failed ? 1 : 0;
  }
  for (uint64_t seed = lo; seed <= hi; seed++)
    failed += run_seed(seed, steps, verbose, &t);
  printf("cluster-sim: seeds %llu-%llu: %d failed; %llu puts acknowledged, %llu reads, %llu "
         "writes of unknown outcome, %llu crashes, %llu frames, %llu calls, %llu snapshots "
         "installed by the watcher's agent, %llu forwarded requests for shards past the last "
         "refused; converged at most %lld ms after healing\n",
         (unsigned long long)lo, (unsigned long long)hi, failed, (unsigned long long)t.puts,
         (unsigned long long)t.reads, (unsigned long long)t.unknown, (unsigned long long)t.crashes,
         (unsigned long long)t.msgs, (unsigned long long)t.calls,
         (unsigned long long)t.watcher_snaps, (unsigned long long)t.hostile,
         (long long)t.max_converge);
  return failed ? 1 : 0;
}
