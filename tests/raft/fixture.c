/* The simulated cluster and its safety checker (see fixture.h). Checks,
 * after every event:
 *   election safety     at most one leader per term
 *   log matching        an (index, term) pair always has the same previous
 *                       term and the same bytes, in every log, forever
 *   leader completeness a new leader of term T holds every entry committed
 *                       in a term before T (§5.4: a candidate may win T
 *                       with votes given before a leader of T+1 committed)
 *   state machine safety every node applies the same entry at each index,
 *                       exactly once, in order; states agree index by index
 *   monotonicity        commit and applied never go back (per incarnation)
 *   one vote            a member votes for one candidate per term
 *   reads               a ReadIndex read sees every entry committed anywhere
 *                       before it began, and a state of the committed history
 *   membership          a change is only accepted once the leader has
 *                       committed in its term, and one at a time */
#include "fixture.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"
#include "util/err.h"

/* ---- a small map: three-word key -> two-word value ---------------------- */

struct fx_slot {
  uint64_t k[3], v[2];
  bool used;
};
struct fx_map {
  struct fx_slot *s;
  size_t cap, n;
};

static uint64_t mix(uint64_t h, uint64_t v) {
  h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
  h *= 0xff51afd7ed558ccdull;
  return h ^ (h >> 33);
}

static struct fx_slot *map_find(struct fx_map *m, const uint64_t k[3], bool add) {
  if (add && (m->n + 1) * 2 > m->cap) {
    struct fx_map old = *m;
    m->cap = m->cap ? m->cap * 2 : 1024;
    m->s = calloc(m->cap, sizeof(*m->s));
    assert(m->s);
    m->n = 0;
    for (size_t i = 0; i < old.cap; i++)
      if (old.s[i].used) {
        struct fx_slot *d = map_find(m, old.s[i].k, true);
        *d = old.s[i];
      }
    free(old.s);
  }
  if (!m->cap) return NULL;
  size_t i = mix(mix(mix(0, k[0]), k[1]), k[2]) & (m->cap - 1);
  for (;; i = (i + 1) & (m->cap - 1)) {
    struct fx_slot *s = &m->s[i];
    if (!s->used) {
      if (!add) return NULL;
      s->used = true;
      memcpy(s->k, k, sizeof(s->k));
      m->n++;
      return s;
    }
    if (!memcmp(s->k, k, sizeof(s->k))) return s;
  }
}

static void map_free(struct fx_map *m) {
  if (!m) return;
  free(m->s);
  free(m);
}

/* ---- basics ------------------------------------------------------------- */

