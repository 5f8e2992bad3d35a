/* Watching shards this agent does not hold (DESIGN.md section 8: "the
 * agent serves subscriptions for shards it does not hold by following them
 * from a replica").
 *
 * Follower side: while some local watch needs a shard held elsewhere, the
 * core loop keeps one long poll in flight to a replica of it (its leader if
 * known): "events of shard S after revision R". Each answer is dispatched to
 * the local watches like a locally applied event, so the per-watch revision
 * marks keep the no-gap, no-duplicate promise; the next poll asks from the
 * last revision received. A first poll "from now" returns only the shard's
 * current revision, which becomes the starting mark of watches that named
 * no revision for the shard.
 *
 * Replica side: a poll is answered at once from the shard's retained event
 * history if it has newer events; otherwise it is parked until the shard
 * applies an event or the poll's wait ends, then answered (empty if
 * nothing happened). A revision no longer retained is answered
 * MQ_ECOMPACTED, and the follower ends the watches of that shard with it.
 *
 * Poll: [CALL_WATCH][u32 shard][u64 after (-1: from now)][u32 max][u32 wait ms]
 * Answer: [u64 current revision][varint n][event]*n */
#include "cluster/internal.h"
#include "util/log.h"

#include <stdlib.h>
#include <string.h>

#define POLL_WAIT_MS 1000
#define POLL_MAX_EVENTS 1000

struct parked_poll {
  struct parked_poll *next;
  struct mq_peer_call_ctx *ctx;
  int32_t shard;
  int64_t after;
  uint32_t max;
  int64_t until_ms;
};

/* ------------------------------------------------------------------------ */
/* Replica side */

struct collect {
  struct mq_buf *b;
  uint32_t max, n;
};

static int collect_one(void *arg, const struct mq_event *ev) {
  struct collect *c = arg;
  if (c->n >= c->max)
    return 1;
  reqcodec_encode_event(c->b, ev);
  c->n++;
  return 0;
}

/* Answers a poll if there is something to say; returns false to park it. */
static bool answer_poll(struct mq_node *n, struct mq_peer_call_ctx *ctx, int32_t shard,
                        int64_t after, uint32_t max, bool must) {
  struct shard *s = &n->shards[shard];
  struct mq_status st;
  if (!s->sm) {
    mq_status_set(&st, MQ_EUNAVAIL, "shard %d is not held by %s", shard, n->cfg->node_id);
    node_reply(n, ctx, MQ_EUNAVAIL, &st, NULL, 0);
    return true;
  }
  int64_t cur = mq_sm_revision(s->sm);
  struct mq_buf events;
  mq_buf_init(&events);
  struct collect c = {&events, max, 0};
  if (after != FOLLOW_FROM_NOW && after < cur) {
    if (mq_sm_history(s->sm, after, collect_one, &c) == MQ_ECOMPACTED) {
      mq_buf_close(&events);
      mq_status_set(&st, MQ_ECOMPACTED,
                    "revision %lld of shard %d is compacted at %s; read the current state "
                    "(Scan) and watch from revision %lld",
                    (long long)after, shard, n->cfg->node_id, (long long)cur);
      node_reply(n, ctx, MQ_ECOMPACTED, &st, NULL, 0);
      return true;
    }
  }
  if (!c.n && !must && after != FOLLOW_FROM_NOW) {
    mq_buf_close(&events);
    return false;
  }
  struct mq_buf b;
  mq_buf_init(&b);
  mq_buf_put_u64(&b, (uint64_t)cur);
  mq_buf_put_varint(&b, c.n);
  mq_buf_put(&b, events.data, events.len);
  if (b.err || events.err) {
    mq_status_set(&st, MQ_ENOMEM, "out of memory encoding watch events");
    node_reply(n, ctx, MQ_ENOMEM, &st, NULL, 0);
  } else {
    node_reply(n, ctx, 0, NULL, b.data, b.len);
  }
  mq_buf_close(&b);
  mq_buf_close(&events);
  return true;
}

void follow_on_poll_call(struct mq_node *n, struct net_mail *nm) {
  struct mq_reader rd;
  mq_reader_init(&rd, nm->data, nm->len);
  mq_get_u8(&rd);
  int32_t shard = (int32_t)mq_get_u32(&rd);
  int64_t after = (int64_t)mq_get_u64(&rd);
  uint32_t max = mq_get_u32(&rd);
  uint32_t wait_ms = mq_get_u32(&rd);
  if (rd.err || shard < 0 || shard >= n->n_shards || after < FOLLOW_FROM_NOW || !max ||
      max > 100000 || wait_ms > 60000) {
    struct mq_status st;
    mq_status_set(&st, MQ_EINVAL, "malformed watch poll");
    node_reply(n, nm->ctx, MQ_EINVAL, &st, NULL, 0);
    free(nm);
    return;
  }
  if (!answer_poll(n, nm->ctx, shard, after, max, false)) {
    struct parked_poll *p = malloc(sizeof *p);
    if (!p) {
      answer_poll(n, nm->ctx, shard, after, max, true);
    } else {
      *p = (struct parked_poll){n->parked, nm->ctx, shard, after, max, node_now(n) + wait_ms};
      n->parked = p;
    }
  }
  free(nm);
}

/* The shard applied an event (or was restored): answer its parked polls. */
void follow_on_event(struct mq_node *n, struct shard *s) {
  struct parked_poll **pp = &n->parked;
  while (*pp) {
    struct parked_poll *p = *pp;
    if (p->shard == s->id && answer_poll(n, p->ctx, p->shard, p->after, p->max, false)) {
      *pp = p->next;
      free(p);
    } else {
      pp = &p->next;
    }
  }
}

