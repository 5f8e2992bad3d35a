/* The member table: every agent this one knows, its peer address, its
 * current incarnation and whether its pipe is up; the transport's callbacks
 * (which run on transport threads and only post mail); gossip; bootstrap
 * and readiness.
 *
 * Bootstrap (DESIGN.md section 6: two agents must never create divergent
 * first configurations of a shard). Exactly one agent founds each shard:
 * the first replica placement picks among the static seed set (this agent
 * and --peers), which every agent computes alike. The founder creates the
 * group with itself as the only voter, and as leader adds the other
 * replicas (learner, then voter) like any membership change. It founds only
 * after a majority of the seed set (and --bootstrap-expect agents) have
 * answered gossip and none of them reports that the cluster already exists:
 * an agent restarted with empty memory must rejoin, never found again.
 *
 * Gossip: once a second every agent asks every other one which shards it
 * holds and who leads them; that is how an agent that does not hold a shard
 * learns where to forward its requests. Readiness is in health.c. */
#include "cluster/internal.h"
#include "cluster/placement.h"
#include "util/log.h"

#include <stdlib.h>
#include <string.h>

#define GOSSIP_EVERY_MS 1000

struct member *member_by_id(struct mq_node *n, const char *id) {
  for (int i = 0; i < n->n_members; i++)
    if (strcmp(n->members[i].id, id) == 0)
      return &n->members[i];
  return NULL;
}

struct member *member_by_key(struct mq_node *n, uint64_t key) {
  for (int i = 0; i < n->n_members; i++)
    if (n->members[i].key == key)
      return &n->members[i];
  return NULL;
}

static struct member *member_add(struct mq_node *n, const char *id, const char *addr) {
  uint64_t key;
  if (mq_raft_host_name_node(&n->host, id, &key)) {
    mq_error("core", "node id %s collides with another node id's key; rename one", id);
    return NULL;
  }
  if (n->n_members == n->cap_members) {
    int cap = n->cap_members ? n->cap_members * 2 : 8;
    struct member *p = realloc(n->members, (size_t)cap * sizeof *p);
    if (!p)
      return NULL;
    n->members = p;
    n->cap_members = cap;
  }
  struct member *m = &n->members[n->n_members++];
  memset(m, 0, sizeof *m);
  m->down_since_ms = node_now(n);
  snprintf(m->id, sizeof m->id, "%s", id);
  snprintf(m->addr, sizeof m->addr, "%s", addr);
  m->key = key;
  return m;
}

