/* Requests and their results as bytes, for forwarding a request to the
 * agent that leads its shard and carrying the answer back. Our own compact
 * format (util/buf.h), versioned; decoding untrusted bytes never crashes. */
#include "cluster/internal.h"

#include <stdlib.h>
#include <string.h>

#define REQ_VERSION 2
#define RESULT_VERSION 2
#define MAX_FIELD (64u << 20)
#define MAX_ITEMS 100000u

enum {
  F_RETURN_PREVIOUS = 1,
  F_SERIALIZABLE = 2,
  F_KEYS_ONLY = 4
};

void reqcodec_encode_req(struct mq_buf *b, const struct mq_req *r, struct reqcodec_clock now) {
  mq_buf_put_u8(b, CALL_REQ);
  mq_buf_put_u8(b, REQ_VERSION);
  mq_buf_put_u8(b, (uint8_t)r->type);
  mq_buf_put_bytes(b, r->key, r->key_len);
  mq_buf_put_bytes(b, r->value, r->value_len);
  mq_buf_put_u64(b, (uint64_t)r->ttl_ms);
  mq_buf_put_u8(b, (uint8_t)r->pre.type);
  mq_buf_put_u64(b, (uint64_t)r->pre.num);
  mq_buf_put_bytes(b, r->pre.value, r->pre.value_len);
  mq_buf_put_u8(b, (uint8_t)((r->return_previous ? F_RETURN_PREVIOUS : 0) |
                             (r->serializable ? F_SERIALIZABLE : 0) |
                             (r->keys_only ? F_KEYS_ONLY : 0)));
  mq_buf_put_bytes(b, r->prefix, r->prefix_len);
  mq_buf_put_bytes(b, r->start_after, r->start_after_len);
  mq_buf_put_varint(b, r->limit);
  mq_buf_put_bytes(b, r->topic, r->topic_len);
  mq_buf_put_u32(b, (uint32_t)r->partition);
  mq_buf_put_u64(b, (uint64_t)r->timestamp);
  mq_buf_put_u64(b, (uint64_t)r->offset);
  mq_buf_put_varint(b, r->count);
  mq_buf_put_u64(b, r->client_id);
  mq_buf_put_u64(b, r->seq);
  mq_buf_put_bytes(b, r->ingest_source, r->ingest_source_len);
  mq_buf_put_u32(b, (uint32_t)r->ingest_partition);
  mq_buf_put_u64(b, (uint64_t)r->ingest_offset);
  mq_buf_put_u64(b, (uint64_t)r->ingest_prev);
  int64_t left = r->deadline_ms ? r->deadline_ms - now.mono_ms : 0;
  if (left < 1)
    left = 1;
  mq_buf_put_u64(b, (uint64_t)left);
  /* The same deadline on the wall clock: a call delivered late (held in a
   * partitioned link, say) must not start after its sender gave up. */
  mq_buf_put_u64(b, (uint64_t)(now.wall_ms + left));
  mq_buf_put_u32(b, (uint32_t)r->p_shard1);
}

