/* Request execution on the core loop: routing a request to its shard,
 * the write path (command -> log -> commit -> apply), reads, fan-out scans
 * and reads across shards, the TTL reaper and Status.
 *
 * Every front end's request passes through here, so the checks that protect
 * a shard (key, topic, partition, sizes, memory budget) live here once. */
#include "cluster/internal.h"
#include "cluster/sharding.h"
#include "util/log.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEFAULT_LIMIT 100
#define MAX_LIMIT 10000
#define EXPIRE_BATCH 256

int64_t mq_now_wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t mq_now_mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------------------ */
/* Copies handed to requests: key and value in one block at ->key. */

static int copy_kv(struct mq_kv *dst, const struct mq_kv *src, bool with_value) {
  size_t vlen = with_value ? src->value_len : 0;
  char *block = malloc(src->key_len + 1 + vlen + 1);
  if (!block)
    return MQ_ENOMEM;
  *dst = *src;
  memcpy(block, src->key, src->key_len);
  block[src->key_len] = '\0';
  uint8_t *v = (uint8_t *)block + src->key_len + 1;
  if (vlen)
    memcpy(v, src->value, vlen);
  v[vlen] = 0;
  dst->key = block;
  dst->value = v;
  dst->value_len = vlen;
  return 0;
}

static int copy_entry(struct mq_entry *dst, const struct mq_entry *src) {
  char *block = malloc(src->key_len + 1 + src->value_len + 1);
  if (!block)
    return MQ_ENOMEM;
  *dst = *src;
  memcpy(block, src->key, src->key_len);
  block[src->key_len] = '\0';
  uint8_t *v = (uint8_t *)block + src->key_len + 1;
  if (src->value_len)
    memcpy(v, src->value, src->value_len);
  v[src->value_len] = 0;
  dst->key = block;
  dst->value = v;
  return 0;
}

/* Counts a request as it completes; runs on the core loop just before
 * done(), while r is still ours. */
static void count_request(struct mq_node *n, const struct mq_req *r) {
  if ((unsigned)r->type >= MQ_REQ_TYPES)
    return;
  atomic_fetch_add_explicit(&n->m_requests[r->type], 1, memory_order_relaxed);
  if (r->status.code)
    atomic_fetch_add_explicit(&n->m_errors[r->type], 1, memory_order_relaxed);
}

static void fail(struct mq_req *r, int code, const char *msg) {
  mq_status_set(&r->status, code, "%s", msg);
}

static struct shard *shard_of_key(struct mq_node *n, const char *key, size_t len) {
  return &n->shards[mq_shard_of_key(key, len, n->n_shards)];
}

static uint64_t bytes_in_use(const struct mq_node *n) {
  uint64_t total = 0;
  for (int i = 0; i < n->n_shards; i++)
    total += mq_sm_bytes(n->shards[i].sm);
  return total;
}

/* RESOURCE_EXHAUSTED when a write of `adding` bytes would pass the budget. */
static int check_budget(struct mq_node *n, size_t adding, struct mq_status *st) {
  uint64_t budget = n->cfg->memory_budget_bytes;
  if (!budget)
    return 0;
  uint64_t used = bytes_in_use(n);
  if (used + adding > budget)
    return mq_status_set(st, MQ_ENOSPACE,
                         "memory budget exhausted: %llu of %llu bytes in use, write needs %zu; "
                         "delete keys or raise --memory-budget",
                         (unsigned long long)used, (unsigned long long)budget, adding);
  return 0;
}

static int check_partition(struct mq_node *n, int32_t p, struct mq_status *st) {
  if (p < -1 || p >= n->n_shards)
    return mq_status_set(st, MQ_EINVAL, "partition %d is out of range: use -1 or 0..%d", p,
                         n->n_shards - 1);
  return 0;
}

/* ------------------------------------------------------------------------ */
/* Write path. */

