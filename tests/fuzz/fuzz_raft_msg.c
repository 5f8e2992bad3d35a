/* Fuzz target: the Raft message codec (core/codec.c), which reads the
 * messages of a peer frame one after another, and the configuration a CONF
 * entry carries (mq_raft_conf_decode). The input is read as a sequence of
 * messages, as the host reads a frame's body; every CONF entry's data, and
 * the whole input, go through the configuration decoder too. Promise
 * checked: what decodes re-encodes to bytes that decode to the same
 * message. */
#include "core/raft.h"
#include "fuzz/fuzz.h"
#include "util/buf.h"
#include "util/err.h"

#include <string.h>

static struct mq_raft_entry *ents, *ents2;
static size_t cap, cap2;

static void check_conf(const void *data, size_t len) {
  struct mq_raft_conf c, c2;
  int rc = mq_raft_conf_decode(&c, data, len);
  FUZZ_CHECK(rc == 0 || rc == MQ_ECORRUPT);
  if (rc)
    return;
  FUZZ_CHECK(c.n <= MQ_RAFT_MAX_MEMBERS);
  for (uint32_t i = 0; i < c.n; i++)
    FUZZ_CHECK(c.m[i].role == MQ_RAFT_VOTER || c.m[i].role == MQ_RAFT_LEARNER);
  struct mq_buf b;
  mq_buf_init(&b);
  mq_raft_conf_encode(&b, &c);
  FUZZ_CHECK(b.err == 0);
  FUZZ_CHECK(mq_raft_conf_decode(&c2, b.data, b.len) == 0);
  FUZZ_CHECK(c2.n == c.n);
  for (uint32_t i = 0; i < c.n; i++)
    FUZZ_CHECK(mq_raft_member_eq(c.m[i].id, c2.m[i].id) && c.m[i].role == c2.m[i].role);
  mq_buf_close(&b);
}

static void check_same(const struct mq_raft_msg *a, const struct mq_raft_msg *b) {
  FUZZ_CHECK(a->group == b->group && a->type == b->type && a->flags == b->flags);
  FUZZ_CHECK(mq_raft_member_eq(a->from, b->from) && mq_raft_member_eq(a->to, b->to));
  FUZZ_CHECK(a->term == b->term && a->index == b->index && a->log_term == b->log_term);
  FUZZ_CHECK(a->commit == b->commit && a->hint == b->hint && a->ctx == b->ctx);
  FUZZ_CHECK(a->snap_index == b->snap_index && a->snap_term == b->snap_term);
  FUZZ_CHECK(a->n_entries == b->n_entries && a->len == b->len);
  FUZZ_CHECK(a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
  for (size_t i = 0; i < a->n_entries; i++) {
    const struct mq_raft_entry *x = &a->entries[i], *y = &b->entries[i];
    FUZZ_CHECK(x->index == y->index && x->term == y->term && x->type == y->type);
    FUZZ_CHECK(x->len == y->len && (x->len == 0 || memcmp(x->data, y->data, x->len) == 0));
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  check_conf(data, size);
  struct mq_reader rd;
  mq_reader_init(&rd, data, size);
  while (mq_reader_left(&rd) > 0) {
    struct mq_raft_msg m, m2;
    const uint8_t *start = rd.p;
    int rc = mq_raft_msg_decode(&rd, &m, &ents, &cap);
    FUZZ_CHECK(rc == 0 || rc == MQ_ECORRUPT || rc == MQ_ENOMEM);
    if (rc)
      break;
    FUZZ_CHECK(rd.p > start && rd.p <= data + size);
    FUZZ_CHECK(m.type >= MQ_RAFT_MSG_APP && m.type <= MQ_RAFT_MSG_MAX_TYPE);
    for (size_t i = 0; i < m.n_entries; i++) {
      const struct mq_raft_entry *e = &m.entries[i];
      FUZZ_CHECK(e->len == 0 || (e->data >= data && e->data + e->len <= data + size));
      if (e->type == MQ_RAFT_ENTRY_CONF)
        check_conf(e->data, e->len);
    }
    FUZZ_CHECK(m.len == 0 || (m.data >= data && m.data + m.len <= data + size));
    struct mq_buf b;
    mq_buf_init(&b);
    mq_raft_msg_encode(&b, &m);
    FUZZ_CHECK(b.err == 0);
    struct mq_reader r2;
    mq_reader_init(&r2, b.data, b.len);
    FUZZ_CHECK(mq_raft_msg_decode(&r2, &m2, &ents2, &cap2) == 0);
    FUZZ_CHECK(mq_reader_left(&r2) == 0);
    check_same(&m, &m2);
    mq_buf_close(&b);
  }
  return 0;
}