int reqcodec_decode_req(const uint8_t *data, size_t len, struct mq_req *r, void **owned,
                        struct reqcodec_clock now) {
  struct mq_reader rd;
  mq_reader_init(&rd, data, len);
  *owned = NULL;
  if (mq_get_u8(&rd) != CALL_REQ || mq_get_u8(&rd) != REQ_VERSION)
    return MQ_ECORRUPT;
  uint8_t type = mq_get_u8(&rd);
  /* Status and recovery act on the agent they are sent to: never forwarded. */
  if (type >= MQ_REQ_TYPES || type == MQ_REQ_STATUS || type == MQ_REQ_RECOVER)
    return MQ_ECORRUPT;
  mq_req_init(r, (enum mq_req_type)type);
  r->key = (const char *)mq_get_bytes(&rd, &r->key_len, MAX_FIELD);
  r->value = mq_get_bytes(&rd, &r->value_len, MAX_FIELD);
  r->ttl_ms = (int64_t)mq_get_u64(&rd);
  uint8_t pt = mq_get_u8(&rd);
  if (pt > MQ_PRE_VALUE)
    return MQ_ECORRUPT;
  r->pre.type = (enum mq_precond_type)pt;
  r->pre.num = (int64_t)mq_get_u64(&rd);
  r->pre.value = mq_get_bytes(&rd, &r->pre.value_len, MAX_FIELD);
  uint8_t f = mq_get_u8(&rd);
  r->return_previous = f & F_RETURN_PREVIOUS;
  r->serializable = f & F_SERIALIZABLE;
  r->keys_only = f & F_KEYS_ONLY;
  r->prefix = (const char *)mq_get_bytes(&rd, &r->prefix_len, MAX_FIELD);
  r->start_after = (const char *)mq_get_bytes(&rd, &r->start_after_len, MAX_FIELD);
  r->limit = (uint32_t)mq_get_varint(&rd);
  r->topic = (const char *)mq_get_bytes(&rd, &r->topic_len, MAX_FIELD);
  r->partition = (int32_t)mq_get_u32(&rd);
  r->timestamp = (int64_t)mq_get_u64(&rd);
  r->offset = (int64_t)mq_get_u64(&rd);
  r->count = (uint32_t)mq_get_varint(&rd);
  r->client_id = mq_get_u64(&rd);
  r->seq = mq_get_u64(&rd);
  r->ingest_source = (const char *)mq_get_bytes(&rd, &r->ingest_source_len, MAX_FIELD);
  r->ingest_partition = (int32_t)mq_get_u32(&rd);
  r->ingest_offset = (int64_t)mq_get_u64(&rd);
  r->ingest_prev = (int64_t)mq_get_u64(&rd);
  uint64_t left = mq_get_u64(&rd);
  int64_t wall_deadline = (int64_t)mq_get_u64(&rd);
  int32_t shard1 = (int32_t)mq_get_u32(&rd);
  if (rd.err || mq_reader_left(&rd) != 0 || left > 3600000 || shard1 < 0)
    return MQ_ECORRUPT;
  /* Any u64 may arrive here: a deadline far in the past or the future must
   * not overflow the subtraction. */
  int64_t wall_left;
  if (__builtin_sub_overflow(wall_deadline, now.wall_ms, &wall_left))
    wall_left = wall_deadline < 0 ? 0 : INT64_MAX;
  if (wall_left < (int64_t)left)
    left = wall_left > 0 ? (uint64_t)wall_left : 0;
  /* 0 left: the request arrives expired and is refused unapplied. */
  r->deadline_ms = now.mono_ms + (int64_t)left - (left ? 0 : 1);
  r->p_shard1 = shard1;
  /* Empty strings must not be NULL for the checks downstream. */
  if (!r->key)
    r->key = "";
  if (!r->prefix)
    r->prefix = "";
  if (!r->start_after)
    r->start_after = "";
  if (!r->topic)
    r->topic = "";
  if (!r->ingest_source)
    r->ingest_source = "";
  return 0;
}

static void put_kv(struct mq_buf *b, const struct mq_kv *kv) {
  mq_buf_put_bytes(b, kv->key, kv->key_len);
  mq_buf_put_bytes(b, kv->value, kv->value_len);
  mq_buf_put_u64(b, (uint64_t)kv->create_revision);
  mq_buf_put_u64(b, (uint64_t)kv->mod_revision);
  mq_buf_put_u64(b, (uint64_t)kv->version);
  mq_buf_put_u64(b, (uint64_t)kv->expires_at_ms);
  mq_buf_put_u32(b, (uint32_t)kv->shard);
}

