/* The state digest: what replicas compare to prove they hold the same
 * contents. Each KV record and each log entry hashes on its own (FNV-1a
 * over fixed-width little-endian fields, then a full-avalanche finaliser)
 * and the hashes are added, so neither insertion order nor memory layout
 * matters; the revision is folded in at the end. */
#include "store/sm_internal.h"

#include "store/hash.h"

static uint64_t fnv_i64(uint64_t h, int64_t v) {
  uint8_t b[8];
  for (int i = 0; i < 8; i++)
    b[i] = (uint8_t)((uint64_t)v >> (8 * i));
  return mq_fnv64(h, b, 8);
}

/* Length-prefixed, so ("ab","c") and ("a","bc") differ. */
static uint64_t fnv_bytes(uint64_t h, const void *p, size_t n) {
  return mq_fnv64(fnv_i64(h, (int64_t)n), p, n);
}

uint64_t mq_sm_digest(const struct mq_sm *sm) {
  const struct mq_sm_state *s = &sm->s;
  uint64_t sum = 0;
  struct mq_btiter it;
  mq_kvmap_first(&s->kv, &it);
  for (const struct mq_kvrec *r; (r = mq_btiter_rec(&it)); mq_btiter_next(&it)) {
    uint64_t h = mq_fnv64(MQ_FNV64_INIT, "K", 1);
    h = fnv_bytes(h, mq_kvrec_key(r), r->key_len);
    h = fnv_bytes(h, r->value, r->value_len);
    h = fnv_i64(h, r->create_revision);
    h = fnv_i64(h, r->mod_revision);
    h = fnv_i64(h, r->version);
    h = fnv_i64(h, r->expires_at);
    sum += mq_mix64(h);
  }
  for (size_t i = 0; i < s->topics.n; i++) {
    const struct mq_topic *t = s->topics.v[i];
    uint64_t th = fnv_bytes(mq_fnv64(MQ_FNV64_INIT, "T", 1), t->name, t->name_len);
    sum += mq_mix64(fnv_i64(fnv_i64(th, t->start), mq_topic_end(t)));
    for (int64_t o = t->start; o < mq_topic_end(t); o++) {
      const struct mq_logent *e = mq_topic_at(t, o);
      uint64_t h = fnv_i64(th ^ 0x45, o); /* "E" */
      h = fnv_bytes(h, mq_logent_key(e), e->key_len);
      h = fnv_bytes(h, mq_logent_value(e), e->value_len);
      h = fnv_i64(h, e->timestamp);
      sum += mq_mix64(h);
    }
  }
  return mq_mix64(sum ^ mq_mix64((uint64_t)s->revision + 0x9e3779b97f4a7c15ULL));
}
