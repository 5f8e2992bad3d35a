/* Snapshots of a shard state machine: the whole state as bytes, and back.
 *
 * Layout, version 2 (varints LEB128, "s" zigzag; bytes = varint length +
 * bytes):
 *
 *   u32 magic "MQSN" | u8 version | s shard | applied_index | s revision
 *   KV       count, then per key in key order:
 *            bytes key | bytes value | s create_rev | s mod_rev | s version
 *            | s expires_at
 *   topics   count, then per topic in name order: bytes name | s start
 *            | count, then per entry: bytes key | bytes value | s timestamp
 *   ingest   count, then per position in (source, partition) order:
 *            bytes source | s partition | s offset
 *   dedup    count, then per client, least recently used first: id
 *            | max_seq | n, then per outcome of the window (seqs above
 *            max_seq - MQ_DEDUP_WINDOW), in increasing seq order, the last
 *            being max_seq's: seq | s code | u8 flags (1 deleted,
 *            2 skipped) | s revision | s offset | s timestamp | bytes message
 *   history  count, then per event, oldest first: u8 type | s revision
 *            | bytes key | bytes value | s create_rev | s mod_rev | s version
 *            | s expires_at | bytes topic | bytes entry key
 *            | bytes entry value | s timestamp | s offset
 *   u64 FNV-1a 64 of every byte before it
 *
 * Everything is written in an order fixed by the contents, so replicas with
 * the same state write the same bytes. Restore checks the checksum first,
 * then every structural invariant while it builds a fresh state, and swaps
 * it in only when all of it is good. Other versions are refused (version 1
 * held a dedup table with other semantics). */
#include "store/sm_internal.h"

#include "store/codec.h"
#include "store/hash.h"

#include <stdlib.h>
#include <string.h>

#define SNAP_MAGIC 0x4e53514du /* "MQSN" little-endian */
#define SNAP_VERSION 2
#define SNAP_TRAILER 8

/* ---- writing ------------------------------------------------------------ */

static void put_kv_fields(struct mq_buf *b, const struct mq_kv *kv) {
  mq_buf_put_bytes(b, kv->key, kv->key_len);
  mq_buf_put_bytes(b, kv->value, kv->value_len);
  mq_put_svarint(b, kv->create_revision);
  mq_put_svarint(b, kv->mod_revision);
  mq_put_svarint(b, kv->version);
  mq_put_svarint(b, kv->expires_at_ms);
}

static void put_dedup(struct mq_buf *b, const struct mq_dedup *d) {
  mq_buf_put_varint(b, d->count);
  for (const struct mq_dedup_client *c = d->lru_tail; c; c = c->prev) {
    const struct mq_dedup_outcome *win[MQ_DEDUP_WINDOW];
    size_t n = mq_dedup_window(c, win);
    mq_buf_put_varint(b, c->id);
    mq_buf_put_varint(b, c->max_seq);
    mq_buf_put_varint(b, n);
    for (size_t i = 0; i < n; i++) {
      const struct mq_dedup_outcome *o = win[i];
      mq_buf_put_varint(b, o->seq);
      mq_put_svarint(b, o->code);
      mq_buf_put_u8(b, (uint8_t)((o->deleted ? 1 : 0) | (o->skipped ? 2 : 0)));
      mq_put_svarint(b, o->revision);
      mq_put_svarint(b, o->offset);
      mq_put_svarint(b, o->timestamp);
      mq_buf_put_bytes(b, o->msg, o->msg ? strlen(o->msg) : 0);
    }
  }
}

