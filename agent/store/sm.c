/* The shard state machine: applying commands, and the reads.
 * Snapshots live in snapshot.c, the digest in digest.c. */
#include "store/sm_internal.h"

#include "store/fmt.h"

#include <assert.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* ---- lifecycle ---------------------------------------------------------- */

int mq_sm_state_init(struct mq_sm_state *s, const struct mq_store_limits *l) {
  memset(s, 0, sizeof *s);
  if (mq_kvmap_init(&s->kv))
    return MQ_ENOMEM;
  if (mq_dedup_init(&s->dedup, l->dedup_clients)) {
    mq_kvmap_close(&s->kv);
    return MQ_ENOMEM;
  }
  mq_topics_init(&s->topics);
  mq_hist_init(&s->hist, l->history_events, l->history_bytes);
  mq_ingestpos_init(&s->ingest);
  return 0;
}

void mq_sm_state_close(struct mq_sm_state *s) {
  mq_kvmap_close(&s->kv);
  mq_topics_close(&s->topics);
  mq_hist_close(&s->hist);
  mq_dedup_close(&s->dedup);
  mq_ingestpos_close(&s->ingest);
}

int mq_sm_new(struct mq_sm **out, int32_t shard, const struct mq_store_limits *limits) {
  struct mq_sm *sm = calloc(1, sizeof *sm);
  if (!sm)
    return MQ_ENOMEM;
  sm->shard = shard;
  sm->limits = *limits;
  if (mq_sm_state_init(&sm->s, limits)) {
    free(sm);
    return MQ_ENOMEM;
  }
  *out = sm;
  return 0;
}

void mq_sm_release_borrowed(struct mq_sm *sm) {
  mq_kvrec_free(sm->dead);
  sm->dead = NULL;
  free(sm->old_value);
  sm->old_value = NULL;
}

void mq_sm_free(struct mq_sm *sm) {
  if (!sm)
    return;
  mq_sm_release_borrowed(sm);
  mq_sm_state_close(&sm->s);
  free(sm);
}

uint64_t mq_sm_applied_index(const struct mq_sm *sm) { return sm->s.applied_index; }
int64_t mq_sm_revision(const struct mq_sm *sm) { return sm->s.revision; }
int32_t mq_sm_shard(const struct mq_sm *sm) { return sm->shard; }
uint64_t mq_sm_key_count(const struct mq_sm *sm) { return sm->s.kv.count; }

void mq_sm_memory(const struct mq_sm *sm, struct mq_sm_memory *m) {
  const struct mq_sm_state *s = &sm->s;
  m->kv_records = s->kv.bytes;
  m->kv_index = mq_kvmap_index_bytes(&s->kv);
  m->watch_history = s->hist.mem;
  m->request_ids = s->dedup.mem;
  m->topic_logs = s->topics.mem + s->topics.cap * sizeof(struct mq_topic *) +
                  s->ingest.cap * sizeof(struct mq_ingestpos);
}

uint64_t mq_sm_bytes(const struct mq_sm *sm) {
  struct mq_sm_memory m;
  mq_sm_memory(sm, &m);
  return sizeof *sm + m.kv_records + m.kv_index + m.watch_history + m.request_ids + m.topic_logs;
}

uint64_t mq_sm_budget_bytes(const struct mq_sm *sm) {
  struct mq_sm_memory m;
  mq_sm_memory(sm, &m);
  return sizeof *sm + m.kv_records + m.kv_index + m.request_ids + m.topic_logs;
}

/* ---- apply: KV ---------------------------------------------------------- */

