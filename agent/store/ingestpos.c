/* Kafka ingestion positions: a sorted array. */
#include "store/ingestpos.h"

#include "store/kv.h"
#include "util/err.h"

#include <stdlib.h>
#include <string.h>

void mq_ingestpos_init(struct mq_ingestpos_set *s) { memset(s, 0, sizeof *s); }

void mq_ingestpos_close(struct mq_ingestpos_set *s) {
  for (size_t i = 0; i < s->n; i++)
    free(s->v[i].source);
  free(s->v);
  memset(s, 0, sizeof *s);
}

static int cmp(const struct mq_ingestpos *p, const char *source, size_t len, int32_t part) {
  int c = mq_kv_keycmp(p->source, p->source_len, source, len);
  if (c)
    return c;
  return (p->partition > part) - (p->partition < part);
}

static size_t lower_bound(const struct mq_ingestpos_set *s, const char *source, size_t len,
                          int32_t part) {
  size_t lo = 0, hi = s->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (cmp(&s->v[mid], source, len, part) < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

const struct mq_ingestpos *mq_ingestpos_find(const struct mq_ingestpos_set *s, const char *source,
                                             size_t len, int32_t partition) {
  size_t i = lower_bound(s, source, len, partition);
  if (i < s->n && cmp(&s->v[i], source, len, partition) == 0)
    return &s->v[i];
  return NULL;
}

int mq_ingestpos_set(struct mq_ingestpos_set *s, const char *source, size_t len, int32_t partition,
                     int64_t offset) {
  size_t i = lower_bound(s, source, len, partition);
  if (i < s->n && cmp(&s->v[i], source, len, partition) == 0) {
    s->v[i].offset = offset;
    return 0;
  }
  if (s->n == s->cap) {
    size_t cap = s->cap ? s->cap * 2 : 4;
    struct mq_ingestpos *v = realloc(s->v, cap * sizeof *v);
    if (!v)
      return MQ_ENOMEM;
    s->v = v;
    s->cap = cap;
  }
  char *src = malloc(len + 1);
  if (!src)
    return MQ_ENOMEM;
  if (len)
    memcpy(src, source, len);
  src[len] = '\0';
  memmove(s->v + i + 1, s->v + i, (s->n - i) * sizeof *s->v);
  s->v[i] = (struct mq_ingestpos){src, len, partition, offset};
  s->n++;
  return 0;
}
