/* Executing a request against this agent's replica of its shard: request
 * validation, the write path (request -> command -> replica_propose), reads
 * served from the local state machine, Status, and the TTL reaper.
 *
 * Every front end's request passes through here, so the checks that protect
 * a shard (key, topic, partition, sizes, memory budget) live here once. */
#include "cluster/internal.h"
#include "cluster/placement.h"
#include "cluster/sharding.h"
#include "util/log.h"

#include <stdlib.h>
#include <string.h>

#define DEFAULT_LIMIT 100
#define MAX_LIMIT 10000
#define EXPIRE_BATCH 256

/* ------------------------------------------------------------------------ */
/* Copies handed to requests: key and value in one block at ->key. */

static int copy_kv(struct mq_kv *dst, const struct mq_kv *src, bool with_value) {
  *dst = *src;
  dst->value_len = with_value ? src->value_len : 0;
  return req_copy_pair(src->key, src->key_len, src->value, dst->value_len, &dst->key, &dst->value);
}

static int copy_entry(struct mq_entry *dst, const struct mq_entry *src) {
  *dst = *src;
  return req_copy_pair(src->key, src->key_len, src->value, src->value_len, &dst->key, &dst->value);
}

static int fail(struct mq_req *r, int code, const char *msg) {
  return mq_status_set(&r->status, code, "%s", msg);
}

bool exec_is_write(const struct mq_req *r) {
  return r->type == MQ_REQ_PUT || r->type == MQ_REQ_DELETE || r->type == MQ_REQ_PRODUCE ||
         r->type == MQ_REQ_INGEST_PROBE;
}

/* ------------------------------------------------------------------------ */
/* Validation: the one place a request's inputs are checked, whichever front
 * end it came through (api/, feed/, ingest/). A failure is INVALID_ARGUMENT
 * naming the field as the public API calls it (DESIGN.md section 3). */

static int named(struct mq_status *st, const char *field, int rc) {
  if (rc == 0)
    return 0;
  if (strncmp(st->msg, field, strlen(field)) == 0)
    return st->code = MQ_EINVAL; /* the message already names the field */
  char msg[MQ_STATUS_MSG_MAX];
  snprintf(msg, sizeof msg, "%s: %.200s", field, st->msg);
  return mq_status_set(st, MQ_EINVAL, "%s", msg);
}

static int check_key(struct mq_node *n, struct mq_status *st, const char *field, const char *k,
                     size_t len) {
  return named(st, field, mq_store_check_key(&n->limits, k, len, st));
}

static int check_value(struct mq_node *n, struct mq_status *st, const char *field, size_t len) {
  return named(st, field, mq_store_check_value(&n->limits, len, st));
}

static int check_topic(struct mq_node *n, struct mq_status *st, const char *t, size_t len) {
  return named(st, "topic", mq_store_check_topic(&n->limits, t, len, st));
}

static int check_partition(struct mq_node *n, int32_t p, struct mq_status *st) {
  if (p < -1 || p >= n->n_shards)
    return mq_status_set(st, MQ_EINVAL, "partition %d is out of range [-1, %d)", p, n->n_shards);
  return 0;
}

static int check_precondition(struct mq_node *n, const struct mq_precond *p, struct mq_status *st) {
  switch (p->type) {
  case MQ_PRE_VALUE:
    return check_value(n, st, "precondition.value", p->value_len);
  case MQ_PRE_VERSION:
  case MQ_PRE_MOD_REVISION:
    if (p->num < 0)
      return mq_status_set(st, MQ_EINVAL, "precondition.%s must not be negative (got %lld)",
                           p->type == MQ_PRE_VERSION ? "version" : "mod_revision",
                           (long long)p->num);
    return 0;
  default:
    return 0;
  }
}