static void expire_parked(struct mq_node *n, int64_t now) {
  struct parked_poll **pp = &n->parked;
  while (*pp) {
    struct parked_poll *p = *pp;
    if (p->until_ms <= now || !n->shards[p->shard].sm) {
      answer_poll(n, p->ctx, p->shard, p->after, p->max, true);
      *pp = p->next;
      free(p);
    } else {
      pp = &p->next;
    }
  }
}

void follow_fail_parked(struct mq_node *n) {
  struct mq_status st;
  mq_status_set(&st, MQ_EUNAVAIL, "agent is shutting down");
  while (n->parked) {
    struct parked_poll *p = n->parked;
    n->parked = p->next;
    node_reply(n, p->ctx, MQ_EUNAVAIL, &st, NULL, 0);
    free(p);
  }
}

/* ------------------------------------------------------------------------ */
/* Follower side */

struct poll_ctx {
  struct mq_node *n;
  int32_t shard;
};

static void poll_done(void *arg, int rc, const struct mq_status *st, const uint8_t *reply,
                      size_t len) {
  struct poll_ctx *pc = arg;
  struct mq_node *n = pc->n;
  struct net_mail *nm = net_mail_reply(TAG_FOLLOW, rc, st, reply, len);
  if (nm) {
    nm->shard = pc->shard;
    if (mq_mailbox_push(&n->mailbox, &nm->mail))
      free(nm);
  }
  free(pc);
}

static void poll_failed(struct mq_node *n, struct shard *s) {
  s->follow_polling = false;
  s->follow_attempts++;
  int64_t backoff = 50;
  for (uint32_t i = 1; i < s->follow_attempts && backoff < 1000; i++)
    backoff *= 2;
  s->follow_retry_at_ms = node_now(n) + backoff;
}

void follow_on_reply(struct mq_node *n, struct net_mail *nm) {
  struct shard *s = &n->shards[nm->shard];
  if (nm->rc == MQ_ECOMPACTED) {
    s->follow_polling = false;
    s->follow_rev = FOLLOW_FROM_NOW;
    mq_watch_end_shard(n, s->id, MQ_ECOMPACTED, nm->st.msg);
    free(nm);
    return;
  }
  if (nm->rc || s->sm) {
    if (nm->rc)
      poll_failed(n, s);
    else
      s->follow_polling = false; /* held here now: local events take over */
    free(nm);
    return;
  }
  struct mq_reader rd;
  mq_reader_init(&rd, nm->data, nm->len);
  int64_t cur = (int64_t)mq_get_u64(&rd);
  uint64_t count = mq_get_varint(&rd);
  if (rd.err) {
    poll_failed(n, s);
    free(nm);
    return;
  }
  /* Watches that named no revision start at the replica's "now". */
  mq_watch_follow_started(n, s->id, cur);
  if (s->follow_rev == FOLLOW_FROM_NOW)
    s->follow_rev = cur;
  for (uint64_t i = 0; i < count; i++) {
    struct mq_event ev;
    if (reqcodec_decode_event(&rd, &ev) || ev.shard != s->id)
      break;
    mq_watch_dispatch(n, &ev);
    if (ev.revision > s->follow_rev)
      s->follow_rev = ev.revision;
  }
  s->follow_polling = false;
  s->follow_attempts = 0;
  free(nm);
}

static struct member *poll_target(struct mq_node *n, struct shard *s) {
  if (s->hint_leader[0]) {
    struct member *m = member_by_id(n, s->hint_leader);
    if (m && !m->self && m->up && (s->follow_attempts % 2) == 0)
      return m;
  }
  struct member *want[8];
  size_t k = members_placement(n, s->id, want, 8);
  for (size_t i = 0; i < k; i++) {
    struct member *m = want[(i + s->follow_attempts) % k];
    if (!m->self && m->up && m->addr[0])
      return m;
  }
  return NULL;
}

void follow_tick(struct mq_node *n) {
  int64_t now = node_now(n);
  expire_parked(n, now);
  if (!n->peer)
    return;
  for (int i = 0; i < n->n_shards; i++) {
    struct shard *s = &n->shards[i];
    if (s->sm || s->follow_polling || now < s->follow_retry_at_ms)
      continue;
    int64_t min = mq_watch_min_rev(n, s->id);
    if (min == INT64_MAX) {
      s->follow_rev = FOLLOW_FROM_NOW; /* nobody watches it */
      continue;
    }
    int64_t after = s->follow_rev;
    if (after == FOLLOW_FROM_NOW || (min != FOLLOW_FROM_NOW && min < after))
      after = min;
    struct member *to = poll_target(n, s);
    struct poll_ctx *pc = to ? malloc(sizeof *pc) : NULL;
    if (!pc) {
      poll_failed(n, s);
      continue;
    }
    pc->n = n;
    pc->shard = s->id;
    uint8_t body[1 + 4 + 8 + 4 + 4];
    struct mq_buf b = {body, 0, sizeof body, 0};
    mq_buf_put_u8(&b, CALL_WATCH);
    mq_buf_put_u32(&b, (uint32_t)s->id);
    mq_buf_put_u64(&b, (uint64_t)after);
    mq_buf_put_u32(&b, POLL_MAX_EVENTS);
    mq_buf_put_u32(&b, POLL_WAIT_MS);
    if (n->peer->call(n->peer, to->addr, body, b.len, now + POLL_WAIT_MS + 2000, poll_done, pc)) {
      free(pc);
      poll_failed(n, s);
      continue;
    }
    s->follow_polling = true;
  }
}