static void finish_write(struct mq_req *r, struct shard *s, const struct mq_apply_result *res) {
  r->status = res->status;
  r->shard = s->id;
  r->revision = res->revision;
  r->deleted = res->deleted;
  r->out_offset = res->offset;
  if (res->has_previous && !r->status.code) {
    if (copy_kv(&r->kv, &res->previous, true) == 0)
      r->has_kv = true;
  }
}

/* Applies a committed log entry to its shard and completes its request, if
 * this replica has one waiting on it (r may be NULL). */
static void apply_committed(struct mq_node *n, struct shard *s, uint64_t index,
                            const uint8_t *data, size_t len, struct mq_req *r) {
  struct mq_cmd c;
  int rc = mq_cmd_decode(data, len, &c);
  if (rc) {
    /* The entry was encoded by a replica of this version; a decode failure
     * is a bug or memory corruption. Skip it on every replica alike. */
    mq_error("store", "shard %d: log entry %llu does not decode: %s", s->id,
             (unsigned long long)index, mq_strerror(rc));
    if (r) {
      mq_status_set(&r->status, MQ_EINTERNAL, "log entry did not decode");
      count_request(n, r);
      r->done(r);
    }
    return;
  }
  struct mq_apply_result res;
  mq_sm_apply(s->sm, index, &c, &res);
  atomic_store_explicit(&s->pub_keys, mq_sm_key_count(s->sm), memory_order_relaxed);
  atomic_store_explicit(&s->pub_bytes, mq_sm_bytes(s->sm), memory_order_relaxed);
  atomic_store_explicit(&s->pub_applied, index, memory_order_relaxed);
  atomic_store_explicit(&s->pub_revision, mq_sm_revision(s->sm), memory_order_relaxed);
  if (c.type == MQ_CMD_EXPIRE && res.revision)
    atomic_fetch_add_explicit(&n->m_expired, 1, memory_order_relaxed);
  if (res.has_event)
    mq_watch_dispatch(n, &res.event);

  if (r) {
    finish_write(r, s, &res);
    count_request(n, r);
    r->done(r);
  }
}

/* Proposes a command to a shard's group. A single agent is the one voter of
 * every group, so the entry commits as it is appended; replication puts the
 * Raft core between the append and apply_committed(). */
static int propose(struct mq_node *n, struct shard *s, const struct mq_cmd *c,
                   struct mq_req *r) {
  mq_buf_reset(&n->scratch);
  int rc = mq_cmd_encode(c, &n->scratch);
  if (rc || n->scratch.err) {
    if (r) {
      mq_status_set(&r->status, MQ_ENOMEM, "out of memory encoding the command");
      count_request(n, r);
      r->done(r);
    }
    return 1;
  }
  s->last_index++;
  apply_committed(n, s, s->last_index, n->scratch.data, n->scratch.len, r);
  return 1;
}

static int exec_put(struct mq_node *n, struct mq_req *r) {
  if (mq_store_check_key(&n->limits, r->key, r->key_len, &r->status) ||
      mq_store_check_value(&n->limits, r->value_len, &r->status))
    return 0;
  if (r->ttl_ms < 0) {
    fail(r, MQ_EINVAL, "ttl_ms must not be negative");
    return 0;
  }
  if (check_budget(n, r->key_len + r->value_len, &r->status))
    return 0;
  struct mq_cmd c = {
      .type = MQ_CMD_PUT,
      .now_ms = mq_now_wall_ms(),
      .client_id = r->client_id,
      .seq = r->seq,
      .ingest_partition = -1,
      .key = r->key,
      .key_len = r->key_len,
      .value = r->value,
      .value_len = r->value_len,
      .ttl_ms = r->ttl_ms,
      .pre = r->pre,
      .return_previous = r->return_previous,
  };
  return propose(n, shard_of_key(n, r->key, r->key_len), &c, r);
}

static int exec_delete(struct mq_node *n, struct mq_req *r) {
  if (mq_store_check_key(&n->limits, r->key, r->key_len, &r->status))
    return 0;
  struct mq_cmd c = {
      .type = MQ_CMD_DELETE,
      .now_ms = mq_now_wall_ms(),
      .client_id = r->client_id,
      .seq = r->seq,
      .ingest_partition = -1,
      .key = r->key,
      .key_len = r->key_len,
      .pre = r->pre,
  };
  return propose(n, shard_of_key(n, r->key, r->key_len), &c, r);
}