static int check_ingest(struct mq_node *n, struct mq_req *r) {
  if (r->ingest_source_len == 0)
    return r->type == MQ_REQ_INGEST_PROBE ? fail(r, MQ_EINVAL, "ingest source is empty") : 0;
  if (check_topic(n, &r->status, r->ingest_source, r->ingest_source_len))
    return r->status.code;
  if (r->ingest_partition < 0)
    return fail(r, MQ_EINVAL, "ingest partition must not be negative");
  if (r->type != MQ_REQ_INGEST_PROBE && (r->ingest_prev < -1 || r->ingest_prev >= r->ingest_offset))
    return fail(r, MQ_EINVAL, "ingest prev offset must be in [-1, offset)");
  return 0;
}

int exec_validate(struct mq_node *n, struct mq_req *r) {
  struct mq_status *st = &r->status;
  if (check_ingest(n, r))
    return st->code;
  /* Set by the node on its sub-requests, and carried by forwarded ones:
   * a forwarded request naming a shard this cluster lacks is refused. */
  if (r->p_shard1 < 0 || r->p_shard1 > n->n_shards)
    return mq_status_set(st, MQ_EINVAL, "shard %d out of range: the cluster has shards 0-%d",
                         (int)r->p_shard1 - 1, n->n_shards - 1);
  switch (r->type) {
  case MQ_REQ_PUT:
    if (check_key(n, st, "key", r->key, r->key_len) || check_value(n, st, "value", r->value_len) ||
        check_precondition(n, &r->pre, st))
      return st->code;
    if (r->ttl_ms < 0)
      return fail(r, MQ_EINVAL, "ttl_ms must not be negative");
    return 0;
  case MQ_REQ_GET:
    return check_key(n, st, "key", r->key, r->key_len);
  case MQ_REQ_DELETE:
    if (check_key(n, st, "key", r->key, r->key_len) || check_precondition(n, &r->pre, st))
      return st->code;
    return 0;
  case MQ_REQ_SCAN:
    if ((r->prefix_len && check_key(n, st, "prefix", r->prefix, r->prefix_len)) ||
        (r->start_after_len && check_key(n, st, "start_after", r->start_after, r->start_after_len)))
      return st->code;
    return 0;
  case MQ_REQ_PRODUCE:
    if (check_topic(n, st, r->topic, r->topic_len) || check_partition(n, r->partition, st) ||
        check_value(n, st, "entry.value", r->value_len))
      return st->code;
    if (r->partition == -1 && r->key_len == 0)
      return fail(r, MQ_EINVAL, "partition -1 routes by entry.key, but entry.key is empty");
    if (r->key_len && check_key(n, st, "entry.key", r->key, r->key_len))
      return st->code;
    if (r->timestamp < 0)
      return fail(r, MQ_EINVAL, "entry.timestamp must not be negative");
    return 0;
  case MQ_REQ_READ:
    if (check_topic(n, st, r->topic, r->topic_len) || check_partition(n, r->partition, st))
      return st->code;
    if (r->offset < 0)
      return fail(r, MQ_EINVAL, "offset must not be negative");
    if (r->key_len && check_key(n, st, "key", r->key, r->key_len))
      return st->code;
    return 0;
  case MQ_REQ_STATUS:
    return 0;
  case MQ_REQ_INGEST_PROBE:
  case MQ_REQ_RECOVER:
    if (r->partition < 0 || r->partition >= n->n_shards)
      return mq_status_set(&r->status, MQ_EINVAL, "shard %d is out of range [0, %d)", r->partition,
                           n->n_shards);
    return 0;
  }
  return fail(r, MQ_EINVAL, "unknown request type");
}

/* The shard a single-shard request belongs to, or -1 for one that spans
 * every shard (a wide Scan, a Read of every partition). A prefix
 * `user:{id}:...` names a single user, so a single shard. */