/* Checks a precondition against the key's live record (NULL: absent). */
static int check_precond(const struct mq_precond *p, const char *key, size_t key_len,
                         const struct mq_kvrec *r, struct mq_status *st) {
  char k[80];
  switch (p->type) {
  case MQ_PRE_NONE:
    return 0;
  case MQ_PRE_ABSENT:
    if (r)
      return mq_status_set(st, MQ_EPRECOND, "key %s exists (version %" PRId64 ")",
                           mq_fmt_key(k, sizeof k, key, key_len), r->version);
    return 0;
  case MQ_PRE_VERSION:
  case MQ_PRE_MOD_REVISION: {
    const char *what = p->type == MQ_PRE_VERSION ? "version" : "mod_revision";
    if (!r)
      return mq_status_set(st, MQ_EPRECOND, "key %s does not exist (expected %s %" PRId64 ")",
                           mq_fmt_key(k, sizeof k, key, key_len), what, p->num);
    int64_t have = p->type == MQ_PRE_VERSION ? r->version : r->mod_revision;
    if (have != p->num)
      return mq_status_set(st, MQ_EPRECOND, "key %s: %s is %" PRId64 ", expected %" PRId64,
                           mq_fmt_key(k, sizeof k, key, key_len), what, have, p->num);
    return 0;
  }
  case MQ_PRE_VALUE:
    if (!r)
      return mq_status_set(st, MQ_EPRECOND, "key %s does not exist (expected a value of %zu bytes)",
                           mq_fmt_key(k, sizeof k, key, key_len), p->value_len);
    if (r->value_len != p->value_len ||
        (p->value_len && memcmp(r->value, p->value, p->value_len) != 0))
      return mq_status_set(st, MQ_EPRECOND,
                           "key %s: value differs from the expected value "
                           "(%zu bytes stored, %zu expected)",
                           mq_fmt_key(k, sizeof k, key, key_len), r->value_len, p->value_len);
    return 0;
  }
  return mq_status_set(st, MQ_EINVAL, "unknown precondition type %d", (int)p->type);
}

static void set_event_kv(struct mq_sm *sm, struct mq_apply_result *res, enum mq_event_type type,
                         const struct mq_kvrec *r) {
  res->has_event = true;
  res->event.type = type;
  res->event.shard = sm->shard;
  res->event.revision = res->revision;
  mq_kvrec_view(r, sm->shard, &res->event.kv);
}

static void apply_put(struct mq_sm *sm, const struct mq_cmd *c, struct mq_apply_result *res) {
  struct mq_status *st = &res->status;
  struct mq_sm_state *s = &sm->s;
  if (mq_store_check_key(&sm->limits, c->key, c->key_len, st) ||
      mq_store_check_value(&sm->limits, c->value_len, st))
    return;
  int64_t expires_at = 0;
  if (c->ttl_ms < 0) {
    mq_status_set(st, MQ_EINVAL, "ttl_ms is %" PRId64 ", it must be 0 (none) or positive",
                  c->ttl_ms);
    return;
  }
  if (c->ttl_ms > 0) {
    if (c->now_ms > INT64_MAX - c->ttl_ms) {
      mq_status_set(st, MQ_EINVAL, "ttl_ms %" PRId64 " is too large", c->ttl_ms);
      return;
    }
    expires_at = c->now_ms + c->ttl_ms;
  }

  uint64_t h = mq_kvmap_hash(c->key, c->key_len);
  struct mq_kvrec *r = mq_kvmap_find(&s->kv, c->key, c->key_len, h);
  bool live = r && mq_kvrec_live(r, c->now_ms);
  if (check_precond(&c->pre, c->key, c->key_len, live ? r : NULL, st))
    return;

  uint8_t *val = NULL;
  if (c->value_len) {
    val = malloc(c->value_len);
    if (!val) {
      mq_status_set(st, MQ_ENOMEM, "out of memory storing a value of %zu bytes", c->value_len);
      return;
    }
    memcpy(val, c->value, c->value_len);
  }
  bool created = false;
  if (!r) {
    if (mq_kvmap_insert(&s->kv, c->key, c->key_len, h, &r)) {
      free(val);
      mq_status_set(st, MQ_ENOMEM, "out of memory storing a key");
      return;
    }
    created = true;
  }
  if (mq_kvmap_set_expiry(&s->kv, r, expires_at)) {
    if (created) {
      mq_kvmap_unlink(&s->kv, r);
      mq_kvrec_free(r);
    }
    free(val);
    mq_status_set(st, MQ_ENOMEM, "out of memory indexing a TTL");
    return;
  }

  res->revision = ++s->revision;
  if (live && c->return_previous) {
    res->has_previous = true;
    mq_kvrec_view(r, sm->shard, &res->previous);
  }
  sm->old_value = mq_kvmap_swap_value(&s->kv, r, val, c->value_len);
  if (live) {
    r->version++;
  } else {
    /* new, or replacing a key whose TTL passed: a new life of the key */
    r->create_revision = res->revision;
    r->version = 1;
  }
  r->mod_revision = res->revision;
  set_event_kv(sm, res, MQ_EV_PUT, r);
}

/* Removes r as the mutation of this apply; the event borrows the removed
 * record, which lives until the next apply. */
static void remove_key(struct mq_sm *sm, struct mq_kvrec *r, enum mq_event_type type,
                       struct mq_apply_result *res) {
  res->revision = ++sm->s.revision;
  mq_kvmap_unlink(&sm->s.kv, r);
  sm->dead = r;
  set_event_kv(sm, res, type, r);
}

