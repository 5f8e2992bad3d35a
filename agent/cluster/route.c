/* Routing: where a request runs.
 *
 * A request for one shard runs at this agent's replica when it leads the
 * shard (or when a SERIALIZABLE read finds a local replica); otherwise it is
 * forwarded to the leader over the peer transport and the answer relayed.
 * An agent that gets a forwarded request but does not lead the shard answers
 * NOT_LEADER with its idea of the leader, and the sender tries again there.
 * With no leader known, the request waits and is routed again with backoff,
 * until its deadline: then it fails UNAVAILABLE rather than hang. Writes get
 * a request id (this agent's client id and a sequence number) before their
 * first attempt, so every retry is applied at most once.
 *
 * A Scan wider than one user, or a Read of every partition, fans out one
 * sub-request per shard (scatter.c). */
#include "cluster/internal.h"
#include "util/log.h"

#include <stdlib.h>
#include <string.h>

#define DEFAULT_DEADLINE_MS 5000
#define DEADLINE_MARGIN_MS 50
/* A forwarded attempt gives up this long before the request's deadline, so
 * the agent can still answer UNAVAILABLE in time, and after at most
 * ATTEMPT_MS, so a dead link is abandoned for a retry elsewhere. */
#define FORWARD_MARGIN_MS 150
#define ATTEMPT_MS 1000

static void forward(struct mq_node *n, struct mq_req *r, struct member *to);

/* The member that leads s as far as this agent knows, or NULL. */
static struct member *leader_of(struct mq_node *n, struct shard *s, const struct mq_req *r) {
  if (s->raft && s->leader.node) {
    struct member *m = member_by_key(n, s->leader.node);
    if (m && (m->self || m->inc == 0 || m->inc == s->leader.inc))
      return m;
  }
  if (r && r->p_leader_hint[0]) {
    struct member *m = member_by_id(n, r->p_leader_hint);
    if (m)
      return m;
  }
  if (s->hint_leader[0])
    return member_by_id(n, s->hint_leader);
  return NULL;
}

/* Some reachable replica of s per placement, to ask who leads. */
static struct member *any_replica(struct mq_node *n, struct shard *s, uint32_t attempt) {
  struct member *want[8];
  size_t k = members_placement(n, s->id, want, 8);
  for (size_t i = 0; i < k; i++) {
    struct member *m = want[(i + attempt) % k];
    if (!m->self && m->up && m->addr[0])
      return m;
  }
  return NULL;
}

static void answer_not_leader(struct mq_node *n, struct shard *s, struct mq_req *r) {
  struct member *l = leader_of(n, s, NULL);
  if (l && !l->self) {
    snprintf(r->p_leader_hint, sizeof r->p_leader_hint, "%s", l->id);
    mq_status_set(&r->status, MQ_ENOTLEADER, "shard %d is led by %s", s->id, l->id);
  } else {
    mq_status_set(&r->status, MQ_EUNAVAIL, "shard %d has no leader at %s yet", s->id,
                  n->cfg->node_id);
  }
  mq_req_complete(n, r);
}