int32_t exec_shard_of(struct mq_node *n, const struct mq_req *r) {
  if (r->p_shard1)
    return r->p_shard1 - 1;
  switch (r->type) {
  case MQ_REQ_PUT:
  case MQ_REQ_GET:
  case MQ_REQ_DELETE:
    return mq_shard_of_key(r->key, r->key_len, n->n_shards);
  case MQ_REQ_PRODUCE:
  case MQ_REQ_READ:
    if (r->partition >= 0)
      return r->partition;
    if (r->key_len)
      return mq_shard_of_key(r->key, r->key_len, n->n_shards);
    return r->type == MQ_REQ_PRODUCE ? 0 : -1;
  case MQ_REQ_SCAN:
    if (r->prefix_len >= 6 && memcmp(r->prefix, "user:", 5) == 0 &&
        memchr(r->prefix + 5, ':', r->prefix_len - 5))
      return mq_shard_of_key(r->prefix, r->prefix_len, n->n_shards);
    return -1;
  case MQ_REQ_INGEST_PROBE:
    return r->partition;
  case MQ_REQ_STATUS:
  case MQ_REQ_RECOVER:
    return -1;
  }
  return -1;
}

/* ------------------------------------------------------------------------ */
/* Writes */

static uint64_t data_bytes(const struct mq_node *n) {
  uint64_t total = 0;
  for (int i = 0; i < n->n_shards; i++)
    if (n->shards[i].sm) {
      uint64_t b = mq_sm_budget_bytes(n->shards[i].sm);
      uint64_t base = n->shards[i].sm_baseline;
      total += b > base ? b - base : 0;
    }
  return total;
}

/* RESOURCE_EXHAUSTED when a write of `adding` bytes would pass the budget.
 * The budget counts stored data (mq_sm_budget_bytes: not the watch history,
 * which --watch-history-bytes bounds), not the fixed overhead of empty
 * shards. */
static int check_budget(struct mq_node *n, size_t adding, struct mq_status *st) {
  uint64_t budget = n->cfg->memory_budget_bytes;
  if (!budget)
    return 0;
  uint64_t used = data_bytes(n);
  if (used + adding > budget)
    return mq_status_set(st, MQ_ENOSPACE,
                         "memory budget exhausted: %llu of %llu bytes in use, write needs %zu; "
                         "delete keys or raise --memory-budget",
                         (unsigned long long)used, (unsigned long long)budget, adding);
  return 0;
}

static void write_cmd(struct mq_node *n, struct shard *s, struct mq_req *r) {
  struct mq_cmd c = {
      .now_ms = node_wall(n),
      .client_id = r->client_id,
      .seq = r->seq,
      .ingest_source = r->ingest_source,
      .ingest_source_len = r->ingest_source_len,
      .ingest_partition = r->ingest_source_len ? r->ingest_partition : -1,
      .ingest_offset = r->ingest_offset,
      .ingest_prev = r->ingest_prev,
      .key = r->key,
      .key_len = r->key_len,
      .pre = r->pre,
  };
  switch (r->type) {
  case MQ_REQ_INGEST_PROBE:
    /* Through the log, not a read: the answer then follows every record
     * committed before it, whoever proposed them. */
    c.type = MQ_CMD_NOOP;
    c.ingest_offset = 0;
    c.ingest_prev = -1;
    memset(&c.pre, 0, sizeof c.pre);
    break;
  case MQ_REQ_PUT:
    c.type = MQ_CMD_PUT;
    c.value = r->value;
    c.value_len = r->value_len;
    c.ttl_ms = r->ttl_ms;
    c.return_previous = r->return_previous;
    break;
  case MQ_REQ_DELETE:
    c.type = MQ_CMD_DELETE;
    break;
  default:
    c.type = MQ_CMD_PRODUCE;
    c.value = r->value;
    c.value_len = r->value_len;
    c.topic = r->topic;
    c.topic_len = r->topic_len;
    c.partition = s->id;
    c.timestamp = r->timestamp;
    memset(&c.pre, 0, sizeof c.pre);
    break;
  }
  replica_propose(n, s, &c, r);
}

/* ------------------------------------------------------------------------ */
/* Reads */

static int exec_get(struct mq_node *n, struct shard *s, struct mq_req *r) {
  r->shard = s->id;
  struct mq_kv kv;
  if (mq_sm_get(s->sm, r->key, r->key_len, node_wall(n), &kv))
    return mq_status_set(&r->status, MQ_ENOTFOUND, "key %.*s not found",
                         (int)(r->key_len > 200 ? 200 : r->key_len), r->key);
  if (copy_kv(&r->kv, &kv, true))
    return fail(r, MQ_ENOMEM, "out of memory copying the value");
  r->has_kv = true;
  return 0;
}