static uint64_t fnv(uint64_t h, const void *p, size_t len) {
  const unsigned char *c = p;
  for (size_t i = 0; i < len; i++) {
    h ^= c[i];
    h *= 0x100000001b3ULL;
  }
  return h;
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Hash of what the first placement depends on: seed ids (with discovery,
 * none: agents find each other), shards, rf. It names the cluster that
 * static seeds found (cluster_id). */
static uint64_t seed_hash(struct mq_node *n) {
  const char *ids[MQ_MAX_PEERS + 1];
  int k = 0;
  for (int i = 0; i < n->n_members && !n->dynamic; i++)
    if (n->members[i].seed)
      ids[k++] = n->members[i].id;
  qsort(ids, (size_t)k, sizeof ids[0], cmp_str);
  uint64_t h = 0xcbf29ce484222325ULL;
  for (int i = 0; i < k; i++)
    h = fnv(h, ids[i], strlen(ids[i]) + 1);
  int32_t params[3] = {n->n_shards, n->cfg->replication_factor, n->dynamic};
  return fnv(h, params, sizeof params);
}

int members_init(struct mq_node *n) {
  const struct mq_config *cfg = n->cfg;
  /* A boot-time reading of the wall clock: it grows from one start to the
   * next (the random sub-millisecond part keeps two starts within the same
   * millisecond apart). */
  uint64_t boot_ns = (uint64_t)node_wall(n) * 1000000ULL + n->io->random(n->io) % 1000000ULL;
  n->self.node = mq_raft_node_key(cfg->node_id);
  n->self.inc = mq_raft_incarnation_next(0, boot_ns);
  n->client_id = n->self.node ^ (n->self.inc * 0x9e3779b97f4a7c15ULL);
  if (!n->client_id)
    n->client_id = 1;
  mq_raft_host_init(&n->host, n->self.node);

  char addr[300];
  snprintf(addr, sizeof addr, "%s:%d", cfg->advertise_addr, cfg->peer_port);
  struct member *self = member_add(n, cfg->node_id, addr);
  if (!self)
    return MQ_ENOMEM;
  self->self = self->seed = self->up = true;
  self->inc = n->self.inc;
  for (int i = 0; i < cfg->n_peers; i++) {
    const struct mq_peer_addr *p = &cfg->peers[i];
    if (strcmp(p->node_id, cfg->node_id) == 0)
      continue; /* a shared peer list may name this agent too */
    const char *fmt = strchr(p->host, ':') ? "[%s]:%d" : "%s:%d";
    snprintf(addr, sizeof addr, fmt, p->host, p->port);
    struct member *m = member_add(n, p->node_id, addr);
    if (!m)
      return MQ_EINVAL;
    m->seed = true;
  }
  n->dynamic = cfg->nacos_addr[0] || cfg->dns_name[0];
  n->seed_hash = seed_hash(n);
  /* The cluster id is learned from a member of a formed cluster, or set
   * at founding: from the seed hash with a static seed list (every founder
   * computes the same), drawn by the founder with discovery. An agent that
   * joins later with a longer --peers list (a scale-out) so takes the id of
   * the cluster it joins rather than one of its own list. */
  n->disc_current = MQ_DISCOVERY_STATIC;
  n->disc[MQ_DISCOVERY_STATIC].ok = true;
  n->disc[MQ_DISCOVERY_STATIC].found = (size_t)(n->n_members - 1);
  return 0;
}

void members_close(struct mq_node *n) {
  mq_raft_host_close(&n->host);
  struct placement_cache *caches[] = {&n->placed_all, &n->placed_live};
  for (int i = 0; i < 2; i++) {
    free(caches[i]->table);
    free(caches[i]->map);
    memset(caches[i], 0, sizeof *caches[i]);
  }
  n->peer = NULL; /* the transport belongs to whoever made the node */
  free(n->members);
  n->members = NULL;
  n->n_members = 0;
}

/* The placement table over the members keep() admits (all when NULL),
 * computed again only when that set changes. */
static struct placement_cache *
placement_of(struct mq_node *n, bool (*keep)(struct mq_node *n, const struct member *m)) {
  struct placement_cache *c = keep ? &n->placed_live : &n->placed_all;
  int *map = malloc((size_t)(n->n_members ? n->n_members : 1) * sizeof *map);
  if (!map)
    return c->table ? c : NULL;
  int k = 0;
  uint64_t key = 0xcbf29ce484222325ULL;
  for (int i = 0; i < n->n_members; i++) {
    if (n->members[i].foreign || (keep && !keep(n, &n->members[i])))
      continue;
    map[k++] = i;
    key = fnv(key, &i, sizeof i);
  }
  key = fnv(key, &k, sizeof k);
  if (c->table && c->key == key) {
    free(map);
    return c;
  }
  const char **ids = malloc((size_t)(k ? k : 1) * sizeof *ids);
  size_t rf = (size_t)n->cfg->replication_factor;
  size_t *table = malloc((size_t)n->n_shards * (rf ? rf : 1) * sizeof *table);
  if (!ids || !table) {
    free(ids);
    free(table);
    free(map);
    return c->table ? c : NULL; /* keep the last one */
  }
  for (int i = 0; i < k; i++)
    ids[i] = n->members[map[i]].id;
  c->rf = mq_placement_table(n->n_shards, ids, (size_t)k, rf, table);
  c->stride = rf;
  free(ids);
  free(c->table);
  free(c->map);
  c->table = table;
  c->map = map;
  c->n = k;
  c->key = key;
  return c;
}

/* Placement over the members for which keep(n, m) holds. */
static size_t place(struct mq_node *n, int32_t shard, struct member **out, size_t max,
                    bool (*keep)(struct mq_node *n, const struct member *m)) {
  struct placement_cache *c = placement_of(n, keep);
  size_t rf = (size_t)n->cfg->replication_factor;
  if (keep && c && (size_t)c->n < rf) /* too few left: nobody is replaced */
    return place(n, shard, out, max, NULL);
  if (!c || shard < 0 || shard >= n->n_shards)
    return 0;
  size_t got = c->rf < max ? c->rf : max;
  for (size_t i = 0; i < got; i++)
    out[i] = &n->members[c->map[c->table[(size_t)shard * c->stride + i]]];
  return got;
}

size_t members_placement(struct mq_node *n, int32_t shard, struct member **out, size_t max) {
  return place(n, shard, out, max, NULL);
}

static bool not_long_dead(struct mq_node *n, const struct member *m) {
  int64_t after = n->cfg->replace_dead_ms;
  return m->self || m->up || after <= 0 || !m->down_since_ms ||
         node_now(n) - m->down_since_ms < after;
}

bool members_is_old(struct mq_node *n, struct mq_raft_member id) {
  struct member *m = member_by_key(n, id.node);
  return m && m->inc && id.inc < m->inc;
}

size_t members_placement_live(struct mq_node *n, int32_t shard, struct member **out, size_t max) {
  return place(n, shard, out, max, not_long_dead);
}

/* ------------------------------------------------------------------------ */
/* Transport callbacks: transport threads, post mail only. */

static struct net_mail *net_mail_new(int kind, size_t len) {
  struct net_mail *nm = malloc(sizeof *nm + len);
  if (nm) {
    memset(nm, 0, sizeof *nm);
    nm->mail.kind = kind;
    nm->len = len;
  }
  return nm;
}

struct net_mail *net_mail_reply(uint64_t tag, int rc, const struct mq_status *st,
                                const uint8_t *reply, size_t len) {
  struct net_mail *nm = net_mail_new(MAIL_REPLY, rc ? 0 : len);
  if (nm) {
    nm->call_tag = tag;
    nm->rc = rc;
    if (st)
      nm->st = *st;
    if (!rc && len)
      memcpy(nm->data, reply, len);
  }
  return nm;
}

static void post(struct mq_node *n, struct net_mail *nm) {
  if (mq_mailbox_push(&n->mailbox, &nm->mail)) {
    if (nm->mail.kind == MAIL_CALL) {
      struct mq_status st;
      mq_status_set(&st, MQ_EUNAVAIL, "agent is shutting down");
      node_reply(n, nm->ctx, MQ_EUNAVAIL, &st, NULL, 0);
    }
    free(nm);
  }
}

#define MAX_FRAMES_QUEUED 4096

static void cb_frame(void *arg, const struct mq_peer_hello *from, const uint8_t *data, size_t len) {
  struct mq_node *n = arg;
  /* Raft tolerates loss: past the bound, frames are dropped rather than
   * queued without limit for a peer that sends faster than we apply. */
  if (atomic_load(&n->frames_queued) >= MAX_FRAMES_QUEUED)
    return;
  struct net_mail *nm = net_mail_new(MAIL_FRAME, len);
  if (!nm)
    return;
  nm->hello = *from;
  memcpy(nm->data, data, len);
  atomic_fetch_add(&n->frames_queued, 1);
  if (mq_mailbox_push(&n->mailbox, &nm->mail)) {
    atomic_fetch_sub(&n->frames_queued, 1);
    free(nm);
  }
}

static void cb_up(void *arg, const struct mq_peer_hello *peer) {
  struct net_mail *nm = net_mail_new(MAIL_PEER_UP, 0);
  if (nm) {
    nm->hello = *peer;
    post(arg, nm);
  }
}

static void cb_down(void *arg, const char *node_id) {
  struct net_mail *nm = net_mail_new(MAIL_PEER_DOWN, 0);
  if (nm) {
    snprintf(nm->hello.node_id, sizeof nm->hello.node_id, "%s", node_id);
    post(arg, nm);
  }
}

static void cb_call(void *arg, struct mq_peer_call_ctx *ctx, const struct mq_peer_hello *from,
                    const uint8_t *body, size_t len) {
  struct net_mail *nm = net_mail_new(MAIL_CALL, len);
  if (!nm) {
    struct mq_status st;
    mq_status_set(&st, MQ_ENOMEM, "out of memory");
    node_reply(arg, ctx, MQ_ENOMEM, &st, NULL, 0);
    return;
  }
  nm->ctx = ctx;
  nm->hello = *from;
  memcpy(nm->data, body, len);
  post(arg, nm);
}

/* A lone agent founds every shard at once, as their only voter. */
static int found_all_alone(struct mq_node *n) {
  struct mq_raft_conf conf = {.n = 1};
  conf.m[0].id = n->self;
  conf.m[0].role = MQ_RAFT_VOTER;
  for (int i = 0; i < n->n_shards; i++) {
    int rc = replica_create(n, &n->shards[i], &conf);
    if (rc)
      return rc;
  }
  n->formed = true;
  if (!n->cluster_id)
    n->cluster_id = n->seed_hash | 1;
  return 0;
}

int members_start_transport(struct mq_node *n, struct mq_status *st) {
  if (n->n_members == 1 && !n->dynamic)
    return found_all_alone(n) ? mq_status_set(st, MQ_ENOMEM, "cannot create the shards") : 0;
  struct mq_peer_hello hello;
  memset(&hello, 0, sizeof hello);
  snprintf(hello.node_id, sizeof hello.node_id, "%s", n->cfg->node_id);
  hello.incarnation = n->self.inc;
  hello.shards_total = n->n_shards;
  hello.protocol_version = MQ_PEER_PROTOCOL_VERSION;
  hello.features = MQ_PEER_FEATURE_FORWARD_FRAMES;
  snprintf(hello.peer_address, sizeof hello.peer_address, "%s", n->members[0].addr);
  /* The handshake checks what agents must share to hold shards together;
   * the seed ids only name the founders' cluster (cluster_id). */
  int32_t shared[2] = {n->n_shards, n->cfg->replication_factor};
  hello.seed_hash = fnv(0xcbf29ce484222325ULL, shared, sizeof shared);
  struct mq_peer_callbacks cb = {
      .on_frame = cb_frame,
      .on_peer_up = cb_up,
      .on_peer_down = cb_down,
      .on_call = cb_call,
      .arg = n,
  };
  int rc = n->transport->start(n->transport, &hello, &cb, st);
  if (rc)
    return rc;
  n->peer = n->transport;
  snprintf(n->members[0].addr, sizeof n->members[0].addr, "%s",
           n->peer->self(n->peer)->peer_address);
  mq_info("peer", "peer transport on %s; %d seed agents", n->members[0].addr, n->n_members);
  return 0;
}

/* ------------------------------------------------------------------------ */
/* Peer events on the core loop */

struct member *members_on_up(struct mq_node *n, const struct mq_peer_hello *h) {
  struct member *m = member_by_id(n, h->node_id);
  if (!m) {
    m = member_add(n, h->node_id, h->peer_address);
    if (!m)
      return NULL;
    mq_info("core", "new member %s at %s", h->node_id, h->peer_address);
  }
  if (m->self)
    return m;
  if (h->peer_address[0])
    snprintf(m->addr, sizeof m->addr, "%s", h->peer_address);
  if (m->inc && m->inc != h->incarnation) {
    mq_info("core", "member %s restarted: incarnation %llu -> %llu", m->id,
            (unsigned long long)m->inc, (unsigned long long)h->incarnation);
    m->leaving = false;
  }
  if (!m->up) {
    mq_info("core", "member %s is up (%s)", m->id, m->addr);
    atomic_fetch_add(&n->peers_up, 1);
  }
  m->inc = h->incarnation;
  m->up = true;
  m->down_since_ms = 0;
  return m;
}

void members_on_down(struct mq_node *n, const char *id) {
  struct member *m = member_by_id(n, id);
  if (m && !m->self && m->up) {
    m->up = false;
    m->down_since_ms = node_now(n);
    atomic_fetch_sub(&n->peers_up, 1);
    mq_info("core", "member %s is down", m->id);
    /* Its connection closed (a killed process closes it at once): the
     * shards it led elect a new leader without waiting out a whole
     * election timeout of silence. */
    for (int i = 0; i < n->n_shards; i++)
      if (n->shards[i].raft)
        mq_raft_leader_unreachable(n->shards[i].raft, m->key);
  }
  /* Batches forwarded on that pipe may be lost with it: route them again. */
  if (m && !m->self)
    forward_peer_down(n, m->key);
}

/* ------------------------------------------------------------------------ */
/* Gossip: [CALL_GOSSIP][u8 flags] -> [u8 flags][u64 incarnation]
 * [varint n]{u8 held, u8 leader, u64 term, bytes leader id}*n
 * flags: GOSSIP_FORMED | GOSSIP_LEAVING (an agent before GOSSIP_LEAVING sent
 * 0 or 1, which reads the same). */
#define GOSSIP_FORMED 1
#define GOSSIP_LEAVING 2

static uint8_t gossip_flags(const struct mq_node *n) {
  return (uint8_t)((n->formed ? GOSSIP_FORMED : 0) |
                   (atomic_load(&n->draining) ? GOSSIP_LEAVING : 0));
}

static void note_leaving(struct mq_node *n, struct member *m, uint8_t flags) {
  bool leaving = flags & GOSSIP_LEAVING;
  if (leaving && !m->leaving)
    mq_info("core", "member %s is shutting down", m->id);
  m->leaving = leaving;
}

/* What m says its cluster is (0: none yet). A member of another cluster
 * is refused loudly and never used: two clusters that formed apart must
 * not merge their shards. */
static void note_cluster(struct mq_node *n, struct member *m, uint64_t id) {
  m->cluster_id = id;
  bool foreign = id && n->cluster_id && id != n->cluster_id;
  if (foreign && !m->foreign)
    mq_error("core",
             "refusing agent %s at %s: it belongs to another cluster (id %016llx, ours "
             "%016llx); two clusters formed apart (check --bootstrap-expect and that every agent "
             "discovers the same service)",
             m->id, m->addr, (unsigned long long)id, (unsigned long long)n->cluster_id);
  else if (!foreign && m->foreign)
    mq_info("core", "agent %s now belongs to this cluster", m->id);
  m->foreign = foreign;
}

bool members_is_foreign(struct mq_node *n, const char *id) {
  struct member *m = member_by_id(n, id);
  return m && m->foreign;
}

void members_on_gossip_call(struct mq_node *n, struct net_mail *nm, const uint8_t *body,
                            size_t len) {
  /* The caller's hello names its incarnation and address: that is how
   * agents learn each other before any Raft traffic flows. */
  struct member *caller = members_on_up(n, &nm->hello);
  if (caller && !caller->self && len >= 1)
    note_leaving(n, caller, body[0]);
  if (caller && !caller->self && len >= 9) {
    struct mq_reader rd;
    mq_reader_init(&rd, body + 1, len - 1);
    note_cluster(n, caller, mq_get_u64(&rd));
  }
  struct mq_buf b;
  mq_buf_init(&b);
  mq_buf_put_u8(&b, gossip_flags(n));
  mq_buf_put_u64(&b, n->self.inc);
  mq_buf_put_varint(&b, (uint64_t)n->n_shards);
  for (int i = 0; i < n->n_shards; i++) {
    struct shard *s = &n->shards[i];
    const char *leader = "";
    uint64_t term = s->hint_term;
    if (s->raft) {
      term = s->term;
      struct member *m = s->leader.node ? member_by_key(n, s->leader.node) : NULL;
      leader = m ? m->id : "";
    } else {
      leader = s->hint_leader;
    }
    mq_buf_put_u8(&b, s->raft != NULL);
    mq_buf_put_u8(&b, replica_is_leader(s));
    mq_buf_put_u64(&b, term);
    mq_buf_put_bytes(&b, leader, strlen(leader));
  }
  /* who answers: a caller that only had an address (discovery) learns the
   * agent's id here */
  mq_buf_put_bytes(&b, n->cfg->node_id, strlen(n->cfg->node_id));
  mq_buf_put_u64(&b, n->cluster_id);
  mq_buf_put_bytes(&b, n->boot_vote, strlen(n->boot_vote));
  mq_buf_put_u64(&b, n->boot_vote_inc);
  mq_buf_put_u8(&b, (uint8_t)((n->boot.locked ? 1 : 0) | (n->boot.claiming ? 2 : 0)));
  mq_buf_put_u64(&b, n->boot.lock_epoch);
  mq_buf_put_u64(&b, n->boot.claim_epoch);
  if (b.err) {
    struct mq_status st;
    mq_status_set(&st, MQ_ENOMEM, "out of memory");
    node_reply(n, nm->ctx, MQ_ENOMEM, &st, NULL, 0);
  } else {
    node_reply(n, nm->ctx, 0, NULL, b.data, b.len);
  }
  mq_buf_close(&b);
  free(nm);
}

struct gossip_ctx {
  struct mq_node *n;
  char id[128];   /* the member called; "" for a discovered address */
  char addr[300]; /* where */
};

static void gossip_done(void *arg, int rc, const struct mq_status *st, const uint8_t *reply,
                        size_t len) {
  struct gossip_ctx *gc = arg;
  struct net_mail *nm = net_mail_reply(TAG_GOSSIP, rc, st, reply, len);
  if (nm) {
    snprintf(nm->hello.node_id, sizeof nm->hello.node_id, "%s", gc->id);
    snprintf(nm->hello.peer_address, sizeof nm->hello.peer_address, "%s", gc->addr);
    post(gc->n, nm);
  }
  free(gc);
}

/* What follows the shards in a gossip answer (absent from an agent that
 * predates it: all empty). */
struct answer_tail {
  char id[128];
  uint64_t cluster_id;
  char vote[128];
  uint64_t vote_inc;
  struct boot_state boot;
};

static void parse_tail(const struct net_mail *nm, int n_shards, struct answer_tail *t) {
  memset(t, 0, sizeof *t);
  struct mq_reader rd;
  mq_reader_init(&rd, nm->data, nm->len);
  mq_get_u8(&rd);
  mq_get_u64(&rd);
  if (mq_get_varint(&rd) != (uint64_t)n_shards)
    return;
  for (int i = 0; i < n_shards && !rd.err; i++) {
    size_t ll;
    mq_get_u8(&rd);
    mq_get_u8(&rd);
    mq_get_u64(&rd);
    mq_get_bytes(&rd, &ll, 127);
  }
  size_t il = 0, vl = 0;
  const uint8_t *id = mq_get_bytes(&rd, &il, sizeof t->id - 1);
  uint64_t cid = mq_get_u64(&rd);
  const uint8_t *vote = mq_get_bytes(&rd, &vl, sizeof t->vote - 1);
  uint64_t vinc = mq_get_u64(&rd);
  uint8_t boot = mq_get_u8(&rd);
  uint64_t lock_epoch = mq_get_u64(&rd);
  uint64_t claim_epoch = mq_get_u64(&rd);
  if (rd.err)
    return;
  t->boot = (struct boot_state){boot & 1, lock_epoch, (boot & 2) != 0, claim_epoch};
  memcpy(t->id, id ? (const char *)id : "", il);
  t->id[il] = '\0';
  t->cluster_id = cid;
  memcpy(t->vote, vote ? (const char *)vote : "", vl);
  t->vote[vl] = '\0';
  t->vote_inc = vinc;
}

/* The member a gossip answer comes from: the one called, or, when the
 * address was a discovered one or now answers under another id, the agent
 * the answer names (added to the table if new). NULL for this agent itself
 * (a source that lists it under another address) or an answer without id. */
static struct member *answerer(struct mq_node *n, struct net_mail *nm, const char *id) {
  if (!id[0] || strcmp(id, nm->hello.node_id) == 0)
    return id[0] || nm->hello.node_id[0] ? member_by_id(n, nm->hello.node_id) : NULL;
  if (strcmp(id, n->cfg->node_id) == 0)
    return NULL;
  if (nm->hello.node_id[0]) {
    /* the member called is no longer at that address */
    struct member *old = member_by_id(n, nm->hello.node_id);
    if (old && strcmp(old->addr, nm->hello.peer_address) == 0)
      old->addr[0] = '\0';
  }
  struct member *m = member_by_id(n, id);
  if (!m) {
    m = member_add(n, id, nm->hello.peer_address);
    if (m)
      mq_info("core", "new member %s at %s (discovered)", id, nm->hello.peer_address);
  } else {
    snprintf(m->addr, sizeof m->addr, "%s", nm->hello.peer_address);
  }
  return m;
}

void members_on_gossip_reply(struct mq_node *n, struct net_mail *nm) {
  if (nm->rc) {
    struct member *m = nm->hello.node_id[0] ? member_by_id(n, nm->hello.node_id) : NULL;
    if (m)
      members_on_down(n, m->id);
    free(nm);
    return;
  }
  struct answer_tail tail;
  parse_tail(nm, n->n_shards, &tail);
  struct member *m = answerer(n, nm, tail.id);
  if (!m) {
    free(nm);
    return;
  }
  struct mq_reader rd;
  mq_reader_init(&rd, nm->data, nm->len);
  uint8_t flags = mq_get_u8(&rd);
  uint64_t inc = mq_get_u64(&rd);
  uint64_t count = mq_get_varint(&rd);
  if (!rd.err && count == (uint64_t)n->n_shards && inc) {
    struct mq_peer_hello h;
    memset(&h, 0, sizeof h);
    snprintf(h.node_id, sizeof h.node_id, "%s", m->id);
    snprintf(h.peer_address, sizeof h.peer_address, "%s", m->addr);
    h.incarnation = inc;
    members_on_up(n, &h);
    m->answered = true;
    m->formed = flags & GOSSIP_FORMED;
    note_leaving(n, m, flags);
    snprintf(m->vote, sizeof m->vote, "%s", tail.vote);
    m->vote_inc = tail.vote_inc;
    m->boot = tail.boot;
    if (!n->cluster_id && m->formed && tail.cluster_id) {
      n->cluster_id = tail.cluster_id; /* joining a cluster that exists */
      mq_info("core", "joining cluster %016llx (heard from %s)", (unsigned long long)n->cluster_id,
              m->id);
    }
    note_cluster(n, m, tail.cluster_id);
    for (int i = 0; i < n->n_shards && !rd.err; i++) {
      struct shard *s = &n->shards[i];
      bool held = mq_get_u8(&rd);
      mq_get_u8(&rd);
      uint64_t term = mq_get_u64(&rd);
      size_t ll;
      const uint8_t *leader = mq_get_bytes(&rd, &ll, 127);
      if (!rd.err && (held || ll))
        s->exists_elsewhere = true;
      if (rd.err || ll == 0 || term < s->hint_term)
        continue;
      s->hint_term = term;
      memcpy(s->hint_leader, leader, ll);
      s->hint_leader[ll] = '\0';
    }
  }
  free(nm);
}

/* Bootstrap with discovery. There is no seed list every agent shares, so
 * the cluster is founded by one agent, elected in two phases over gossip:
 *
 * 1. Vote. Once an agent has heard from --bootstrap-expect agents (itself
 *    included), none of them says the cluster exists, and that count has
 *    held for BOOT_SETTLE_MS, it votes for the agent with the lowest id it
 *    knows. Until it locks, it moves its vote when it learns of a lower id
 *    (partial views: one agent may see another seconds before a third
 *    does, and votes split).
 * 2. Claim and lock. A candidate with bootstrap_expect votes claims (a new
 *    claim epoch) and locks its own vote; a voter whose candidate claims
 *    locks its vote to that claim. The candidate founds once
 *    bootstrap_expect votes are locked to its claim. If that does not
 *    happen within BOOT_CLAIM_MS (voters moved on before they locked), it
 *    abandons the claim; its voters unlock when they see the abandonment
 *    (or the candidate restarted), and voting goes on.
 *
 * Safety: a founding counts bootstrap_expect locks held at that instant;
 * a lock is released only after its candidate abandoned that claim, which
 * a candidate that founded never does. An agent holds one lock at a time,
 * so two founders would need twice bootstrap_expect agents (incarnations)
 * locked before either founds. cluster-sim runs this with partial,
 * growing views. */
#define BOOT_SETTLE_MS 500
#define BOOT_CLAIM_MS 1000

static bool counts_for_boot(struct mq_node *n, const struct member *m) {
  return m->self || (m->answered && m->up && !m->foreign && m->inc);
}

static bool votes_for(const struct member *m, const struct mq_node *n) {
  return strcmp(m->vote, n->cfg->node_id) == 0 && m->vote_inc == n->self.inc;
}

/* A voter's side: drop a lock whose claim was abandoned, move an unlocked
 * vote to the lowest id, lock when the candidate claims. */
static void boot_voter(struct mq_node *n, const struct member *lowest) {
  struct boot_state *b = &n->boot;
  bool self_vote = strcmp(n->boot_vote, n->cfg->node_id) == 0;
  if (b->locked && !self_vote) {
    const struct member *c = member_by_id(n, n->boot_vote);
    if (c && (c->inc != n->boot_vote_inc || c->boot.claim_epoch > b->lock_epoch ||
              (c->boot.claim_epoch == b->lock_epoch && !c->boot.claiming))) {
      mq_info("core", "bootstrap: %s gave up its claim; this vote is free again", c->id);
      b->locked = false;
    }
  }
  if (b->locked)
    return;
  uint64_t inc = lowest->self ? n->self.inc : lowest->inc;
  if (strcmp(n->boot_vote, lowest->id) != 0 || n->boot_vote_inc != inc) {
    mq_info("core",
            "bootstrap: %d agents found (--bootstrap-expect %d); voting for %s to found "
            "the cluster%s",
            n->boot_seen, n->cfg->bootstrap_expect, lowest->id,
            n->boot_vote[0] ? " (a lower id than the last vote)" : "");
    snprintf(n->boot_vote, sizeof n->boot_vote, "%s", lowest->id);
    n->boot_vote_inc = inc;
  }
  if (lowest->self)
    return;
  if (lowest->boot.claiming && lowest->inc == n->boot_vote_inc) {
    b->locked = true;
    b->lock_epoch = lowest->boot.claim_epoch;
  }
}

static void found_by_vote(struct mq_node *n) {
  int expect = n->cfg->bootstrap_expect > 0 ? n->cfg->bootstrap_expect : 1;
  int seen = 0;
  const struct member *lowest = NULL;
  for (int i = 0; i < n->n_members; i++) {
    const struct member *m = &n->members[i];
    if (!counts_for_boot(n, m))
      continue;
    if (!m->self && m->formed) {
      n->formed = true; /* it exists: its leaders add this agent */
      mq_info("core", "bootstrap: %s says the cluster exists; joining it", m->id);
      return;
    }
    seen++;
    if (!lowest || strcmp(m->id, lowest->id) < 0)
      lowest = m;
  }
  int64_t now = node_now(n);
  if (seen != n->boot_seen) {
    n->boot_seen = seen;
    n->boot_seen_ms = now;
  }
  if (!n->boot_vote[0] && (seen < expect || now - n->boot_seen_ms < BOOT_SETTLE_MS))
    return;
  boot_voter(n, lowest);
  if (strcmp(n->boot_vote, n->cfg->node_id) != 0 || n->boot_vote_inc != n->self.inc)
    return;
  /* the candidate's side */
  struct boot_state *b = &n->boot;
  int votes = 0, locks = 0;
  for (int i = 0; i < n->n_members; i++) {
    const struct member *m = &n->members[i];
    if (m->self || !counts_for_boot(n, m) || !votes_for(m, n))
      continue;
    votes++;
    locks += m->boot.locked && m->boot.lock_epoch == b->claim_epoch && b->claiming;
  }
  if (MQ_CLUSTER_BUG(6))
    locks = b->claiming ? locks : votes; /* founds on votes that may still move */
  else if (!b->claiming) {
    if (votes + 1 < expect || seen < expect)
      return;
    b->claiming = b->locked = true;
    b->lock_epoch = ++b->claim_epoch;
    n->boot_claim_ms = now;
    n->boot_abandon_after_ms = BOOT_CLAIM_MS + (int64_t)(n->io->random(n->io) % BOOT_CLAIM_MS);
    mq_info("core", "bootstrap: %d agents vote for this one; asking them to lock their votes",
            votes + 1);
    return;
  }
  if (locks + 1 < expect) {
    if (now - n->boot_claim_ms < n->boot_abandon_after_ms)
      return;
    b->claiming = b->locked = false;
    mq_info("core",
            "bootstrap: only %d of %d votes locked within %lld ms; giving up this claim so the "
            "agents can vote again",
            locks + 1, expect, (long long)n->boot_abandon_after_ms);
    return;
  }
  n->cluster_id = n->io->random(n->io) | 1;
  if (found_all_alone(n))
    return;
  mq_info("core",
          "bootstrap: %d of %d agents locked their votes for this one; founded the cluster (id "
          "%016llx) with %d shards; the other agents join as its leaders add them",
          locks + 1, seen, (unsigned long long)n->cluster_id, n->n_shards);
}

/* Founds the shards whose first seed replica is this agent, once a
 * majority of seeds (and bootstrap_expect agents) answered gossip, except
 * those that an answering agent holds or knows a leader of: the shard
 * exists, and this agent (restarted with empty memory) will be added to it
 * by its leader. */
static void maybe_found(struct mq_node *n) {
  int seeds = 0, answered = 0;
  for (int i = 0; i < n->n_members; i++) {
    struct member *m = &n->members[i];
    if (!m->seed)
      continue;
    seeds++;
    if (m->self || m->answered)
      answered++;
  }
  int need = seeds / 2 + 1;
  if (n->cfg->bootstrap_expect > need)
    need = n->cfg->bootstrap_expect;
  if (answered < need)
    return;
  const char *ids[MQ_MAX_PEERS + 1];
  struct member *ms[MQ_MAX_PEERS + 1];
  int k = 0;
  for (int i = 0; i < n->n_members && k <= MQ_MAX_PEERS; i++)
    if (n->members[i].seed) {
      ids[k] = n->members[i].id;
      ms[k++] = &n->members[i];
    }
  struct mq_raft_conf conf = {.n = 1};
  conf.m[0].id = n->self;
  conf.m[0].role = MQ_RAFT_VOTER;
  /* the founder of a shard is its first replica in the placement over the
   * seeds, which every seed computes alike */
  size_t rf = (size_t)n->cfg->replication_factor;
  size_t *table = malloc((size_t)n->n_shards * (rf ? rf : 1) * sizeof *table);
  if (!table)
    return;
  size_t per = mq_placement_table(n->n_shards, ids, (size_t)k, rf, table);
  int founded = 0, joined = 0;
  for (int s = 0; s < n->n_shards; s++) {
    size_t first = table[(size_t)s * rf];
    if (!per || !ms[first]->self || n->shards[s].raft)
      continue;
    if (n->shards[s].exists_elsewhere && !MQ_CLUSTER_BUG(2)) {
      joined++;
      continue;
    }
    if (replica_create(n, &n->shards[s], &conf) == 0)
      founded++;
  }
  free(table);
  n->formed = true;
  if (!n->cluster_id)
    n->cluster_id = n->seed_hash | 1;
  mq_info("core",
          "bootstrap: %d of %d seed agents answered; founded %d shards, %d of the shards this "
          "agent would found already exist",
          answered, seeds, founded, joined);
}

static void gossip_to(struct mq_node *n, const char *id, const char *addr, const uint8_t *body,
                      size_t len) {
  struct gossip_ctx *gc = malloc(sizeof *gc);
  if (!gc)
    return;
  gc->n = n;
  snprintf(gc->id, sizeof gc->id, "%s", id);
  snprintf(gc->addr, sizeof gc->addr, "%s", addr);
  if (n->peer->call(n->peer, addr, body, len, n->last_gossip_round_ms + 900, gossip_done, gc))
    free(gc);
}

void members_announce(struct mq_node *n) {
  if (!n->peer)
    return;
  n->last_gossip_round_ms = node_now(n);
  uint8_t body[10] = {CALL_GOSSIP, gossip_flags(n)};
  for (int i = 0; i < 8; i++)
    body[2 + i] = (uint8_t)(n->cluster_id >> (8 * i));
  for (int i = 0; i < n->n_members; i++) {
    struct member *m = &n->members[i];
    if (!m->self && m->addr[0])
      gossip_to(n, m->id, m->addr, body, sizeof body);
  }
  /* addresses discovery reported that no member has yet */
  for (int i = 0; i < n->n_contacts; i++)
    if (!discovered_is_member_addr(n, n->contacts[i].addr))
      gossip_to(n, "", n->contacts[i].addr, body, sizeof body);
}

void members_tick(struct mq_node *n) {
  if (!n->peer)
    return;
  int64_t now = node_now(n);
  if (now - n->last_gossip_round_ms >= (n->formed ? GOSSIP_EVERY_MS : 200))
    members_announce(n);
  if (n->dynamic) {
    if (!n->formed)
      found_by_vote(n);
  } else if (!n->formed || MQ_CLUSTER_BUG(2)) {
    maybe_found(n);
  }
}