uint64_t fx_rand(struct fx *f) {
  uint64_t z = (f->rng += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

void fx_note(struct fx *f, const char *fmt, ...) {
  char *line = f->trace[f->trace_n++ % FX_TRACE];
  int k = snprintf(line, 160, "t=%llu ", (unsigned long long)f->now);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line + k, 160 - (size_t)k, fmt, ap);
  va_end(ap);
  if (f->verbose) printf("  %s\n", line);
}

void fx_fail(struct fx *f, const char *fmt, ...) {
  if (f->failed) return;
  f->failed = true;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(f->why, sizeof(f->why), fmt, ap);
  va_end(ap);
}

void fx_print_trace(const struct fx *f) {
  unsigned n = f->trace_n < FX_TRACE ? f->trace_n : FX_TRACE;
  for (unsigned i = f->trace_n - n; i < f->trace_n; i++) printf("    %s\n", f->trace[i % FX_TRACE]);
}

static const char *mtype(uint32_t t) {
  static const char *n[] = {"?",         "APP",     "APP_RESP",     "VOTE",
                            "VOTE_RESP", "PREVOTE", "PREVOTE_RESP", "HEARTBEAT",
                            "HB_RESP",   "SNAP",    "SNAP_RESP",    "TIMEOUT_NOW"};
  return t <= MQ_RAFT_MSG_MAX_TYPE ? n[t] : "?";
}

static const char *rname(int role) {
  static const char *n[] = {"follower", "precandidate", "candidate", "leader"};
  return n[role];
}

static uint64_t key(struct mq_raft_member m) { return m.node << 40 ^ m.inc; }

static void node_start(struct fx *f, int i, uint64_t inc, const struct mq_raft_conf *initial) {
  struct fx_node *n = &f->nodes[i];
  struct mq_raft_options o = f->opt;
  o.group = 1;
  o.self.node = (uint64_t)i + 1;
  o.self.inc = inc;
  o.seed = fx_rand(f);
  memset(n, 0, sizeof(*n));
  int rc = mq_raft_create(&o, initial, &n->r);
  assert(rc == 0);
  (void)rc;
  n->alive = true;
  n->id = o.self;
  n->hash = 1;
}

void fx_init(struct fx *f, uint64_t seed, int voters, int spare,
             const struct mq_raft_options *tmpl) {
  memset(f, 0, sizeof(*f));
  f->rng = seed * 0x2545f4914f6cdd1dull + 1;
  f->n = voters + spare;
  assert(f->n <= FX_MAX_NODES);
  if (tmpl)
    f->opt = *tmpl;
  else
    mq_raft_options_default(&f->opt);
  f->prev = calloc(1, sizeof(*f->prev));
  f->votes = calloc(1, sizeof(*f->votes));
  struct mq_raft_conf c = {0};
  for (int i = 0; i < voters; i++) {
    c.m[c.n].id.node = (uint64_t)i + 1;
    c.m[c.n].id.inc = 1;
    c.m[c.n].role = MQ_RAFT_VOTER;
    c.n++;
  }
  for (int i = 0; i < f->n; i++) node_start(f, i, 1, i < voters ? &c : NULL);
}

void fx_close(struct fx *f) {
  for (int i = 0; i < f->n; i++)
    if (f->nodes[i].alive) mq_raft_destroy(f->nodes[i].r);
  for (size_t i = 0; i < f->nq; i++) free(f->q[i].bytes);
  free(f->q);
  free(f->scratch);
  map_free(f->prev);
  map_free(f->votes);
  free(f->leader_of);
  free(f->cterm);
  free(f->cdata);
  free(f->chain);
  free(f->cin);
  free(f->reads);
}

/* ---- checker ------------------------------------------------------------ */

static uint64_t data_hash(const struct mq_raft_entry *e) {
  uint64_t h = mix(e->type, e->len);
  for (uint32_t i = 0; i < e->len; i++) h = mix(h, e->data[i]);
  return h;
}

static void grow_committed(struct fx *f, uint64_t idx) {
  if (idx < f->n_committed) return;
  size_t cap = f->n_committed ? f->n_committed : 1024;
  while (cap <= idx) cap *= 2;
  f->cterm = realloc(f->cterm, cap * sizeof(uint64_t));
  f->cdata = realloc(f->cdata, cap * sizeof(uint64_t));
  f->chain = realloc(f->chain, cap * sizeof(uint64_t));
  f->cin = realloc(f->cin, cap * sizeof(uint64_t));
  assert(f->cterm && f->cdata && f->chain && f->cin);
  for (size_t i = f->n_committed; i < cap; i++)
    f->cterm[i] = f->cdata[i] = f->chain[i] = f->cin[i] = 0;
  f->n_committed = cap;
}

static void record_committed(struct fx *f, int i, const struct mq_raft_entry *e) {
  grow_committed(f, e->index);
  uint64_t dh = data_hash(e);
  if (!f->cterm[e->index]) {
    f->cterm[e->index] = e->term;
    f->cdata[e->index] = dh;
  } else if (f->cterm[e->index] != e->term || f->cdata[e->index] != dh) {
    fx_fail(
        f,
        "state machine safety: n%d commits index %llu term %llu, but term %llu was committed there",
        i + 1, (unsigned long long)e->index, (unsigned long long)e->term,
        (unsigned long long)f->cterm[e->index]);
  }
}

static void check_leader_complete(struct fx *f, int i, struct mq_raft_status *st) {
  for (uint64_t x = st->snap_index; x <= f->commit_max; x++) {
    if (x == 0 || x >= f->n_committed || !f->cterm[x] || f->cin[x] >= st->term) continue;
    if (x > st->last_index) {
      fx_fail(f, "leader completeness: n%d leads term %llu with last index %llu < committed %llu",
              i + 1, (unsigned long long)st->term, (unsigned long long)st->last_index,
              (unsigned long long)x);
      return;
    }
    if (mq_raft_term_at(f->nodes[i].r, x) != f->cterm[x]) {
      fx_fail(f,
              "leader completeness: n%d leads term %llu without committed entry %llu (term %llu)",
              i + 1, (unsigned long long)st->term, (unsigned long long)x,
              (unsigned long long)f->cterm[x]);
      return;
    }
  }
}

static void check_node(struct fx *f, int i) {
  struct fx_node *n = &f->nodes[i];
  struct mq_raft_status st;
  mq_raft_status(n->r, &st);
  if (st.commit < n->last_commit)
    fx_fail(f, "commit went back on n%d: %llu -> %llu", i + 1, (unsigned long long)n->last_commit,
            (unsigned long long)st.commit);
  if (st.applied < n->last_applied) fx_fail(f, "applied went back on n%d", i + 1);
  if (st.term < n->last_term) fx_fail(f, "term went back on n%d", i + 1);
  /* newly committed entries */
  for (uint64_t x = n->last_commit + 1; x <= st.commit; x++) {
    const struct mq_raft_entry *e = mq_raft_entry_at(n->r, x);
    if (e) record_committed(f, i, e);
    grow_committed(f, x);
    if (!f->cin[x]) f->cin[x] = st.term;
  }
  if (st.commit > f->commit_max) f->commit_max = st.commit;
  n->last_commit = st.commit;
  n->last_applied = st.applied;
  /* log matching over what changed */
  uint64_t from = mq_raft_log_changed_from(n->r);
  if (from != UINT64_MAX) {
    if (from < st.first_index) from = st.first_index;
    for (uint64_t x = from; x <= st.last_index; x++) {
      const struct mq_raft_entry *e = mq_raft_entry_at(n->r, x);
      uint64_t k[3] = {x, e->term, 0};
      uint64_t pt = mq_raft_term_at(n->r, x - 1), dh = data_hash(e);
      struct fx_slot *s = map_find(f->prev, k, true);
      if (!s->v[0] && !s->v[1]) {
        s->v[0] = pt + 1;
        s->v[1] = dh | 1;
      } else if (s->v[0] != pt + 1 || s->v[1] != (dh | 1)) {
        fx_fail(f,
                "log matching: n%d has (index %llu, term %llu) after term %llu; elsewhere after "
                "term %llu%s",
                i + 1, (unsigned long long)x, (unsigned long long)e->term, (unsigned long long)pt,
                (unsigned long long)(s->v[0] - 1), s->v[1] != (dh | 1) ? " with other bytes" : "");
        if (getenv("FX_DEBUG"))
          fprintf(stderr, "entry type %u len %u dh %llx seen %llx\n", e->type, e->len,
                  (unsigned long long)(dh | 1), (unsigned long long)s->v[1]);
      }
    }
  }
  /* one vote per member per term */
  if (st.voted) {
    uint64_t k[3] = {st.self.node, st.self.inc, st.term};
    struct fx_slot *s = map_find(f->votes, k, true);
    if (!s->v[0] && !s->v[1]) {
      s->v[0] = st.vote.node;
      s->v[1] = st.vote.inc;
    } else if (s->v[0] != st.vote.node || s->v[1] != st.vote.inc) {
      fx_fail(f, "double vote: n%d.%llu voted for n%llu.%llu and n%llu.%llu in term %llu", i + 1,
              (unsigned long long)st.self.inc, (unsigned long long)s->v[0],
              (unsigned long long)s->v[1], (unsigned long long)st.vote.node,
              (unsigned long long)st.vote.inc, (unsigned long long)st.term);
    }
  }
  /* one leader per term, and it holds every committed entry */
  if (st.role == MQ_RAFT_LEADER) {
    if (st.term >= f->n_leader_of) {
      size_t cap = f->n_leader_of ? f->n_leader_of : 64;
      while (cap <= st.term) cap *= 2;
      f->leader_of = realloc(f->leader_of, cap * sizeof(uint64_t));
      for (size_t x = f->n_leader_of; x < cap; x++) f->leader_of[x] = 0;
      f->n_leader_of = cap;
    }
    uint64_t me = key(st.self);
    if (!f->leader_of[st.term]) {
      f->leader_of[st.term] = me;
      f->n_elections++;
      fx_note(f, "n%d.%llu became leader of term %llu (last %llu, commit %llu)", i + 1,
              (unsigned long long)st.self.inc, (unsigned long long)st.term,
              (unsigned long long)st.last_index, (unsigned long long)st.commit);
      check_leader_complete(f, i, &st);
      if (f->on_leader) f->on_leader(f, i, f->on_leader_arg);
    } else if (f->leader_of[st.term] != me) {
      fx_fail(f, "election safety: two leaders in term %llu (n%d is one)",
              (unsigned long long)st.term, i + 1);
    }
  }
  n->last_role = st.role;
  n->last_term = st.term;
}

void fx_check(struct fx *f) {
  for (int i = 0; i < f->n; i++)
    if (f->nodes[i].alive) check_node(f, i);
}

/* ---- the state machine and ready handling ------------------------------- */

static void serve_reads(struct fx *f, int i) {
  struct fx_node *n = &f->nodes[i];
  for (size_t k = 0; k < f->n_reads; k++) {
    struct fx_read *q = &f->reads[k];
    if (q->done || q->node != i || q->inc != n->id.inc || !q->index) continue;
    if (n->applied < q->index) continue;
    q->done = true;
    f->n_reads_ok++;
    if (n->applied < q->min_index)
      fx_fail(f,
              "stale read %llu at n%d: state at %llu misses index %llu committed before it began",
              (unsigned long long)q->id, i + 1, (unsigned long long)n->applied,
              (unsigned long long)q->min_index);
    else if (n->applied < f->n_committed && f->chain[n->applied] && f->chain[n->applied] != n->hash)
      fx_fail(f, "read %llu at n%d sees a state not in the committed history",
              (unsigned long long)q->id, i + 1);
    fx_note(f, "read %llu served by n%d at %llu", (unsigned long long)q->id, i + 1,
            (unsigned long long)n->applied);
  }
  size_t w = 0; /* forget finished reads */
  for (size_t k = 0; k < f->n_reads; k++)
    if (!f->reads[k].done) f->reads[w++] = f->reads[k];
  f->n_reads = w;
}

static void enqueue(struct fx *f, int from, const struct mq_raft_msg *m) {
  if (m->to.node < 1 || m->to.node > (uint64_t)f->n) {
    fx_fail(f, "message to unknown node %llu", (unsigned long long)m->to.node);
    return;
  }
  if (m->type == MQ_RAFT_MSG_SNAP) {
    f->snap_bytes_sent += m->len;
    f->snap_total = m->hint;
  }
  int copies = 1;
  if (f->loss_pm && fx_rand(f) % 1000 < f->loss_pm)
    copies = 0;
  else if (f->dup_pm && fx_rand(f) % 1000 < f->dup_pm)
    copies = 2;
  for (int c = 0; c < copies; c++) {
    struct mq_buf b;
    mq_buf_init(&b);
    mq_raft_msg_encode(&b, m);
    assert(!b.err);
    if (f->nq == f->capq) {
      f->capq = f->capq ? f->capq * 2 : 256;
      f->q = realloc(f->q, f->capq * sizeof(*f->q));
      assert(f->q);
    }
    struct fx_msg *q = &f->q[f->nq++];
    q->at = f->now + (f->max_delay ? fx_rand(f) % (f->max_delay + 1) : 0);
    q->from = from;
    q->to = (int)m->to.node - 1;
    q->bytes = mq_buf_steal(&b, &q->len);
  }
}

static uint64_t sm_mix(uint64_t h, const struct mq_raft_entry *e) {
  return mix(mix(h, e->index), data_hash(e));
}

static void apply(struct fx *f, int i, const struct mq_raft_entry *e) {
  struct fx_node *n = &f->nodes[i];
  if (e->index != n->applied + 1) {
    fx_fail(f, "state machine safety: n%d applies index %llu after %llu (twice or skipped)", i + 1,
            (unsigned long long)e->index, (unsigned long long)n->applied);
    return;
  }
  record_committed(f, i, e);
  if (e->type == MQ_RAFT_ENTRY_NORMAL) {
    n->hash = sm_mix(n->hash, e);
    n->count++;
  }
  n->applied = e->index;
  f->n_applied++;
  grow_committed(f, e->index);
  if (!f->chain[e->index])
    f->chain[e->index] = n->hash | 1;
  else if (f->chain[e->index] != (n->hash | 1))
    fx_fail(f, "state machine safety: n%d's state after index %llu differs", i + 1,
            (unsigned long long)e->index);
  n->hash |= 1;
  if (e->type == MQ_RAFT_ENTRY_NORMAL && e->len == 16) {
    uint64_t who;
    memcpy(&who, e->data + 8, 8);
    if (who == key(n->id) && e->index > f->acked_max) f->acked_max = e->index;
  }
}

void fx_process(struct fx *f, int i) {
  struct fx_node *n = &f->nodes[i];
  if (!n->alive) return;
  while (!f->failed && mq_raft_has_ready(n->r)) {
    struct mq_raft_ready rd;
    mq_raft_ready(n->r, &rd);
    void *taken = NULL;
    if (rd.snapshot) {
      /* Every other install takes the bytes out of the core, as an agent
       * decoding them off its loop does: the core then holds none and must
       * ask for them (rd.snapshot_at) when a follower needs them. */
      if (rd.snapshot->index % 2) taken = mq_raft_snapshot_take(n->r);
      if (rd.snapshot->index % 2 && !taken) {
        fx_fail(f, "n%d could not take the bytes of its snapshot", i + 1);
        return;
      }
      struct mq_reader r;
      mq_reader_init(&r, rd.snapshot->data, rd.snapshot->len);
      uint64_t idx = mq_get_u64(&r), h = mq_get_u64(&r), cnt = mq_get_u64(&r);
      if (r.err || idx != rd.snapshot->index) {
        fx_fail(f, "n%d got a snapshot that does not match its index", i + 1);
        free(taken);
        return;
      }
      if (idx < f->n_committed && f->chain[idx] && f->chain[idx] != h)
        fx_fail(f, "n%d installs a snapshot whose state differs at %llu", i + 1,
                (unsigned long long)idx);
      n->applied = idx;
      n->hash = h;
      n->count = cnt;
      f->n_snap_installs++;
      fx_note(f, "n%d installs snapshot at %llu term %llu", i + 1, (unsigned long long)idx,
              (unsigned long long)rd.snapshot->term);
    }
    if (rd.role_changed && rd.role != MQ_RAFT_LEADER) {
      for (size_t k = 0; k < f->n_reads; k++) /* the host fails such reads */
        if (f->reads[k].node == i && !f->reads[k].index) f->reads[k].done = true;
    }
    for (size_t k = 0; k < rd.n_msgs; k++) enqueue(f, i, &rd.msgs[k]);
    free(taken);
    for (size_t k = 0; k < rd.n_committed && !f->failed; k++) apply(f, i, &rd.committed[k]);
    for (size_t k = 0; k < rd.n_reads; k++)
      for (size_t j = 0; j < f->n_reads; j++)
        if (f->reads[j].id == rd.reads[k].ctx) f->reads[j].index = rd.reads[k].index;
    serve_reads(f, i);
    mq_raft_advance(n->r, &rd);
    if (rd.snapshot_at && !f->failed) {
      if (n->applied != rd.snapshot_at) {
        fx_fail(f, "n%d asked to snapshot at %llu but applied %llu", i + 1,
                (unsigned long long)rd.snapshot_at, (unsigned long long)n->applied);
        return;
      }
      struct mq_buf b;
      mq_buf_init(&b);
      mq_buf_put_u64(&b, n->applied);
      mq_buf_put_u64(&b, n->hash);
      mq_buf_put_u64(&b, n->count);
      int rc = mq_raft_compact(n->r, n->applied, b.data, b.len);
      mq_buf_close(&b);
      if (rc) fx_fail(f, "n%d compact: %s", i + 1, mq_strerror(rc));
    }
    if (rd.compact_at && !f->failed) {
      int rc = mq_raft_compact(n->r, rd.compact_at, NULL, 0);
      if (rc)
        fx_fail(f, "n%d compact to %llu without bytes (applied %llu): %s", i + 1,
                (unsigned long long)rd.compact_at, (unsigned long long)n->applied, mq_strerror(rc));
    }
    check_node(f, i);
  }
}

void fx_process_all(struct fx *f) {
  for (int i = 0; i < f->n; i++) fx_process(f, i);
}

/* ---- network ------------------------------------------------------------ */

static void deliver(struct fx *f, size_t k) {
  struct fx_msg q = f->q[k];
  memmove(&f->q[k], &f->q[k + 1], (f->nq - k - 1) * sizeof(*f->q));
  f->nq--;
  struct fx_node *n = &f->nodes[q.to];
  if (!n->alive || f->cut[q.from][q.to]) {
    free(q.bytes);
    return;
  }
  struct mq_reader rd;
  mq_reader_init(&rd, q.bytes, q.len);
  struct mq_raft_msg m;
  int rc = mq_raft_msg_decode(&rd, &m, &f->scratch, &f->scratch_cap);
  if (rc || mq_reader_left(&rd)) {
    fx_fail(f, "codec: cannot decode our own message (%s)", mq_strerror(rc));
    free(q.bytes);
    return;
  }
  fx_note(f, "%s n%llu.%llu->n%llu.%llu term=%llu idx=%llu lt=%llu c=%llu n=%zu%s%s", mtype(m.type),
          (unsigned long long)m.from.node, (unsigned long long)m.from.inc,
          (unsigned long long)m.to.node, (unsigned long long)m.to.inc, (unsigned long long)m.term,
          (unsigned long long)m.index, (unsigned long long)m.log_term, (unsigned long long)m.commit,
          m.n_entries, m.flags & MQ_RAFT_FLAG_REJECT ? " reject" : "",
          m.type == MQ_RAFT_MSG_SNAP ? " (chunk)" : "");
  rc = mq_raft_step(n->r, &m);
  if (rc) fx_fail(f, "n%d rejects a well-formed message: %s", q.to + 1, mq_strerror(rc));
  free(q.bytes);
  f->n_delivered++;
  fx_process(f, q.to);
  check_node(f, q.to);
}

/* Whether q[k] may arrive now: it is due and, on a fifo network, nothing
 * sent before it on its link is still on the way. */
static bool deliverable(const struct fx *f, size_t k) {
  if (f->q[k].at > f->now) return false;
  for (size_t j = 0; f->fifo && j < k; j++)
    if (f->q[j].from == f->q[k].from && f->q[j].to == f->q[k].to) return false;
  return true;
}

size_t fx_deliver_due(struct fx *f) {
  size_t n = 0;
  while (!f->failed) {
    size_t due = 0;
    for (size_t k = 0; k < f->nq; k++) due += deliverable(f, k);
    if (!due) break;
    size_t pick = (size_t)(fx_rand(f) % due);
    for (size_t k = 0; k < f->nq; k++) {
      if (!deliverable(f, k)) continue;
      if (pick-- == 0) {
        deliver(f, k);
        break;
      }
    }
    n++;
  }
  return n;
}

bool fx_deliver_one(struct fx *f) {
  if (!f->nq || f->failed) return false;
  deliver(f, 0);
  return true;
}

void fx_deliver_all(struct fx *f) {
  fx_process_all(f);
  while (f->nq && !f->failed) deliver(f, 0);
}

void fx_drop_all(struct fx *f) {
  for (size_t i = 0; i < f->nq; i++) free(f->q[i].bytes);
  f->nq = 0;
}

void fx_isolate(struct fx *f, int i) {
  for (int j = 0; j < f->n; j++)
    if (j != i) f->cut[i][j] = f->cut[j][i] = true;
  fx_note(f, "isolate n%d", i + 1);
}

void fx_heal(struct fx *f) {
  memset(f->cut, 0, sizeof(f->cut));
  fx_note(f, "heal");
}

void fx_tick(struct fx *f) {
  f->now++;
  for (int i = 0; i < f->n; i++) {
    struct fx_node *n = &f->nodes[i];
    if (!n->alive && n->down_until && n->down_until <= f->now) fx_restart(f, i);
  }
  for (int i = 0; i < f->n; i++)
    if (f->nodes[i].alive) {
      mq_raft_tick(f->nodes[i].r);
      mq_raft_flush_commit(f->nodes[i].r); /* as a host does (lazy_commit) */
    }
  fx_process_all(f);
  fx_check(f);
}

bool fx_run_until(struct fx *f, int max_ticks, bool (*pred)(struct fx *f, void *arg), void *arg) {
  for (int t = 0; t <= max_ticks && !f->failed; t++) {
    fx_deliver_due(f);
    if (pred(f, arg)) return true;
    fx_tick(f);
  }
  return false;
}

/* ---- client actions ----------------------------------------------------- */

int fx_propose(struct fx *f, int i, uint64_t *index) {
  struct fx_node *n = &f->nodes[i];
  if (!n->alive) return MQ_EUNAVAIL;
  uint8_t cmd[16];
  uint64_t id = ++f->next_cmd, who = key(n->id);
  memcpy(cmd, &id, 8);
  memcpy(cmd + 8, &who, 8);
  int rc = mq_raft_propose(n->r, cmd, sizeof(cmd), NULL, index);
  if (rc == 0) {
    fx_process(f, i);
    check_node(f, i);
  }
  return rc;
}

int fx_read(struct fx *f, int i, uint64_t *read_id) {
  struct fx_node *n = &f->nodes[i];
  if (!n->alive) return MQ_EUNAVAIL;
  uint64_t id = ++f->next_read;
  int rc = mq_raft_read_index(n->r, id);
  if (rc) return rc;
  if (f->n_reads == f->cap_reads) {
    f->cap_reads = f->cap_reads ? f->cap_reads * 2 : 64;
    f->reads = realloc(f->reads, f->cap_reads * sizeof(*f->reads));
    assert(f->reads);
  }
  struct fx_read *q = &f->reads[f->n_reads++];
  memset(q, 0, sizeof(*q));
  q->id = id;
  q->node = i;
  q->inc = n->id.inc;
  q->min_index = f->commit_max;
  if (read_id) *read_id = id;
  fx_process(f, i);
  return 0;
}

bool fx_read_done(const struct fx *f, uint64_t read_id, uint64_t *index) {
  for (size_t k = 0; k < f->n_reads; k++)
    if (f->reads[k].id == read_id) return false;
  (void)index;
  return read_id <= f->next_read;
}

int fx_change(struct fx *f, int i, int op, struct mq_raft_member m) {
  struct fx_node *n = &f->nodes[i];
  if (!n->alive) return MQ_EUNAVAIL;
  uint64_t index;
  int rc = mq_raft_change_membership(n->r, op, m, &index);
  if (rc) return rc;
  struct mq_raft_status st;
  mq_raft_status(n->r, &st);
  fx_note(f, "n%d proposes %s n%llu.%llu at %llu", i + 1,
          op == MQ_RAFT_ADD_LEARNER ? "add-learner"
          : op == MQ_RAFT_PROMOTE   ? "promote"
                                    : "remove",
          (unsigned long long)m.node, (unsigned long long)m.inc, (unsigned long long)index);
  if (mq_raft_term_at(n->r, st.commit) != st.term)
    fx_fail(f, "membership: n%d changed the configuration before committing in term %llu", i + 1,
            (unsigned long long)st.term);
  int pending = 0;
  for (uint64_t x = st.commit + 1; x <= st.last_index; x++)
    pending += mq_raft_entry_at(n->r, x)->type == MQ_RAFT_ENTRY_CONF;
  if (pending > 1) fx_fail(f, "membership: n%d has %d uncommitted changes", i + 1, pending);
  fx_process(f, i);
  return 0;
}

/* ---- crashes ------------------------------------------------------------ */

void fx_crash(struct fx *f, int i) {
  struct fx_node *n = &f->nodes[i];
  if (!n->alive) return;
  fx_note(f, "crash n%d.%llu (memory lost)", i + 1, (unsigned long long)n->id.inc);
  mq_raft_destroy(n->r);
  n->r = NULL;
  n->alive = false;
  /* A killed process's connections close, and its peers usually see it
   * (a crashed host sends nothing): they stop waiting for it as leader.
   * A partition closes nothing (the link goes silent, and the transport
   * notices later than an election timeout), so fx_isolate tells nobody. */
  for (int j = 0; j < f->n; j++)
    if (j != i && f->nodes[j].alive && fx_rand(f) % 4)
      mq_raft_leader_unreachable(f->nodes[j].r, n->id.node);
  for (size_t k = 0; k < f->n_reads; k++)
    if (f->reads[k].node == i) f->reads[k].done = true;
}

void fx_restart(struct fx *f, int i) {
  struct fx_node *n = &f->nodes[i];
  assert(!n->alive);
  uint64_t inc = mq_raft_incarnation_next(n->id.inc, 0);
  node_start(f, i, inc, NULL);
  fx_note(f, "restart n%d as incarnation %llu", i + 1, (unsigned long long)inc);
}

int fx_leader(const struct fx *f) {
  int best = -1;
  uint64_t term = 0;
  for (int i = 0; i < f->n; i++) {
    if (!f->nodes[i].alive) continue;
    struct mq_raft_status st;
    mq_raft_status(f->nodes[i].r, &st);
    if (st.role == MQ_RAFT_LEADER && st.term >= term) {
      best = i;
      term = st.term;
    }
  }
  return best;
}

int fx_role(const struct fx *f, int i) {
  struct mq_raft_status st;
  if (!f->nodes[i].alive) return -1;
  mq_raft_status(f->nodes[i].r, &st);
  return st.role;
}

uint64_t fx_commit(const struct fx *f, int i) {
  struct mq_raft_status st;
  mq_raft_status(f->nodes[i].r, &st);
  return st.commit;
}

uint64_t fx_term(const struct fx *f, int i) {
  struct mq_raft_status st;
  mq_raft_status(f->nodes[i].r, &st);
  return st.term;
}

const char *fx_role_name(int role) { return role < 0 ? "down" : rname(role); }