struct scan_acc {
  struct mq_req *r;
  size_t cap;
  int err;
};

static int scan_collect(void *arg, const struct mq_kv *kv) {
  struct scan_acc *a = arg;
  struct mq_req *r = a->r;
  if (r->n_kvs == a->cap) {
    size_t cap = a->cap ? a->cap * 2 : 16;
    struct mq_kv *p = realloc(r->kvs, cap * sizeof *p);
    if (!p) {
      a->err = MQ_ENOMEM;
      return 1;
    }
    r->kvs = p;
    a->cap = cap;
  }
  if (copy_kv(&r->kvs[r->n_kvs], kv, !r->keys_only)) {
    a->err = MQ_ENOMEM;
    return 1;
  }
  r->n_kvs++;
  return 0;
}

static int exec_scan(struct mq_node *n, struct shard *s, struct mq_req *r) {
  size_t limit = r->limit ? r->limit : DEFAULT_LIMIT;
  if (limit > MAX_LIMIT)
    limit = MAX_LIMIT;
  struct scan_acc acc = {.r = r};
  bool more = false;
  mq_sm_scan(s->sm, r->prefix, r->prefix_len, r->start_after, r->start_after_len, limit,
             node_wall(n), scan_collect, &acc, &more);
  if (acc.err)
    return fail(r, acc.err, "out of memory collecting scan results");
  r->more = more;
  return 0;
}

struct read_acc {
  struct mq_req *r;
  size_t cap;
  int err;
};

static int read_collect(void *arg, const struct mq_entry *e) {
  struct read_acc *a = arg;
  struct mq_req *r = a->r;
  if (r->n_entries == a->cap) {
    size_t cap = a->cap ? a->cap * 2 : 16;
    struct mq_entry *p = realloc(r->entries, cap * sizeof *p);
    if (!p) {
      a->err = MQ_ENOMEM;
      return 1;
    }
    r->entries = p;
    a->cap = cap;
  }
  if (copy_entry(&r->entries[r->n_entries], e)) {
    a->err = MQ_ENOMEM;
    return 1;
  }
  r->n_entries++;
  return 0;
}

/* One partition. A sub-request of a read of every partition (pinned, no
 * key, partition -1) starts at the log start when `offset` is below it and
 * returns nothing when `offset` is past the end. */
static int exec_read(struct shard *s, struct mq_req *r) {
  size_t count = r->count ? r->count : DEFAULT_LIMIT;
  if (count > MAX_LIMIT)
    count = MAX_LIMIT;
  struct read_acc acc = {.r = r};
  struct mq_log_bounds b;
  int64_t from = r->offset;
  bool every_partition = r->p_shard1 && r->partition == -1 && r->key_len == 0;
  if (every_partition) {
    struct mq_status ignore;
    mq_sm_read(s->sm, r->topic, r->topic_len, INT64_MAX, 0, NULL, NULL, &b, &ignore);
    r->high_watermark = b.high_watermark;
    r->log_start_offset = b.log_start_offset;
    if (from >= b.high_watermark)
      return 0;
    if (from < b.log_start_offset)
      from = b.log_start_offset;
  }
  int got =
      mq_sm_read(s->sm, r->topic, r->topic_len, from, count, read_collect, &acc, &b, &r->status);
  r->high_watermark = b.high_watermark;
  r->log_start_offset = b.log_start_offset;
  if (got < 0)
    return r->status.code;
  if (acc.err)
    return fail(r, acc.err, "out of memory copying entries");
  r->next_offset = r->n_entries ? r->entries[r->n_entries - 1].offset + 1 : r->offset;
  return 0;
}

void exec_read_now(struct mq_node *n, struct shard *s, struct mq_req *r) {
  switch (r->type) {
  case MQ_REQ_GET:
    exec_get(n, s, r);
    break;
  case MQ_REQ_SCAN:
    exec_scan(n, s, r);
    break;
  case MQ_REQ_READ:
    exec_read(s, r);
    break;
  default:
    fail(r, MQ_EINTERNAL, "not a read");
    break;
  }
  mq_req_complete(n, r);
}

