/* The command codec: struct mq_cmd <-> bytes of a Raft log entry.
 *
 * Layout, version 1 (varints are LEB128; "s" marks zigzag signed varints):
 *
 *   u8 version (1) | u8 type | u8 flags | s now_ms | client_id | seq
 *   [flags & INGEST]  bytes source (non-empty) | s partition (>= 0) | s offset
 *                     | s prev (-1 <= prev < offset)
 *   PUT      bytes key | bytes value | s ttl_ms | precond
 *   DELETE   bytes key | precond
 *   EXPIRE   bytes key | s expect_mod_revision
 *   PRODUCE  bytes topic | s partition | bytes key | bytes value | s timestamp
 *   precond  u8 type | s num (VERSION, MOD_REVISION) | bytes value (VALUE)
 *
 * flags: bit 0 INGEST, bit 1 return_previous; other bits must be zero.
 * Decoding is strict — unknown versions, types and flags, out-of-range
 * integers and trailing bytes are all MQ_ECORRUPT — so that two replicas
 * can never read one entry two ways. */
#include "store/cmd.h"

#include "store/codec.h"
#include "util/err.h"

#include <string.h>

#define CMD_VERSION 1
#define FLAG_INGEST 0x01u
#define FLAG_RETURN_PREVIOUS 0x02u

static int check_encodable(const struct mq_cmd *c) {
  if ((unsigned)c->type > MQ_CMD_PRODUCE)
    return MQ_EINVAL;
  if ((unsigned)c->pre.type > MQ_PRE_VALUE)
    return MQ_EINVAL;
  if (c->key_len > MQ_CMD_MAX_KEY || c->value_len > MQ_CMD_MAX_VALUE ||
      c->pre.value_len > MQ_CMD_MAX_VALUE || c->topic_len > MQ_CMD_MAX_TOPIC ||
      c->ingest_source_len > MQ_CMD_MAX_TOPIC)
    return MQ_EINVAL;
  if (c->ingest_partition >= 0 && c->ingest_source_len > 0 &&
      (c->ingest_prev < -1 || c->ingest_prev >= c->ingest_offset))
    return MQ_EINVAL;
  return 0;
}

static void put_precond(struct mq_buf *b, const struct mq_precond *p) {
  mq_buf_put_u8(b, (uint8_t)p->type);
  if (p->type == MQ_PRE_VERSION || p->type == MQ_PRE_MOD_REVISION)
    mq_put_svarint(b, p->num);
  else if (p->type == MQ_PRE_VALUE)
    mq_buf_put_bytes(b, p->value, p->value_len);
}

int mq_cmd_encode(const struct mq_cmd *c, struct mq_buf *out) {
  int rc = check_encodable(c);
  if (rc)
    return rc;
  if (out->err)
    return out->err;
  size_t start = out->len;
  unsigned flags = 0;
  if (c->ingest_partition >= 0 && c->ingest_source_len > 0)
    flags |= FLAG_INGEST;
  if (c->return_previous)
    flags |= FLAG_RETURN_PREVIOUS;

  mq_buf_put_u8(out, CMD_VERSION);
  mq_buf_put_u8(out, (uint8_t)c->type);
  mq_buf_put_u8(out, (uint8_t)flags);
  mq_put_svarint(out, c->now_ms);
  mq_buf_put_varint(out, c->client_id);
  mq_buf_put_varint(out, c->seq);
  if (flags & FLAG_INGEST) {
    mq_buf_put_bytes(out, c->ingest_source, c->ingest_source_len);
    mq_put_svarint(out, c->ingest_partition);
    mq_put_svarint(out, c->ingest_offset);
    mq_put_svarint(out, c->ingest_prev);
  }
  switch (c->type) {
  case MQ_CMD_NOOP:
    break;
  case MQ_CMD_PUT:
    mq_buf_put_bytes(out, c->key, c->key_len);
    mq_buf_put_bytes(out, c->value, c->value_len);
    mq_put_svarint(out, c->ttl_ms);
    put_precond(out, &c->pre);
    break;
  case MQ_CMD_DELETE:
    mq_buf_put_bytes(out, c->key, c->key_len);
    put_precond(out, &c->pre);
    break;
  case MQ_CMD_EXPIRE:
    mq_buf_put_bytes(out, c->key, c->key_len);
    mq_put_svarint(out, c->expect_mod_revision);
    break;
  case MQ_CMD_PRODUCE:
    mq_buf_put_bytes(out, c->topic, c->topic_len);
    mq_put_svarint(out, c->partition);
    mq_buf_put_bytes(out, c->key, c->key_len);
    mq_buf_put_bytes(out, c->value, c->value_len);
    mq_put_svarint(out, c->timestamp);
    break;
  }
  if (out->err) {
    out->len = start;
    return out->err;
  }
  return 0;
}