static int exec_produce(struct mq_node *n, struct mq_req *r) {
  if (mq_store_check_topic(&n->limits, r->topic, r->topic_len, &r->status) ||
      check_partition(n, r->partition, &r->status) ||
      mq_store_check_value(&n->limits, r->value_len, &r->status))
    return 0;
  if (r->partition == -1 && r->key_len == 0) {
    fail(r, MQ_EINVAL, "partition -1 routes by entry.key, but entry.key is empty");
    return 0;
  }
  if (r->key_len && mq_store_check_key(&n->limits, r->key, r->key_len, &r->status))
    return 0;
  if (r->timestamp < 0) {
    fail(r, MQ_EINVAL, "entry.timestamp must not be negative");
    return 0;
  }
  if (check_budget(n, r->key_len + r->value_len + r->topic_len, &r->status))
    return 0;
  struct shard *s = r->partition >= 0 ? &n->shards[r->partition]
                                      : shard_of_key(n, r->key, r->key_len);
  struct mq_cmd c = {
      .type = MQ_CMD_PRODUCE,
      .now_ms = mq_now_wall_ms(),
      .client_id = r->client_id,
      .seq = r->seq,
      .ingest_partition = -1,
      .key = r->key,
      .key_len = r->key_len,
      .value = r->value,
      .value_len = r->value_len,
      .topic = r->topic,
      .topic_len = r->topic_len,
      .partition = s->id,
      .timestamp = r->timestamp,
  };
  return propose(n, s, &c, r);
}

/* ------------------------------------------------------------------------ */
/* Reads. On a single agent every read is served by the shard's leader, so
 * LINEARIZABLE and SERIALIZABLE read the same state. */

static int exec_get(struct mq_node *n, struct mq_req *r) {
  if (mq_store_check_key(&n->limits, r->key, r->key_len, &r->status))
    return 0;
  struct shard *s = shard_of_key(n, r->key, r->key_len);
  r->shard = s->id;
  struct mq_kv kv;
  if (mq_sm_get(s->sm, r->key, r->key_len, mq_now_wall_ms(), &kv)) {
    mq_status_set(&r->status, MQ_ENOTFOUND, "key %.*s not found", (int)(r->key_len > 200 ? 200 : r->key_len), r->key);
    return 0;
  }
  if (copy_kv(&r->kv, &kv, true)) {
    fail(r, MQ_ENOMEM, "out of memory copying the value");
    return 0;
  }
  r->has_kv = true;
  return 0;
}

struct scan_acc {
  struct mq_kv *items; /* borrowed from the shards until the loop moves on */
  size_t n, cap;
};

static int scan_collect(void *arg, const struct mq_kv *kv) {
  struct scan_acc *a = arg;
  if (a->n == a->cap) {
    size_t cap = a->cap ? a->cap * 2 : 64;
    struct mq_kv *p = realloc(a->items, cap * sizeof *p);
    if (!p)
      return 1;
    a->items = p;
    a->cap = cap;
  }
  a->items[a->n++] = *kv;
  return 0;
}

static int kv_key_cmp(const void *pa, const void *pb) {
  const struct mq_kv *a = pa, *b = pb;
  size_t m = a->key_len < b->key_len ? a->key_len : b->key_len;
  int c = memcmp(a->key, b->key, m);
  if (c)
    return c;
  return (a->key_len > b->key_len) - (a->key_len < b->key_len);
}

/* The one shard a prefix confines a scan to, or -1: a prefix
 * `user:{id}:...` names a single user, so a single shard. */
static int single_shard_of_prefix(struct mq_node *n, const char *p, size_t len) {
  if (len < 6 || memcmp(p, "user:", 5) != 0)
    return -1;
  if (!memchr(p + 5, ':', len - 5))
    return -1;
  return mq_shard_of_key(p, len, n->n_shards);
}