/* Runs r at this agent's replica of s, which leads s (or r may read a
 * stale replica). Completes r now or when its entry or read index applies. */
int exec_local(struct mq_node *n, struct shard *s, struct mq_req *r) {
  if (exec_is_write(r)) {
    if (r->type != MQ_REQ_DELETE &&
        check_budget(n, r->key_len + r->value_len + r->topic_len, &r->status)) {
      mq_req_complete(n, r);
      return 0;
    }
    write_cmd(n, s, r);
    return 0;
  }
  if (r->serializable)
    exec_read_now(n, s, r);
  else
    replica_read(n, s, r);
  return 0;
}

/* ------------------------------------------------------------------------ */
/* Status */

static void member_name(struct mq_node *n, struct mq_raft_member m, char *out, size_t cap) {
  struct member *mb = member_by_key(n, m.node);
  bool old = members_is_old(n, m);
  snprintf(out, cap, "%.100s%s", mb ? mb->id : "?", old ? "(old incarnation)" : "");
}

void exec_status(struct mq_node *n, struct mq_req *r) {
  struct mq_node_status *st = calloc(1, sizeof *st);
  if (!st) {
    fail(r, MQ_ENOMEM, "out of memory");
    return;
  }
  st->members = calloc((size_t)n->n_members, sizeof *st->members);
  st->shards = calloc((size_t)n->n_shards, sizeof *st->shards);
  if (!st->members || !st->shards) {
    mq_node_status_free(st);
    fail(r, MQ_ENOMEM, "out of memory");
    return;
  }
  const struct mq_config *cfg = n->cfg;
  snprintf(st->node_id, sizeof st->node_id, "%s", cfg->node_id);
  st->shards_total = n->n_shards;
  st->replication_factor = cfg->replication_factor;
  st->discovery = n->disc_current;
  st->cluster_id = n->cluster_id;
  st->moves_in_progress =
      (int32_t)atomic_load_explicit(&n->m_moves_in_progress, memory_order_relaxed);
  for (int i = 0; i < MQ_DISCOVERY_SOURCES; i++) {
    const struct disc_state *d = &n->disc[i];
    struct mq_discovery_status *ds = &st->sources[i];
    ds->configured = i == MQ_DISCOVERY_STATIC ? cfg->n_peers > 0
                     : i == MQ_DISCOVERY_DNS  ? cfg->dns_name[0] != '\0'
                                              : cfg->nacos_addr[0] != '\0';
    ds->answering = d->ok;
    ds->last_success_unix_ms = d->last_ok_wall_ms;
    ds->errors = d->errors;
    ds->found = (int32_t)d->found;
    snprintf(ds->last_error, sizeof ds->last_error, "%s", d->why);
  }
  st->n_members = (size_t)n->n_members;
  for (int i = 0; i < n->n_members; i++) {
    struct member *m = &n->members[i];
    struct mq_member_status *ms = &st->members[i];
    snprintf(ms->node_id, sizeof ms->node_id, "%s", m->id);
    snprintf(ms->address, sizeof ms->address, "%s", m->addr);
    bool leaving = m->self ? atomic_load(&n->draining) : m->leaving;
    snprintf(ms->state, sizeof ms->state, "%s",
             !m->self && !m->up ? "dead"
             : leaving          ? "leaving"
                                : "alive");
  }
  st->n_shards = (size_t)n->n_shards;
  for (int i = 0; i < n->n_shards; i++) {
    struct mq_shard_status *ss = &st->shards[i];
    struct shard *s = &n->shards[i];
    ss->shard = i;
    struct member *want[8];
    size_t k = members_placement(n, i, want, 8);
    for (size_t j = 0; j < k; j++)
      snprintf(ss->placement[j], sizeof ss->placement[j], "%s", want[j]->id);
    ss->n_placement = (int)k;
    if (!s->raft) {
      snprintf(ss->health, sizeof ss->health, "not held here");
      snprintf(ss->role, sizeof ss->role, "none");
      snprintf(ss->leader, sizeof ss->leader, "%s", s->hint_leader);
      ss->term = s->hint_term;
      for (size_t j = 0; j < k; j++)
        snprintf(ss->replicas[j], sizeof ss->replicas[j], "%s", want[j]->id);
      ss->n_replicas = (int)k;
      continue;
    }
    ss->healthy = health_of(n, s, ss->health, sizeof ss->health) == 0;
    struct mq_raft_status rs;
    mq_raft_status(s->raft, &rs);
    static const char *roles[] = {"follower", "candidate", "candidate", "leader"};
    bool learner = false;
    int self_at = mq_raft_conf_find(&rs.conf, n->self);
    if (self_at >= 0 && rs.conf.m[self_at].role == MQ_RAFT_LEARNER)
      learner = true;
    snprintf(ss->role, sizeof ss->role, "%s",
             learner ? "learner" : roles[rs.role < 4 ? rs.role : 0]);
    if (rs.leader.node)
      member_name(n, rs.leader, ss->leader, sizeof ss->leader);
    for (uint32_t j = 0; j < rs.conf.n && j < 8; j++) {
      member_name(n, rs.conf.m[j].id, ss->replicas[j], sizeof ss->replicas[j]);
      if (rs.conf.m[j].role == MQ_RAFT_LEARNER)
        strncat(ss->replicas[j], " (learner)",
                sizeof ss->replicas[j] - strlen(ss->replicas[j]) - 1);
    }
    ss->n_replicas = (int)(rs.conf.n < 8 ? rs.conf.n : 8);
    ss->term = rs.term;
    ss->commit_index = rs.commit;
    ss->applied_index = s->applied;
    ss->keys = mq_sm_key_count(s->sm);
    ss->bytes = mq_sm_bytes(s->sm);
    for (int j = 0; j < MQ_MEM_STRUCTURES; j++)
      ss->mem[j] = atomic_load_explicit(&s->pub_mem[j], memory_order_relaxed);
    ss->digest = mq_sm_digest(s->sm);
    ss->revision = mq_sm_revision(s->sm);
  }
  r->node_status = st;
}