void reqcodec_encode_result(struct mq_buf *b, const struct mq_req *r) {
  mq_buf_put_u8(b, RESULT_VERSION);
  mq_buf_put_u32(b, (uint32_t)r->status.code);
  mq_buf_put_bytes(b, r->status.msg, strlen(r->status.msg));
  mq_buf_put_bytes(b, r->p_leader_hint, strlen(r->p_leader_hint));
  mq_buf_put_u64(b, (uint64_t)r->revision);
  mq_buf_put_u32(b, (uint32_t)r->shard);
  mq_buf_put_u8(b, r->deleted);
  mq_buf_put_u64(b, (uint64_t)r->out_offset);
  mq_buf_put_u8(b, r->has_kv);
  if (r->has_kv)
    put_kv(b, &r->kv);
  mq_buf_put_varint(b, r->n_kvs);
  for (size_t i = 0; i < r->n_kvs; i++)
    put_kv(b, &r->kvs[i]);
  mq_buf_put_u8(b, r->more);
  mq_buf_put_varint(b, r->n_entries);
  for (size_t i = 0; i < r->n_entries; i++) {
    const struct mq_entry *e = &r->entries[i];
    mq_buf_put_bytes(b, e->key, e->key_len);
    mq_buf_put_bytes(b, e->value, e->value_len);
    mq_buf_put_u64(b, (uint64_t)e->timestamp);
    mq_buf_put_u64(b, (uint64_t)e->offset);
    mq_buf_put_u32(b, (uint32_t)e->partition);
  }
  mq_buf_put_u64(b, (uint64_t)r->next_offset);
  mq_buf_put_u64(b, (uint64_t)r->high_watermark);
  mq_buf_put_u64(b, (uint64_t)r->log_start_offset);
  mq_buf_put_u64(b, (uint64_t)r->ingest_recorded);
}

/* The smallest encodings: two empty byte strings (a length byte each) and
 * the fixed fields after them. */
#define KV_MIN_BYTES (2 + 4 * 8 + 4)
#define ENTRY_MIN_BYTES (2 + 2 * 8 + 4)

static int get_kv(struct mq_reader *rd, struct mq_kv *kv) {
  size_t kl, vl;
  const uint8_t *k = mq_get_bytes(rd, &kl, MAX_FIELD);
  const uint8_t *v = mq_get_bytes(rd, &vl, MAX_FIELD);
  kv->create_revision = (int64_t)mq_get_u64(rd);
  kv->mod_revision = (int64_t)mq_get_u64(rd);
  kv->version = (int64_t)mq_get_u64(rd);
  kv->expires_at_ms = (int64_t)mq_get_u64(rd);
  kv->shard = (int32_t)mq_get_u32(rd);
  if (rd->err)
    return MQ_ECORRUPT;
  kv->key_len = kl;
  kv->value_len = vl;
  return req_copy_pair(k, kl, v, vl, &kv->key, &kv->value);
}

int reqcodec_decode_result(const uint8_t *data, size_t len, struct mq_req *r) {
  struct mq_reader rd;
  mq_reader_init(&rd, data, len);
  if (mq_get_u8(&rd) != RESULT_VERSION)
    return MQ_ECORRUPT;
  int code = (int32_t)mq_get_u32(&rd);
  size_t ml, hl;
  const uint8_t *msg = mq_get_bytes(&rd, &ml, MQ_STATUS_MSG_MAX * 4);
  const uint8_t *hint = mq_get_bytes(&rd, &hl, sizeof r->p_leader_hint - 1);
  if (rd.err || code > 0 || code < -100)
    return MQ_ECORRUPT;
  mq_status_set(&r->status, code, "%.*s", (int)ml, msg ? (const char *)msg : "");
  memcpy(r->p_leader_hint, hint ? (const char *)hint : "", hl);
  r->p_leader_hint[hl] = '\0';
  r->revision = (int64_t)mq_get_u64(&rd);
  r->shard = (int32_t)mq_get_u32(&rd);
  r->deleted = mq_get_u8(&rd);
  r->out_offset = (int64_t)mq_get_u64(&rd);
  if (mq_get_u8(&rd)) {
    if (get_kv(&rd, &r->kv))
      return MQ_ECORRUPT;
    r->has_kv = true;
  }
  /* Counts are bounded by the bytes that follow, so that a short reply
   * cannot make the decoder allocate room for items it does not hold. */
  uint64_t nk = mq_get_varint(&rd);
  if (rd.err || nk > MAX_ITEMS || nk > mq_reader_left(&rd) / KV_MIN_BYTES)
    return MQ_ECORRUPT;
  if (nk) {
    r->kvs = calloc(nk, sizeof *r->kvs);
    if (!r->kvs)
      return MQ_ENOMEM;
    for (uint64_t i = 0; i < nk; i++) {
      if (get_kv(&rd, &r->kvs[i]))
        return MQ_ECORRUPT;
      r->n_kvs++;
    }
  }
  r->more = mq_get_u8(&rd);
  uint64_t ne = mq_get_varint(&rd);
  if (rd.err || ne > MAX_ITEMS || ne > mq_reader_left(&rd) / ENTRY_MIN_BYTES)
    return MQ_ECORRUPT;
  if (ne) {
    r->entries = calloc(ne, sizeof *r->entries);
    if (!r->entries)
      return MQ_ENOMEM;
    for (uint64_t i = 0; i < ne; i++) {
      struct mq_entry *e = &r->entries[i];
      size_t kl, vl;
      const uint8_t *k = mq_get_bytes(&rd, &kl, MAX_FIELD);
      const uint8_t *v = mq_get_bytes(&rd, &vl, MAX_FIELD);
      e->timestamp = (int64_t)mq_get_u64(&rd);
      e->offset = (int64_t)mq_get_u64(&rd);
      e->partition = (int32_t)mq_get_u32(&rd);
      if (rd.err)
        return MQ_ECORRUPT;
      e->key_len = kl;
      e->value_len = vl;
      if (req_copy_pair(k, kl, v, vl, &e->key, &e->value))
        return MQ_ENOMEM;
      r->n_entries++;
    }
  }
  r->next_offset = (int64_t)mq_get_u64(&rd);
  r->high_watermark = (int64_t)mq_get_u64(&rd);
  r->log_start_offset = (int64_t)mq_get_u64(&rd);
  r->ingest_recorded = (int64_t)mq_get_u64(&rd);
  if (rd.err || mq_reader_left(&rd))
    return MQ_ECORRUPT;
  return 0;
}