void route_request(struct mq_node *n, struct mq_req *r) {
  int64_t now = node_now(n);
  if (!r->deadline_ms)
    r->deadline_ms = now + DEFAULT_DEADLINE_MS;
  if (!(r->p_flags & REQ_VALIDATED)) {
    if (exec_validate(n, r)) {
      mq_req_complete(n, r);
      return;
    }
    r->p_flags |= REQ_VALIDATED;
  }
  if (now > r->deadline_ms) {
    mq_status_set(&r->status, MQ_ETIMEDOUT, "deadline passed before the request was served");
    mq_req_complete(n, r);
    return;
  }
  if (r->type == MQ_REQ_STATUS || r->type == MQ_REQ_RECOVER) {
    if (r->type == MQ_REQ_STATUS)
      exec_status(n, r);
    else
      exec_recover(n, r);
    mq_req_complete(n, r);
    return;
  }
  int32_t sh = exec_shard_of(n, r);
  if (sh < 0) {
    route_scatter(n, r);
    return;
  }
  struct shard *s = &n->shards[sh];
#if MQ_CLUSTER_BUG(1)
  if (exec_is_write(r) && (r->client_id == 0 || !(r->p_flags & REQ_LOCAL_ONLY))) {
#else
  if (exec_is_write(r) && r->client_id == 0) {
#endif
    /* Sequence numbers per shard keep each shard's window of request ids
     * (store/dedup.h) dense even with many shards. */
    r->client_id = n->client_id;
    r->seq = ++s->next_seq;
  }
  if (s->raft && replica_is_leader(s)) {
    if (exec_is_write(r) && !replica_writable(n, s)) {
      route_requeue(n, r, MQ_EUNAVAIL,
                    "the shard's leader waits for a majority of its replicas to join");
      return;
    }
    reconcile_note_load(n, s, r);
    exec_local(n, s, r);
    return;
  }
  if (s->raft && r->serializable && !exec_is_write(r)) {
    exec_local(n, s, r);
    return;
  }
  if (r->p_flags & REQ_LOCAL_ONLY) {
    answer_not_leader(n, s, r);
    return;
  }
  struct member *to = leader_of(n, s, r);
  if (to && to->self)
    to = NULL; /* stale: we do not lead it */
  if (!to && !s->raft)
    to = any_replica(n, s, r->p_attempts);
  if (to && to->addr[0] && n->peer) {
    forward(n, r, to);
    return;
  }
  route_requeue(n, r, MQ_EUNAVAIL, "no leader elected yet");
}

void route_requeue(struct mq_node *n, struct mq_req *r, int code, const char *why) {
  r->p_attempts++;
  atomic_fetch_add_explicit(&n->m_retries, 1, memory_order_relaxed);
  mq_req_clear(r);
  int64_t now = node_now(n);
  int64_t backoff = 10;
  if (code == MQ_ENOTLEADER && r->p_leader_hint[0] && r->p_attempts < 4)
    backoff = 0;
  else
    for (uint32_t i = 1; i < r->p_attempts && backoff < 200; i++)
      backoff *= 2;
  if (backoff > 200)
    backoff = 200;
  int32_t sh = exec_shard_of(n, r);
  if (now + backoff + DEADLINE_MARGIN_MS >= r->deadline_ms) {
    mq_status_set(&r->status, MQ_EUNAVAIL,
                  "shard %d could not be served before the deadline (%u attempts; last: %s); "
                  "retry later",
                  sh, r->p_attempts, why);
    mq_req_complete(n, r);
    return;
  }
  mq_status_clear(&r->status);
  r->p_retry_at_ms = now + backoff;
  rl_push(&n->retry, r);
}

void route_retry_due(struct mq_node *n) {
  if (rl_empty(&n->retry))
    return;
  int64_t now = node_now(n);
  struct req_list all = n->retry;
  n->retry = (struct req_list){0};
  struct mq_req *r;
  while ((r = rl_pop(&all))) {
    if (r->p_retry_at_ms <= now)
      route_request(n, r);
    else
      rl_push(&n->retry, r);
  }
}

/* ------------------------------------------------------------------------ */
/* Forwarding, batched: requests forwarded during one loop iteration to the
 * same agent travel in one Call and come back in one answer, so under load
 * the cost of a peer round trip is shared by many requests.
 * Call:   [CALL_REQ][varint k]{bytes request}*k   (reqcodec.c encodings)
 * Answer: [varint k]{bytes result}*k               in the same order */

#define MAX_BATCH 256

struct fwd_batch {
  struct mq_node *n;
  size_t count;
  struct mq_req *reqs[];
};

/* Transport thread: hand the answer to the core loop. */
static void forward_done(void *arg, int rc, const struct mq_status *st, const uint8_t *reply,
                         size_t len) {
  struct fwd_batch *fb = arg;
  struct net_mail *nm = malloc(sizeof *nm + (rc ? 0 : len));
  if (!nm) {
    for (size_t i = 0; i < fb->count; i++) {
      mq_status_set(&fb->reqs[i]->status, MQ_ENOMEM, "out of memory relaying an answer");
      fb->reqs[i]->done(fb->reqs[i]);
    }
    free(fb);
    return;
  }
  memset(nm, 0, sizeof *nm);
  nm->mail.kind = MAIL_REPLY;
  nm->batch = fb;
  nm->call_tag = TAG_FORWARD;
  nm->rc = rc;
  if (st)
    nm->st = *st;
  nm->len = rc ? 0 : len;
  if (!rc && len)
    memcpy(nm->data, reply, len);
  if (mq_mailbox_push(&fb->n->mailbox, &nm->mail)) {
    for (size_t i = 0; i < fb->count; i++) {
      mq_status_set(&fb->reqs[i]->status, MQ_EUNAVAIL, "agent is shutting down");
      fb->reqs[i]->done(fb->reqs[i]);
    }
    free(fb);
    free(nm);
  }
}

static void forward(struct mq_node *n, struct mq_req *r, struct member *to) {
  r->p_ctx_ptr = to;
  rl_push(&n->fwd_pending, r);
}

/* Sends one batch: the first pending request and up to MAX_BATCH - 1 more
 * for the same agent. */
static void send_batch(struct mq_node *n) {
  struct member *to = n->fwd_pending.head->p_ctx_ptr;
  struct fwd_batch *fb = malloc(sizeof *fb + MAX_BATCH * sizeof(struct mq_req *));
  struct req_list rest = {0};
  struct mq_req *r;
  int64_t now = node_now(n);
  int64_t until = now + ATTEMPT_MS;
  size_t k = 0;
  while ((r = rl_pop(&n->fwd_pending))) {
    if (r->p_ctx_ptr != to || k == MAX_BATCH || !fb) {
      rl_push(&rest, r);
      continue;
    }
    fb->reqs[k++] = r;
    if (r->deadline_ms - FORWARD_MARGIN_MS < until)
      until = r->deadline_ms - FORWARD_MARGIN_MS;
  }
  n->fwd_pending = rest;
  if (!fb) {
    r = rl_pop(&n->fwd_pending);
    mq_status_set(&r->status, MQ_ENOMEM, "out of memory forwarding the request");
    mq_req_complete(n, r);
    return;
  }
  fb->n = n;
  fb->count = k;
  if (until <= now)
    until = now + 1;
  struct mq_buf b, one;
  mq_buf_init(&b);
  mq_buf_init(&one);
  mq_buf_put_u8(&b, CALL_REQ);
  mq_buf_put_varint(&b, k);
  struct reqcodec_clock clock = node_clock(n);
  for (size_t i = 0; i < k; i++) {
    mq_buf_reset(&one);
    reqcodec_encode_req(&one, fb->reqs[i], clock);
    mq_buf_put_bytes(&b, one.data, one.len);
  }
  int rc = b.err || one.err ? MQ_ENOMEM : 0;
  if (!rc)
    rc = n->peer->call(n->peer, to->addr, b.data, b.len, until, forward_done, fb);
  mq_buf_close(&b);
  mq_buf_close(&one);
  atomic_fetch_add_explicit(&n->m_forwarded, k, memory_order_relaxed);
  if (rc) {
    for (size_t i = 0; i < k; i++)
      route_requeue(n, fb->reqs[i], rc, "cannot reach the leader");
    free(fb);
  }
}

void route_fail_batch(struct fwd_batch *fb, int code, const char *msg) {
  for (size_t i = 0; i < fb->count; i++) {
    mq_status_set(&fb->reqs[i]->status, code, "%s", msg);
    mq_req_complete(fb->n, fb->reqs[i]);
  }
  free(fb);
}

void route_flush_forwards(struct mq_node *n) {
  while (!rl_empty(&n->fwd_pending))
    send_batch(n);
}

/* One forwarded request's answer (or failure) on the core loop. */
static void forward_answered(struct mq_node *n, struct mq_req *r, int rc, const char *why,
                             const uint8_t *data, size_t len) {
  if (rc) {
    route_requeue(n, r, rc, why);
    return;
  }
  if (reqcodec_decode_result(data, len, r)) {
    mq_req_clear(r);
    mq_status_set(&r->status, MQ_EINTERNAL, "malformed answer from the shard leader");
    mq_req_complete(n, r);
    return;
  }
  if (r->status.code == MQ_ENOTLEADER || r->status.code == MQ_EUNAVAIL) {
    char msg[MQ_STATUS_MSG_MAX];
    snprintf(msg, sizeof msg, "%s", r->status.msg);
    int32_t sh = exec_shard_of(n, r);
    if (sh >= 0 && r->p_leader_hint[0] && !n->shards[sh].raft)
      snprintf(n->shards[sh].hint_leader, sizeof n->shards[sh].hint_leader, "%s", r->p_leader_hint);
    route_requeue(n, r, r->status.code, msg);
    return;
  }
  mq_req_complete(n, r);
}

void route_on_reply(struct mq_node *n, struct net_mail *nm) {
  if (nm->call_tag == TAG_GOSSIP) {
    members_on_gossip_reply(n, nm);
    return;
  }
  if (nm->call_tag == TAG_FOLLOW) {
    follow_on_reply(n, nm);
    return;
  }
  struct fwd_batch *fb = nm->batch;
  struct mq_reader rd;
  mq_reader_init(&rd, nm->data, nm->len);
  uint64_t k = nm->rc ? 0 : mq_get_varint(&rd);
  bool whole = !nm->rc && !rd.err && k == fb->count;
  for (size_t i = 0; i < fb->count; i++) {
    size_t len = 0;
    const uint8_t *res = whole ? mq_get_bytes(&rd, &len, nm->len) : NULL;
    if (nm->rc)
      forward_answered(n, fb->reqs[i], nm->rc, nm->st.msg, NULL, 0);
    else if (!res)
      forward_answered(n, fb->reqs[i], 0, NULL, (const uint8_t *)"", 0); /* malformed */
    else
      forward_answered(n, fb->reqs[i], 0, NULL, res, len);
  }
  free(fb);
  free(nm);
}

/* ------------------------------------------------------------------------ */
/* Forwarded requests arriving here: a batch runs as independent requests;
 * the answer goes back when the last one is done. */

struct call_batch {
  struct mq_node *n;
  struct net_mail *nm; /* the call: request bytes are borrowed from it */
  size_t count, left;
  struct mq_buf *results;
  struct call_req *reqs;
};

struct call_req {
  struct mq_req req;
  struct call_batch *cb;
  size_t slot;
};

static void call_batch_finish(struct call_batch *cb) {
  struct mq_node *n = cb->n;
  struct mq_buf b;
  mq_buf_init(&b);
  mq_buf_put_varint(&b, cb->count);
  for (size_t i = 0; i < cb->count; i++)
    mq_buf_put_bytes(&b, cb->results[i].data, cb->results[i].len);
  int err = b.err;
  for (size_t i = 0; i < cb->count; i++) {
    err |= cb->results[i].err;
    mq_buf_close(&cb->results[i]);
  }
  if (err) {
    struct mq_status st;
    mq_status_set(&st, MQ_ENOMEM, "out of memory encoding the answers");
    node_reply(n, cb->nm->ctx, MQ_ENOMEM, &st, NULL, 0);
  } else {
    node_reply(n, cb->nm->ctx, 0, NULL, b.data, b.len);
  }
  mq_buf_close(&b);
  free(cb->results);
  free(cb->reqs);
  free(cb->nm);
  free(cb);
}

static void call_req_done(struct mq_req *r) {
  struct call_req *cr = (struct call_req *)r;
  struct call_batch *cb = cr->cb;
  reqcodec_encode_result(&cb->results[cr->slot], r);
  mq_req_clear(r);
  if (--cb->left == 0)
    call_batch_finish(cb);
}

static void refuse_call(struct mq_node *n, struct net_mail *nm, int code, const char *msg) {
  struct mq_status st;
  mq_status_set(&st, code, "%s", msg);
  node_reply(n, nm->ctx, code, &st, NULL, 0);
  free(nm);
}

void route_on_call(struct mq_node *n, struct net_mail *nm) {
  if (nm->len >= 1 && nm->data[0] == CALL_GOSSIP) {
    members_on_gossip_call(n, nm, nm->data + 1, nm->len - 1);
    return;
  }
  if (members_is_foreign(n, nm->hello.node_id)) {
    refuse_call(n, nm, MQ_EINVAL, "this agent belongs to another cluster");
    return;
  }
  if (nm->len >= 1 && nm->data[0] == CALL_WATCH) {
    follow_on_poll_call(n, nm);
    return;
  }
  struct mq_reader rd;
  mq_reader_init(&rd, nm->data, nm->len);
  uint8_t kind = mq_get_u8(&rd);
  uint64_t k = mq_get_varint(&rd);
  if (rd.err || kind != CALL_REQ || k == 0 || k > MAX_BATCH) {
    refuse_call(n, nm, MQ_EINVAL, "malformed forwarded request batch");
    return;
  }
  struct call_batch *cb = calloc(1, sizeof *cb);
  if (cb) {
    cb->results = calloc(k, sizeof *cb->results);
    cb->reqs = calloc(k, sizeof *cb->reqs);
  }
  if (!cb || !cb->results || !cb->reqs) {
    if (cb) {
      free(cb->results);
      free(cb->reqs);
    }
    free(cb);
    refuse_call(n, nm, MQ_ENOMEM, "out of memory");
    return;
  }
  /* Decode everything before running anything: a malformed batch is
   * refused whole. */
  struct reqcodec_clock clock = node_clock(n);
  for (size_t i = 0; i < k; i++) {
    size_t len;
    const uint8_t *one = mq_get_bytes(&rd, &len, nm->len);
    void *owned;
    if (!one || reqcodec_decode_req(one, len, &cb->reqs[i].req, &owned, clock)) {
      free(cb->results);
      free(cb->reqs);
      free(cb);
      refuse_call(n, nm, MQ_EINVAL, "malformed forwarded request");
      return;
    }
  }
  cb->n = n;
  cb->nm = nm;
  cb->count = k;
  cb->left = k + 1; /* +1 until every request is launched */
  for (size_t i = 0; i < k; i++) {
    struct call_req *cr = &cb->reqs[i];
    mq_buf_init(&cb->results[i]);
    cr->cb = cb;
    cr->slot = i;
    cr->req.p_flags = REQ_LOCAL_ONLY | REQ_INTERNAL;
    cr->req.p_origin = mq_raft_node_key(nm->hello.node_id);
    cr->req.done = call_req_done;
  }
  for (size_t i = 0; i < k; i++)
    route_request(n, &cb->reqs[i].req);
  if (--cb->left == 0)
    call_batch_finish(cb);
}