/* ------------------------------------------------------------------------ */
/* TTL reaper: expiry is a mutation with its own revision (DESIGN.md
 * section 2), so the shard leader proposes an EXPIRE command for each key
 * whose deadline passed. The command names the mod_revision it expires, so
 * a key re-put in the meantime is left alone. */

struct expired_key {
  char *key;
  size_t key_len;
  int64_t mod_revision;
};

struct expire_acc {
  struct expired_key items[EXPIRE_BATCH];
  size_t n;
};

static int expire_collect(void *arg, const struct mq_kv *kv) {
  struct expire_acc *a = arg;
  if (a->n == EXPIRE_BATCH)
    return 1;
  char *k = malloc(kv->key_len ? kv->key_len : 1);
  if (!k)
    return 1;
  memcpy(k, kv->key, kv->key_len);
  a->items[a->n++] = (struct expired_key){k, kv->key_len, kv->mod_revision};
  return 0;
}

void mq_exec_expire_sweep(struct mq_node *n) {
  int64_t now = node_wall(n);
  for (int i = 0; i < n->n_shards; i++) {
    struct shard *s = &n->shards[i];
    if (!replica_is_leader(s))
      continue;
    int64_t next = mq_sm_next_deadline(s->sm);
    if (!next || next > now)
      continue;
    struct expire_acc acc;
    acc.n = 0;
    mq_sm_expired(s->sm, now, EXPIRE_BATCH, expire_collect, &acc);
    for (size_t k = 0; k < acc.n; k++) {
      struct mq_cmd c = {
          .type = MQ_CMD_EXPIRE,
          .now_ms = now,
          .ingest_partition = -1,
          .key = acc.items[k].key,
          .key_len = acc.items[k].key_len,
          .expect_mod_revision = acc.items[k].mod_revision,
      };
      replica_propose(n, s, &c, NULL);
      free(acc.items[k].key);
    }
  }
}