int mq_sm_snapshot(const struct mq_sm *sm, struct mq_buf *out) {
  const struct mq_sm_state *s = &sm->s;
  if (out->err)
    return out->err;
  size_t start = out->len;
  mq_buf_put_u32(out, SNAP_MAGIC);
  mq_buf_put_u8(out, SNAP_VERSION);
  mq_put_svarint(out, sm->shard);
  mq_buf_put_varint(out, s->applied_index);
  mq_put_svarint(out, s->revision);

  mq_buf_put_varint(out, s->kv.count);
  struct mq_btiter it;
  mq_kvmap_first(&s->kv, &it);
  for (const struct mq_kvrec *r; (r = mq_btiter_rec(&it)); mq_btiter_next(&it)) {
    struct mq_kv kv;
    mq_kvrec_view(r, sm->shard, &kv);
    put_kv_fields(out, &kv);
  }

  mq_buf_put_varint(out, s->topics.n);
  for (size_t i = 0; i < s->topics.n; i++) {
    const struct mq_topic *t = s->topics.v[i];
    mq_buf_put_bytes(out, t->name, t->name_len);
    mq_put_svarint(out, t->start);
    mq_buf_put_varint(out, t->count);
    for (int64_t o = t->start; o < mq_topic_end(t); o++) {
      const struct mq_logent *e = mq_topic_at(t, o);
      mq_buf_put_bytes(out, mq_logent_key(e), e->key_len);
      mq_buf_put_bytes(out, mq_logent_value(e), e->value_len);
      mq_put_svarint(out, e->timestamp);
    }
  }

  mq_buf_put_varint(out, s->ingest.n);
  for (size_t i = 0; i < s->ingest.n; i++) {
    const struct mq_ingestpos *p = &s->ingest.v[i];
    mq_buf_put_bytes(out, p->source, p->source_len);
    mq_put_svarint(out, p->partition);
    mq_put_svarint(out, p->offset);
  }

  put_dedup(out, &s->dedup);

  mq_buf_put_varint(out, s->hist.count);
  for (size_t i = 0; i < s->hist.count; i++) {
    struct mq_event ev;
    mq_hist_get(&s->hist, i, &ev);
    mq_buf_put_u8(out, (uint8_t)ev.type);
    mq_put_svarint(out, ev.revision);
    put_kv_fields(out, &ev.kv);
    mq_buf_put_bytes(out, ev.topic, ev.topic_len);
    mq_buf_put_bytes(out, ev.entry.key, ev.entry.key_len);
    mq_buf_put_bytes(out, ev.entry.value, ev.entry.value_len);
    mq_put_svarint(out, ev.entry.timestamp);
    mq_put_svarint(out, ev.entry.offset);
  }

  if (!out->err)
    mq_buf_put_u64(out, mq_fnv64(MQ_FNV64_INIT, out->data + start, out->len - start));
  if (out->err) {
    out->len = start;
    return out->err;
  }
  return 0;
}

/* ---- reading ------------------------------------------------------------ */

/* Each reader below returns 0, MQ_ECORRUPT or MQ_ENOMEM. Counts are trusted
 * only as far as the bytes go: every item takes at least one byte, and the
 * loops stop at the first read error. */

static int read_count(struct mq_reader *r, uint64_t *n) {
  *n = mq_get_varint(r);
  if (r->err || *n > mq_reader_left(r))
    return MQ_ECORRUPT;
  return 0;
}

static const char *get_str(struct mq_reader *r, size_t *len, size_t max) {
  return (const char *)mq_get_bytes(r, len, max);
}

static void get_kv_fields(struct mq_reader *r, struct mq_kv *kv) {
  kv->key = get_str(r, &kv->key_len, MQ_CMD_MAX_KEY);
  kv->value = mq_get_bytes(r, &kv->value_len, MQ_CMD_MAX_VALUE);
  kv->create_revision = mq_get_svarint(r);
  kv->mod_revision = mq_get_svarint(r);
  kv->version = mq_get_svarint(r);
  kv->expires_at_ms = mq_get_svarint(r);
}

static int read_kv(struct mq_reader *r, struct mq_sm_state *s) {
  uint64_t n;
  if (read_count(r, &n))
    return MQ_ECORRUPT;
  const char *prev = NULL;
  size_t prev_len = 0;
  for (uint64_t i = 0; i < n; i++) {
    struct mq_kv kv;
    get_kv_fields(r, &kv);
    if (r->err || kv.key_len == 0 || kv.create_revision < 1 ||
        kv.mod_revision < kv.create_revision || kv.mod_revision > s->revision || kv.version < 1 ||
        kv.expires_at_ms < 0 || (prev && mq_kv_keycmp(prev, prev_len, kv.key, kv.key_len) >= 0))
      return MQ_ECORRUPT;
    prev = kv.key;
    prev_len = kv.key_len;
    struct mq_kvrec *rec;
    uint64_t h = mq_kvmap_hash(kv.key, kv.key_len);
    if (mq_kvmap_insert(&s->kv, kv.key, kv.key_len, h, &rec))
      return MQ_ENOMEM;
    uint8_t *val = NULL;
    if (kv.value_len) {
      val = malloc(kv.value_len);
      if (!val)
        return MQ_ENOMEM;
      memcpy(val, kv.value, kv.value_len);
    }
    mq_kvmap_swap_value(&s->kv, rec, val, kv.value_len);
    rec->create_revision = kv.create_revision;
    rec->mod_revision = kv.mod_revision;
    rec->version = kv.version;
    if (mq_kvmap_set_expiry(&s->kv, rec, kv.expires_at_ms))
      return MQ_ENOMEM;
  }
  return 0;
}