static int exec_scan(struct mq_node *n, struct mq_req *r) {
  size_t limit = r->limit ? r->limit : DEFAULT_LIMIT;
  if (limit > MAX_LIMIT)
    limit = MAX_LIMIT;
  int only = single_shard_of_prefix(n, r->prefix, r->prefix_len);
  int64_t now = mq_now_wall_ms();
  struct scan_acc acc = {0};
  bool more = false;
  for (int i = 0; i < n->n_shards; i++) {
    if (only >= 0 && i != only)
      continue;
    bool m = false;
    size_t before = acc.n;
    size_t got = mq_sm_scan(n->shards[i].sm, r->prefix, r->prefix_len, r->start_after,
                            r->start_after_len, limit, now, scan_collect, &acc, &m);
    if (got != acc.n - before) {
      free(acc.items);
      fail(r, MQ_ENOMEM, "out of memory collecting scan results");
      return 0;
    }
    more |= m;
  }
  qsort(acc.items, acc.n, sizeof *acc.items, kv_key_cmp);
  size_t take = acc.n < limit ? acc.n : limit;
  if (acc.n > limit)
    more = true;
  r->kvs = calloc(take ? take : 1, sizeof *r->kvs);
  if (!r->kvs) {
    free(acc.items);
    fail(r, MQ_ENOMEM, "out of memory copying scan results");
    return 0;
  }
  for (size_t i = 0; i < take; i++) {
    if (copy_kv(&r->kvs[i], &acc.items[i], !r->keys_only)) {
      free(acc.items);
      fail(r, MQ_ENOMEM, "out of memory copying scan results");
      return 0;
    }
    r->n_kvs++;
  }
  r->more = more;
  free(acc.items);
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

static int exec_read(struct mq_node *n, struct mq_req *r) {
  if (mq_store_check_topic(&n->limits, r->topic, r->topic_len, &r->status) ||
      check_partition(n, r->partition, &r->status))
    return 0;
  if (r->offset < 0) {
    fail(r, MQ_EINVAL, "offset must not be negative");
    return 0;
  }
  if (r->key_len && mq_store_check_key(&n->limits, r->key, r->key_len, &r->status))
    return 0;
  size_t count = r->count ? r->count : DEFAULT_LIMIT;
  if (count > MAX_LIMIT)
    count = MAX_LIMIT;
  struct read_acc acc = {.r = r};
  struct mq_log_bounds b;

  if (r->partition >= 0 || r->key_len) {
    struct shard *s = r->partition >= 0 ? &n->shards[r->partition]
                                        : shard_of_key(n, r->key, r->key_len);
    int got = mq_sm_read(s->sm, r->topic, r->topic_len, r->offset, count, read_collect, &acc,
                         &b, &r->status);
    r->high_watermark = b.high_watermark;
    r->log_start_offset = b.log_start_offset;
    if (got < 0)
      return 0;
    if (acc.err) {
      fail(r, acc.err, "out of memory copying entries");
      return 0;
    }
    r->next_offset = r->n_entries ? r->entries[r->n_entries - 1].offset + 1 : r->offset;
    return 0;
  }

  /* Every partition from `offset`, ordered by (partition, offset), at most
   * `count` in all. A partition whose log starts after `offset` is read from
   * its start; next_offset is one past the last entry returned. */
  int64_t hw_max = 0, start_min = INT64_MAX;
  for (int i = 0; i < n->n_shards && r->n_entries < count; i++) {
    struct mq_status ignore;
    mq_status_clear(&ignore);
    mq_sm_read(n->shards[i].sm, r->topic, r->topic_len, INT64_MAX, 0, NULL, NULL, &b,
               &ignore);
    if (b.high_watermark > hw_max)
      hw_max = b.high_watermark;
    if (b.log_start_offset < start_min)
      start_min = b.log_start_offset;
    if (r->offset >= b.high_watermark)
      continue;
    int64_t from = r->offset < b.log_start_offset ? b.log_start_offset : r->offset;
    int got = mq_sm_read(n->shards[i].sm, r->topic, r->topic_len, from, count - r->n_entries,
                         read_collect, &acc, &b, &r->status);
    if (got < 0)
      return 0;
    if (acc.err) {
      fail(r, acc.err, "out of memory copying entries");
      return 0;
    }
  }
  r->high_watermark = hw_max;
  r->log_start_offset = start_min == INT64_MAX ? 0 : start_min;
  r->next_offset = r->n_entries ? r->entries[r->n_entries - 1].offset + 1 : r->offset;
  return 0;
}

static int exec_status(struct mq_node *n, struct mq_req *r) {
  struct mq_node_status *s = calloc(1, sizeof *s);
  if (!s) {
    fail(r, MQ_ENOMEM, "out of memory");
    return 0;
  }
  s->members = calloc(1, sizeof *s->members);
  s->shards = calloc((size_t)n->n_shards, sizeof *s->shards);
  if (!s->members || !s->shards) {
    mq_node_status_free(s);
    fail(r, MQ_ENOMEM, "out of memory");
    return 0;
  }
  const struct mq_config *cfg = n->cfg;
  snprintf(s->node_id, sizeof s->node_id, "%s", cfg->node_id);
  s->shards_total = n->n_shards;
  s->replication_factor = 1;
  s->n_members = 1;
  snprintf(s->members[0].node_id, sizeof s->members[0].node_id, "%s", cfg->node_id);
  snprintf(s->members[0].address, sizeof s->members[0].address, "%s:%d", cfg->advertise_addr,
           cfg->peer_port);
  snprintf(s->members[0].state, sizeof s->members[0].state, "alive");
  s->n_shards = (size_t)n->n_shards;
  for (int i = 0; i < n->n_shards; i++) {
    struct mq_shard_status *ss = &s->shards[i];
    struct shard *sh = &n->shards[i];
    ss->shard = i;
    snprintf(ss->leader, sizeof ss->leader, "%s", cfg->node_id);
    snprintf(ss->replicas[0], sizeof ss->replicas[0], "%s", cfg->node_id);
    ss->n_replicas = 1;
    snprintf(ss->role, sizeof ss->role, "leader");
    ss->term = sh->term;
    ss->commit_index = sh->last_index;
    ss->applied_index = mq_sm_applied_index(sh->sm);
    ss->keys = mq_sm_key_count(sh->sm);
    ss->bytes = mq_sm_bytes(sh->sm);
    ss->digest = mq_sm_digest(sh->sm);
    ss->revision = mq_sm_revision(sh->sm);
  }
  r->node_status = s;
  return 0;
}

void mq_exec_request(struct mq_node *n, struct mq_req *r) {
  if (r->deadline_ms && mq_now_mono_ms() > r->deadline_ms) {
    fail(r, MQ_ETIMEDOUT, "deadline passed before the request was served");
    count_request(n, r);
    r->done(r);
    return;
  }
  /* 1: handed to propose(), which completes the request (r may already be
   * gone); 0: complete it here. */
  int handed_off = 0;
  switch (r->type) {
  case MQ_REQ_PUT: handed_off = exec_put(n, r); break;
  case MQ_REQ_DELETE: handed_off = exec_delete(n, r); break;
  case MQ_REQ_PRODUCE: handed_off = exec_produce(n, r); break;
  case MQ_REQ_GET: handed_off = exec_get(n, r); break;
  case MQ_REQ_SCAN: handed_off = exec_scan(n, r); break;
  case MQ_REQ_READ: handed_off = exec_read(n, r); break;
  case MQ_REQ_STATUS: handed_off = exec_status(n, r); break;
  default: fail(r, MQ_EINVAL, "unknown request type"); break;
  }
  if (!handed_off) {
    count_request(n, r);
    r->done(r);
  }
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
  int64_t now = mq_now_wall_ms();
  for (int i = 0; i < n->n_shards; i++) {
    struct shard *s = &n->shards[i];
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
      propose(n, s, &c, NULL);
      free(acc.items[k].key);
    }
  }
}