static void apply_delete(struct mq_sm *sm, const struct mq_cmd *c, struct mq_apply_result *res) {
  if (mq_store_check_key(&sm->limits, c->key, c->key_len, &res->status))
    return;
  struct mq_kvrec *r =
      mq_kvmap_find(&sm->s.kv, c->key, c->key_len, mq_kvmap_hash(c->key, c->key_len));
  bool live = r && mq_kvrec_live(r, c->now_ms);
  if (check_precond(&c->pre, c->key, c->key_len, live ? r : NULL, &res->status))
    return;
  /* A key whose TTL passed is already gone for clients; its EXPIRE command
   * (with its own revision and event) is what removes it. */
  if (!live)
    return;
  remove_key(sm, r, MQ_EV_DELETE, res);
  res->deleted = true;
}

static void apply_expire(struct mq_sm *sm, const struct mq_cmd *c, struct mq_apply_result *res) {
  struct mq_kvrec *r =
      mq_kvmap_find(&sm->s.kv, c->key, c->key_len, mq_kvmap_hash(c->key, c->key_len));
  /* Stale when the key was rewritten or deleted since the reaper saw it,
   * or its deadline moved past the proposer's clock. */
  if (!r || r->mod_revision != c->expect_mod_revision || r->expires_at == 0 ||
      r->expires_at > c->now_ms) {
    res->skipped = true;
    return;
  }
  remove_key(sm, r, MQ_EV_EXPIRE, res);
}

/* ---- apply: topics ------------------------------------------------------ */

static void apply_produce(struct mq_sm *sm, const struct mq_cmd *c, struct mq_apply_result *res) {
  struct mq_status *st = &res->status;
  struct mq_sm_state *s = &sm->s;
  if (mq_store_check_topic(&sm->limits, c->topic, c->topic_len, st))
    return;
  if (c->key_len && mq_store_check_key(&sm->limits, c->key, c->key_len, st))
    return;
  if (mq_store_check_value(&sm->limits, c->value_len, st))
    return;
  if (c->partition != sm->shard) {
    mq_status_set(st, MQ_EINVAL, "partition %" PRId32 " does not match shard %" PRId32,
                  c->partition, sm->shard);
    return;
  }
  int64_t ts = c->timestamp ? c->timestamp : c->now_ms;
  struct mq_topic *t;
  if (mq_topics_get(&s->topics, c->topic, c->topic_len, 0, &t)) {
    mq_status_set(st, MQ_ENOMEM, "out of memory creating a topic");
    return;
  }
  if (mq_topic_append(&s->topics, t, c->key, c->key_len, c->value, c->value_len, ts)) {
    mq_topics_drop_empty(&s->topics, t);
    mq_status_set(st, MQ_ENOMEM, "out of memory appending to a topic");
    return;
  }
  res->revision = ++s->revision;
  res->offset = mq_topic_end(t) - 1;
  res->timestamp = ts;
  mq_topic_retain(&s->topics, t, sm->limits.retention_entries, sm->limits.retention_bytes,
                  sm->limits.retention_ms, c->now_ms);

  const struct mq_logent *e = mq_topic_at(t, res->offset); /* the newest is always kept */
  res->has_event = true;
  res->event.type = MQ_EV_PRODUCE;
  res->event.shard = sm->shard;
  res->event.revision = res->revision;
  res->event.topic = t->name;
  res->event.topic_len = t->name_len;
  res->event.entry =
      (struct mq_entry){mq_logent_key(e), e->key_len,  mq_logent_value(e), e->value_len,
                        e->timestamp,     res->offset, sm->shard};
}

/* ---- apply -------------------------------------------------------------- */

static bool has_ingest(const struct mq_cmd *c) {
  return c->ingest_partition >= 0 && c->ingest_source_len > 0;
}

/* Looks c's request id up (dedup.h). Returns true when c must not be
 * applied, with the answer in res: the first outcome of a retry, or an
 * error for an id the table cannot judge. */
static bool answer_from_table(struct mq_sm *sm, const struct mq_cmd *c,
                              struct mq_apply_result *res) {
  if (c->seq == 0) {
    mq_status_set(&res->status, MQ_EINVAL,
                  "request of client %016" PRIx64 " has seq 0; seqs start at 1", c->client_id);
    return true;
  }
  const struct mq_dedup_outcome *o;
  switch (mq_dedup_check(&sm->s.dedup, c->client_id, c->seq, &o)) {
  case MQ_DEDUP_NEW:
    return false;
  case MQ_DEDUP_TOO_OLD:
    res->duplicate = true;
    mq_status_set(&res->status, MQ_ECOMPACTED,
                  "request id too old to deduplicate; retry as a new request");
    return true;
  case MQ_DEDUP_DUPLICATE:
    break;
  }
  res->duplicate = true;
  res->status.code = o->code;
  if (o->msg)
    mq_status_set(&res->status, o->code, "%s", o->msg);
  res->revision = o->revision;
  res->deleted = o->deleted;
  res->skipped = o->skipped;
  res->offset = o->offset;
  res->timestamp = o->timestamp;
  return true;
}