/* A change event, for watches that follow a shard from a replica. */
void reqcodec_encode_event(struct mq_buf *b, const struct mq_event *ev) {
  mq_buf_put_u8(b, (uint8_t)ev->type);
  mq_buf_put_u32(b, (uint32_t)ev->shard);
  mq_buf_put_u64(b, (uint64_t)ev->revision);
  put_kv(b, &ev->kv);
  mq_buf_put_bytes(b, ev->topic, ev->topic_len);
  mq_buf_put_bytes(b, ev->entry.key, ev->entry.key_len);
  mq_buf_put_bytes(b, ev->entry.value, ev->entry.value_len);
  mq_buf_put_u64(b, (uint64_t)ev->entry.timestamp);
  mq_buf_put_u64(b, (uint64_t)ev->entry.offset);
  mq_buf_put_u32(b, (uint32_t)ev->entry.partition);
}

/* Pointers in ev borrow from the reader's memory. */
int reqcodec_decode_event(struct mq_reader *rd, struct mq_event *ev) {
  memset(ev, 0, sizeof *ev);
  uint8_t type = mq_get_u8(rd);
  if (type > MQ_EV_PRODUCE)
    return MQ_ECORRUPT;
  ev->type = (enum mq_event_type)type;
  ev->shard = (int32_t)mq_get_u32(rd);
  ev->revision = (int64_t)mq_get_u64(rd);
  ev->kv.key = (const char *)mq_get_bytes(rd, &ev->kv.key_len, MAX_FIELD);
  ev->kv.value = mq_get_bytes(rd, &ev->kv.value_len, MAX_FIELD);
  ev->kv.create_revision = (int64_t)mq_get_u64(rd);
  ev->kv.mod_revision = (int64_t)mq_get_u64(rd);
  ev->kv.version = (int64_t)mq_get_u64(rd);
  ev->kv.expires_at_ms = (int64_t)mq_get_u64(rd);
  ev->kv.shard = (int32_t)mq_get_u32(rd);
  ev->topic = (const char *)mq_get_bytes(rd, &ev->topic_len, MAX_FIELD);
  ev->entry.key = (const char *)mq_get_bytes(rd, &ev->entry.key_len, MAX_FIELD);
  ev->entry.value = mq_get_bytes(rd, &ev->entry.value_len, MAX_FIELD);
  ev->entry.timestamp = (int64_t)mq_get_u64(rd);
  ev->entry.offset = (int64_t)mq_get_u64(rd);
  ev->entry.partition = (int32_t)mq_get_u32(rd);
  if (rd->err)
    return MQ_ECORRUPT;
  if (!ev->kv.key)
    ev->kv.key = "";
  if (!ev->topic)
    ev->topic = "";
  if (!ev->entry.key)
    ev->entry.key = "";
  return 0;
}