static int read_topics(struct mq_reader *r, struct mq_sm_state *s) {
  uint64_t n;
  if (read_count(r, &n))
    return MQ_ECORRUPT;
  const char *prev = NULL;
  size_t prev_len = 0;
  for (uint64_t i = 0; i < n; i++) {
    size_t len;
    const char *name = get_str(r, &len, MQ_CMD_MAX_TOPIC);
    int64_t start = mq_get_svarint(r);
    uint64_t count;
    if (r->err || read_count(r, &count) || len == 0 || start < 0 ||
        (prev && mq_kv_keycmp(prev, prev_len, name, len) >= 0))
      return MQ_ECORRUPT;
    prev = name;
    prev_len = len;
    struct mq_topic *t;
    if (mq_topics_get(&s->topics, name, len, start, &t))
      return MQ_ENOMEM;
    for (uint64_t j = 0; j < count; j++) {
      size_t kl, vl;
      const char *k = get_str(r, &kl, MQ_CMD_MAX_KEY);
      const uint8_t *v = mq_get_bytes(r, &vl, MQ_CMD_MAX_VALUE);
      int64_t ts = mq_get_svarint(r);
      if (r->err)
        return MQ_ECORRUPT;
      if (mq_topic_append(&s->topics, t, k, kl, v, vl, ts))
        return MQ_ENOMEM;
    }
  }
  return 0;
}

static int read_ingest(struct mq_reader *r, struct mq_sm_state *s) {
  uint64_t n;
  if (read_count(r, &n))
    return MQ_ECORRUPT;
  for (uint64_t i = 0; i < n; i++) {
    size_t len;
    const char *src = get_str(r, &len, MQ_CMD_MAX_TOPIC);
    int32_t part = mq_get_si32(r);
    int64_t off = mq_get_svarint(r);
    if (r->err || len == 0 || part < 0)
      return MQ_ECORRUPT;
    /* strictly increasing order: appending must land at the end */
    if (s->ingest.n) {
      const struct mq_ingestpos *last = &s->ingest.v[s->ingest.n - 1];
      int c = mq_kv_keycmp(last->source, last->source_len, src, len);
      if (c > 0 || (c == 0 && last->partition >= part))
        return MQ_ECORRUPT;
    }
    if (mq_ingestpos_set(&s->ingest, src, len, part, off))
      return MQ_ENOMEM;
  }
  return 0;
}

static int read_dedup(struct mq_reader *r, struct mq_sm_state *s) {
  uint64_t n;
  if (read_count(r, &n))
    return MQ_ECORRUPT;
  for (uint64_t i = 0; i < n; i++) {
    uint64_t id = mq_get_varint(r);
    uint64_t max_seq = mq_get_varint(r);
    uint64_t k = mq_get_varint(r);
    if (r->err || id == 0 || max_seq == 0 || k == 0 || k > MQ_DEDUP_WINDOW ||
        mq_dedup_find(&s->dedup, id))
      return MQ_ECORRUPT;
    /* Increasing seqs inside the window, ending at max_seq: each one is new
     * to the table when it is recorded. */
    uint64_t prev_seq = 0;
    for (uint64_t j = 0; j < k; j++) {
      struct mq_dedup_outcome o = {0};
      o.seq = mq_get_varint(r);
      int64_t code = mq_get_svarint(r);
      uint8_t flags = mq_get_u8(r);
      o.revision = mq_get_svarint(r);
      o.offset = mq_get_svarint(r);
      o.timestamp = mq_get_svarint(r);
      size_t ml;
      const char *m = get_str(r, &ml, MQ_STATUS_MSG_MAX - 1);
      if (r->err || o.seq <= prev_seq || o.seq > max_seq || max_seq - o.seq >= MQ_DEDUP_WINDOW ||
          code > 0 || code < -1000 || (flags & ~3u) || memchr(m, 0, ml))
        return MQ_ECORRUPT;
      if (j == k - 1 && o.seq != max_seq)
        return MQ_ECORRUPT;
      prev_seq = o.seq;
      o.code = (int)code;
      o.deleted = flags & 1;
      o.skipped = (flags & 2) != 0;
      char msg[MQ_STATUS_MSG_MAX];
      memcpy(msg, m, ml);
      msg[ml] = '\0';
      o.msg = ml ? msg : NULL;
      if (mq_dedup_record(&s->dedup, id, &o))
        return MQ_ENOMEM;
    }
  }
  return 0;
}