void mq_sm_apply(struct mq_sm *sm, uint64_t index, const struct mq_cmd *c,
                 struct mq_apply_result *res) {
  memset(res, 0, sizeof *res);
  mq_sm_release_borrowed(sm);
  if (index != 0) {
    assert(index > sm->s.applied_index);
    sm->s.applied_index = index;
  }
  bool ingest = has_ingest(c);
  const struct mq_ingestpos *pos =
      ingest ? mq_ingestpos_find(&sm->s.ingest, c->ingest_source, c->ingest_source_len,
                                 c->ingest_partition)
             : NULL;
  res->ingest_recorded = pos ? pos->offset : -1;
  if (c->type == MQ_CMD_NOOP)
    return; /* with a position: a probe, answered by ingest_recorded */
  bool dedup = c->client_id != 0;
  if (dedup && answer_from_table(sm, c, res))
    return;

  if (ingest && c->ingest_offset <= res->ingest_recorded) {
    res->skipped = true;
  } else if (ingest && c->ingest_prev != res->ingest_recorded) {
    /* A record of this (partition, shard) between the recorded one and
     * this one never arrived: applying this one would make the lost one a
     * "redelivery" skipped forever. The consumer rewinds and resends. */
    mq_status_set(&res->status, MQ_EOUTOFSEQ,
                  "Kafka %.*s/%d offset %lld follows offset %lld, but shard %d holds up to %lld",
                  (int)(c->ingest_source_len > 100 ? 100 : c->ingest_source_len), c->ingest_source,
                  c->ingest_partition, (long long)c->ingest_offset, (long long)c->ingest_prev,
                  sm->shard, (long long)res->ingest_recorded);
  } else {
    switch (c->type) {
    case MQ_CMD_PUT:
      apply_put(sm, c, res);
      break;
    case MQ_CMD_DELETE:
      apply_delete(sm, c, res);
      break;
    case MQ_CMD_EXPIRE:
      apply_expire(sm, c, res);
      break;
    case MQ_CMD_PRODUCE:
      apply_produce(sm, c, res);
      break;
    default:
      mq_status_set(&res->status, MQ_EINVAL, "unknown command type %d", (int)c->type);
      break;
    }
    /* The record was consumed whatever its outcome; a redelivery must not
     * get a second chance at it. */
    if (ingest && mq_ingestpos_set(&sm->s.ingest, c->ingest_source, c->ingest_source_len,
                                   c->ingest_partition, c->ingest_offset) == 0)
      res->ingest_recorded = c->ingest_offset;
  }

  if (res->has_event && res->event.type != MQ_EV_PRODUCE)
    res->event.entry.timestamp = c->now_ms; /* when the change was proposed */
  if (res->has_event)
    (void)mq_hist_push(&sm->s.hist, &res->event); /* on failure it resets: watchers resync */
  if (dedup) {
    struct mq_dedup_outcome o = {
        .seq = c->seq,
        .code = res->status.code,
        .deleted = res->deleted,
        .skipped = res->skipped,
        .revision = res->revision,
        .offset = res->offset,
        .timestamp = res->timestamp,
        .msg = res->status.code ? res->status.msg : NULL,
    };
    (void)mq_dedup_record(&sm->s.dedup, c->client_id, &o);
  }
}

/* ---- reads -------------------------------------------------------------- */

int mq_sm_get(const struct mq_sm *sm, const char *key, size_t key_len, int64_t now_ms,
              struct mq_kv *kv) {
  const struct mq_kvrec *r = mq_kvmap_find(&sm->s.kv, key, key_len, mq_kvmap_hash(key, key_len));
  if (!r || !mq_kvrec_live(r, now_ms))
    return MQ_ENOTFOUND;
  mq_kvrec_view(r, sm->shard, kv);
  return 0;
}

static bool has_prefix(const struct mq_kvrec *r, const char *prefix, size_t len) {
  return r->key_len >= len && (len == 0 || memcmp(mq_kvrec_key(r), prefix, len) == 0);
}