static void get_precond(struct mq_reader *r, struct mq_precond *p) {
  uint8_t t = mq_get_u8(r);
  if (t > MQ_PRE_VALUE) {
    r->err = MQ_ECORRUPT;
    return;
  }
  p->type = (enum mq_precond_type)t;
  if (t == MQ_PRE_VERSION || t == MQ_PRE_MOD_REVISION)
    p->num = mq_get_svarint(r);
  else if (t == MQ_PRE_VALUE)
    p->value = mq_get_bytes(r, &p->value_len, MQ_CMD_MAX_VALUE);
}

static const char *get_str(struct mq_reader *r, size_t *len, size_t max) {
  return (const char *)mq_get_bytes(r, len, max);
}

int mq_cmd_decode(const void *data, size_t len, struct mq_cmd *c) {
  struct mq_reader r;
  memset(c, 0, sizeof *c);
  c->ingest_partition = -1;
  mq_reader_init(&r, data, len);

  if (mq_get_u8(&r) != CMD_VERSION)
    goto corrupt;
  uint8_t type = mq_get_u8(&r);
  uint8_t flags = mq_get_u8(&r);
  if (r.err || type > MQ_CMD_PRODUCE || (flags & ~(FLAG_INGEST | FLAG_RETURN_PREVIOUS)))
    goto corrupt;
  c->type = (enum mq_cmd_type)type;
  c->return_previous = (flags & FLAG_RETURN_PREVIOUS) != 0;
  c->now_ms = mq_get_svarint(&r);
  c->client_id = mq_get_varint(&r);
  c->seq = mq_get_varint(&r);
  if (flags & FLAG_INGEST) {
    c->ingest_source = get_str(&r, &c->ingest_source_len, MQ_CMD_MAX_TOPIC);
    c->ingest_partition = mq_get_si32(&r);
    c->ingest_offset = mq_get_svarint(&r);
    c->ingest_prev = mq_get_svarint(&r);
    if (c->ingest_partition < 0 || c->ingest_source_len == 0 || c->ingest_prev < -1 ||
        c->ingest_prev >= c->ingest_offset)
      goto corrupt;
  }
  switch (c->type) {
  case MQ_CMD_NOOP:
    break;
  case MQ_CMD_PUT:
    c->key = get_str(&r, &c->key_len, MQ_CMD_MAX_KEY);
    c->value = mq_get_bytes(&r, &c->value_len, MQ_CMD_MAX_VALUE);
    c->ttl_ms = mq_get_svarint(&r);
    get_precond(&r, &c->pre);
    break;
  case MQ_CMD_DELETE:
    c->key = get_str(&r, &c->key_len, MQ_CMD_MAX_KEY);
    get_precond(&r, &c->pre);
    break;
  case MQ_CMD_EXPIRE:
    c->key = get_str(&r, &c->key_len, MQ_CMD_MAX_KEY);
    c->expect_mod_revision = mq_get_svarint(&r);
    break;
  case MQ_CMD_PRODUCE:
    c->topic = get_str(&r, &c->topic_len, MQ_CMD_MAX_TOPIC);
    c->partition = mq_get_si32(&r);
    c->key = get_str(&r, &c->key_len, MQ_CMD_MAX_KEY);
    c->value = mq_get_bytes(&r, &c->value_len, MQ_CMD_MAX_VALUE);
    c->timestamp = mq_get_svarint(&r);
    break;
  }
  if (r.err || mq_reader_left(&r) != 0)
    goto corrupt;
  return 0;

corrupt:
  memset(c, 0, sizeof *c);
  return MQ_ECORRUPT;
}