static int read_history(struct mq_reader *r, struct mq_sm_state *s, int32_t shard) {
  uint64_t n;
  if (read_count(r, &n) || n > (uint64_t)s->revision)
    return MQ_ECORRUPT;
  int64_t rev = s->revision - (int64_t)n;
  for (uint64_t i = 0; i < n; i++) {
    struct mq_event ev;
    memset(&ev, 0, sizeof ev);
    uint8_t type = mq_get_u8(r);
    ev.revision = mq_get_svarint(r);
    get_kv_fields(r, &ev.kv);
    ev.topic = get_str(r, &ev.topic_len, MQ_CMD_MAX_TOPIC);
    ev.entry.key = get_str(r, &ev.entry.key_len, MQ_CMD_MAX_KEY);
    ev.entry.value = mq_get_bytes(r, &ev.entry.value_len, MQ_CMD_MAX_VALUE);
    ev.entry.timestamp = mq_get_svarint(r);
    ev.entry.offset = mq_get_svarint(r);
    if (r->err || type > MQ_EV_PRODUCE || ev.revision != ++rev)
      return MQ_ECORRUPT;
    ev.type = (enum mq_event_type)type;
    ev.shard = shard;
    ev.kv.shard = shard;
    ev.entry.partition = shard;
    if (mq_hist_push(&s->hist, &ev))
      return MQ_ENOMEM;
  }
  return 0;
}

struct mq_sm_image {
  struct mq_sm_state s;
};

int mq_sm_image_decode(const struct mq_sm *sm, const void *data, size_t len,
                       struct mq_sm_image **out) {
  *out = NULL;
  if (len < SNAP_TRAILER)
    return MQ_ECORRUPT;
  struct mq_reader tr;
  mq_reader_init(&tr, (const uint8_t *)data + len - SNAP_TRAILER, SNAP_TRAILER);
  if (mq_get_u64(&tr) != mq_fnv64(MQ_FNV64_INIT, data, len - SNAP_TRAILER))
    return MQ_ECORRUPT;

  struct mq_reader r;
  mq_reader_init(&r, data, len - SNAP_TRAILER);
  uint32_t magic = mq_get_u32(&r);
  uint8_t version = mq_get_u8(&r);
  int32_t shard = mq_get_si32(&r);
  uint64_t applied = mq_get_varint(&r);
  int64_t revision = mq_get_svarint(&r);
  if (r.err || magic != SNAP_MAGIC || version != SNAP_VERSION || shard != sm->shard || revision < 0)
    return MQ_ECORRUPT;

  struct mq_sm_image *img = malloc(sizeof *img);
  if (!img || mq_sm_state_init(&img->s, &sm->limits)) {
    free(img);
    return MQ_ENOMEM;
  }
  struct mq_sm_state *ns = &img->s;
  ns->applied_index = applied;
  ns->revision = revision;
  int rc = read_kv(&r, ns);
  if (!rc)
    rc = read_topics(&r, ns);
  if (!rc)
    rc = read_ingest(&r, ns);
  if (!rc)
    rc = read_dedup(&r, ns);
  if (!rc)
    rc = read_history(&r, ns, sm->shard);
  if (!rc && (r.err || mq_reader_left(&r) != 0))
    rc = MQ_ECORRUPT;
  if (rc) {
    mq_sm_image_free(img);
    return rc;
  }
  *out = img;
  return 0;
}

void mq_sm_image_swap(struct mq_sm *sm, struct mq_sm_image *img) {
  mq_sm_release_borrowed(sm);
  struct mq_sm_state old = sm->s;
  sm->s = img->s;
  img->s = old;
}

uint64_t mq_sm_image_keys(const struct mq_sm_image *img) { return img->s.kv.count; }

void mq_sm_image_free(struct mq_sm_image *img) {
  if (!img)
    return;
  mq_sm_state_close(&img->s);
  free(img);
}

int mq_sm_restore(struct mq_sm *sm, const void *data, size_t len) {
  struct mq_sm_image *img;
  int rc = mq_sm_image_decode(sm, data, len, &img);
  if (rc)
    return rc;
  mq_sm_image_swap(sm, img);
  mq_sm_image_free(img);
  return 0;
}