size_t mq_sm_scan(const struct mq_sm *sm, const char *prefix, size_t prefix_len,
                  const char *start_after, size_t start_after_len, size_t limit, int64_t now_ms,
                  mq_sm_kv_fn fn, void *arg, bool *more) {
  const struct mq_kvmap *m = &sm->s.kv;
  struct mq_btiter it;
  if (start_after_len > 0 && mq_kv_keycmp(start_after, start_after_len, prefix, prefix_len) >= 0)
    mq_kvmap_seek(m, start_after, start_after_len, false, &it);
  else if (prefix_len)
    mq_kvmap_seek(m, prefix, prefix_len, true, &it);
  else
    mq_kvmap_first(m, &it);

  size_t passed = 0;
  bool stopped = false;
  *more = false;
  for (const struct mq_kvrec *r; (r = mq_btiter_rec(&it)) && has_prefix(r, prefix, prefix_len);
       mq_btiter_next(&it)) {
    if (!mq_kvrec_live(r, now_ms))
      continue;
    if (stopped || (limit && passed == limit)) {
      *more = true;
      break;
    }
    struct mq_kv kv;
    mq_kvrec_view(r, sm->shard, &kv);
    passed++;
    if (fn(arg, &kv))
      stopped = true;
  }
  return passed;
}

int mq_sm_read(const struct mq_sm *sm, const char *topic, size_t topic_len, int64_t offset,
               size_t count, mq_sm_entry_fn fn, void *arg, struct mq_log_bounds *bounds,
               struct mq_status *st) {
  const struct mq_topic *t = mq_topics_find(&sm->s.topics, topic, topic_len);
  bounds->log_start_offset = t ? t->start : 0;
  bounds->high_watermark = t ? mq_topic_end(t) : 0;
  char name[80];
  if (offset < bounds->log_start_offset)
    return mq_status_set(st, MQ_ERANGE,
                         "offset %" PRId64 " is below the log start %" PRId64
                         " of topic %s partition %" PRId32,
                         offset, bounds->log_start_offset,
                         mq_fmt_key(name, sizeof name, topic, topic_len), sm->shard);
  if (offset > bounds->high_watermark)
    return mq_status_set(st, MQ_ERANGE,
                         "offset %" PRId64 " is beyond the high watermark %" PRId64
                         " of topic %s partition %" PRId32,
                         offset, bounds->high_watermark,
                         mq_fmt_key(name, sizeof name, topic, topic_len), sm->shard);
  if (st)
    mq_status_clear(st);
  int n = 0;
  for (int64_t o = offset; t && o < bounds->high_watermark && (size_t)n < count && n < INT32_MAX;
       o++) {
    const struct mq_logent *e = mq_topic_at(t, o);
    struct mq_entry ent = {mq_logent_key(e), e->key_len, mq_logent_value(e), e->value_len,
                           e->timestamp,     o,          sm->shard};
    n++;
    if (fn(arg, &ent))
      break;
  }
  return n;
}

/* ---- history and expiry ------------------------------------------------- */

int mq_sm_history(const struct mq_sm *sm, int64_t after_revision, mq_sm_event_fn fn, void *arg) {
  const struct mq_hist *h = &sm->s.hist;
  int64_t oldest = sm->s.revision - (int64_t)h->count + 1;
  if (after_revision + 1 < oldest)
    return MQ_ECOMPACTED;
  size_t first = after_revision < oldest ? 0 : (size_t)(after_revision - oldest + 1);
  for (size_t i = first; i < h->count; i++) {
    struct mq_event ev;
    mq_hist_get(h, i, &ev);
    assert(ev.revision > after_revision);
    if (fn(arg, &ev))
      break;
  }
  return 0;
}

struct expired_ctx {
  const struct mq_sm *sm;
  mq_sm_kv_fn fn;
  void *arg;
};

static int expired_one(void *arg, const struct mq_kvrec *r) {
  struct expired_ctx *x = arg;
  struct mq_kv kv;
  mq_kvrec_view(r, x->sm->shard, &kv);
  return x->fn(x->arg, &kv);
}

size_t mq_sm_expired(const struct mq_sm *sm, int64_t now_ms, size_t max, mq_sm_kv_fn fn,
                     void *arg) {
  struct expired_ctx x = {sm, fn, arg};
  return mq_kvmap_expired(&sm->s.kv, now_ms, max, expired_one, &x);
}

int64_t mq_sm_next_deadline(const struct mq_sm *sm) { return mq_kvmap_next_deadline(&sm->s.kv); }
