/* Forwarding: the requests this agent sends to the leader of their shard
 * (route.c decides where), and the ones other agents forward here.
 *
 * Requests forwarded during one loop round to the same agent travel in one
 * batch and come back in one answer, so under load the cost of a peer round
 * trip is shared by many requests. A batch rides the peer pipes, next to
 * the Raft frames, when both agents list MQ_PEER_FEATURE_FORWARD_FRAMES in
 * their hello:
 *
 *   [FWD_REQ][u64 incarnation][u64 batch][varint k]{bytes request}*k
 *   [FWD_ANS][u64 incarnation][u64 batch][u32 code][bytes message]
 *            [varint k]{bytes result}*k              results in request order
 *
 * The incarnation and batch number are the sender's, echoed in the answer;
 * a code other than 0 refuses the whole batch (k = 0). With an agent that
 * does not list the feature (an older version during a rolling upgrade) a
 * batch is one Call:
 *
 *   Call:   [CALL_REQ][varint k]{bytes request}*k
 *   Answer: [varint k]{bytes result}*k
 *
 * Requests and results are in reqcodec.c's encodings. Frames may be lost:
 * a batch without an answer when its attempt time is up (ATTEMPT_MS at
 * most, less near its requests' deadlines), or whose pipe went down, is
 * routed again, as a failed Call is. A write keeps its request id across
 * attempts, so one that arrives twice is applied once (store/dedup.h). */
#include "cluster/internal.h"
#include "util/log.h"

#include <stdlib.h>
#include <string.h>

/* An attempt gives up this long before the requests' deadline, so the
 * agent can still answer UNAVAILABLE in time, and after at most
 * ATTEMPT_MS, so a dead link is abandoned for a retry elsewhere. */
#define FORWARD_MARGIN_MS 150
#define ATTEMPT_MS 1000
#define MAX_BATCH 256

/* Frame kinds; a Raft frame starts with its version byte, 1 (core/host.c). */
enum {
  FWD_REQ = 0x46,
  FWD_ANS = 0x47
};

/* A batch this agent forwarded, until it is answered or given up. */
struct fwd_batch {
  struct mq_node *n;
  struct fwd_batch *prev, *next; /* n->fwd_sent, while framed */
  bool framed;
  uint64_t id;   /* framed: the batch number */
  uint64_t to;   /* framed: the agent it went to (member key) */
  int64_t until; /* framed: when the attempt is given up */
  size_t count;
  struct mq_req *reqs[];
};

void forward_push(struct mq_node *n, struct mq_req *r, struct member *to) {
  r->p_ctx_ptr = to;
  rl_push(&n->fwd_pending, r);
}

static bool framed_to(struct mq_node *n, const struct member *to) {
  const struct mq_peer_hello *self = n->peer->self(n->peer);
  return (self->features & to->features & MQ_PEER_FEATURE_FORWARD_FRAMES) != 0;
}

/* ------------------------------------------------------------------------ */
/* Sending */

/* Transport thread: hand a Call's answer to the core loop. */
static void forward_done(void *arg, int rc, const struct mq_status *st, const uint8_t *reply,
                         size_t len) {
  struct fwd_batch *fb = arg;
  struct net_mail *nm = net_mail_reply(TAG_FORWARD, rc, st, reply, len);
  if (!nm) {
    for (size_t i = 0; i < fb->count; i++) {
      mq_status_set(&fb->reqs[i]->status, MQ_ENOMEM, "out of memory relaying an answer");
      fb->reqs[i]->done(fb->reqs[i]);
    }
    free(fb);
    return;
  }
  nm->batch = fb;
  if (mq_mailbox_push(&fb->n->mailbox, &nm->mail)) {
    for (size_t i = 0; i < fb->count; i++) {
      mq_status_set(&fb->reqs[i]->status, MQ_EUNAVAIL, "agent is shutting down");
      fb->reqs[i]->done(fb->reqs[i]);
    }
    free(fb);
    free(nm);
  }
}

static void sent_link(struct mq_node *n, struct fwd_batch *fb) {
  fb->prev = n->fwd_sent_tail;
  fb->next = NULL;
  if (fb->prev)
    fb->prev->next = fb;
  else
    n->fwd_sent = fb;
  n->fwd_sent_tail = fb;
}

static void sent_unlink(struct mq_node *n, struct fwd_batch *fb) {
  if (fb->prev)
    fb->prev->next = fb->next;
  else
    n->fwd_sent = fb->next;
  if (fb->next)
    fb->next->prev = fb->prev;
  else
    n->fwd_sent_tail = fb->prev;
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
  fb->framed = framed_to(n, to);
  if (until <= now)
    until = now + 1;
  struct mq_buf b, one;
  mq_buf_init(&b);
  mq_buf_init(&one);
  if (fb->framed) {
    fb->id = ++n->fwd_next_id;
    fb->to = to->key;
    fb->until = until;
    mq_buf_put_u8(&b, FWD_REQ);
    mq_buf_put_u64(&b, n->self.inc);
    mq_buf_put_u64(&b, fb->id);
  } else {
    mq_buf_put_u8(&b, CALL_REQ);
  }
  mq_buf_put_varint(&b, k);
  struct reqcodec_clock clock = node_clock(n);
  for (size_t i = 0; i < k; i++) {
    mq_buf_reset(&one);
    reqcodec_encode_req(&one, fb->reqs[i], clock);
    mq_buf_put_bytes(&b, one.data, one.len);
  }
  int rc = b.err || one.err ? MQ_ENOMEM : 0;
  if (!rc && fb->framed)
    rc = n->peer->send(n->peer, to->id, to->addr, b.data, b.len);
  else if (!rc)
    rc = n->peer->call(n->peer, to->addr, b.data, b.len, until, forward_done, fb);
  mq_buf_close(&b);
  mq_buf_close(&one);
  atomic_fetch_add_explicit(&n->m_forwarded, k, memory_order_relaxed);
  if (rc) {
    for (size_t i = 0; i < k; i++)
      route_requeue(n, fb->reqs[i], rc, "cannot reach the leader");
    free(fb);
  } else if (fb->framed) {
    sent_link(n, fb);
  }
}

void forward_flush(struct mq_node *n) {
  while (!rl_empty(&n->fwd_pending))
    send_batch(n);
}

void forward_fail_batch(struct fwd_batch *fb, int code, const char *msg) {
  for (size_t i = 0; i < fb->count; i++) {
    mq_status_set(&fb->reqs[i]->status, code, "%s", msg);
    mq_req_complete(fb->n, fb->reqs[i]);
  }
  free(fb);
}

/* Routes every request of a batch that got no answer again. */
static void requeue_batch(struct mq_node *n, struct fwd_batch *fb, int code, const char *why) {
  atomic_fetch_add_explicit(&n->m_fwd_lost, 1, memory_order_relaxed);
  for (size_t i = 0; i < fb->count; i++)
    route_requeue(n, fb->reqs[i], code, why);
  free(fb);
}

void forward_expire(struct mq_node *n) {
  int64_t now = node_now(n);
  struct fwd_batch *fb = n->fwd_sent, *next;
  for (; fb; fb = next) {
    next = fb->next;
    if (fb->until <= now) {
      sent_unlink(n, fb);
      requeue_batch(n, fb, MQ_ETIMEDOUT, "no answer from the leader in time");
    }
  }
}

void forward_peer_down(struct mq_node *n, uint64_t key) {
  struct fwd_batch *fb = n->fwd_sent, *next;
  for (; fb; fb = next) {
    next = fb->next;
    if (fb->to == key) {
      sent_unlink(n, fb);
      requeue_batch(n, fb, MQ_EUNAVAIL, "the connection to the leader broke");
    }
  }
}

void forward_fail_all(struct mq_node *n, int code, const char *msg) {
  struct fwd_batch *fb;
  while ((fb = n->fwd_sent)) {
    sent_unlink(n, fb);
    forward_fail_batch(fb, code, msg);
  }
}

/* ------------------------------------------------------------------------ */
/* Answers */

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

/* Hands each request of fb its result from rd ([varint k]{bytes result}*k),
 * or rc and why to all of them; frees fb. */
static void answer_batch(struct mq_node *n, struct fwd_batch *fb, int rc, const char *why,
                         struct mq_reader *rd, size_t total) {
  uint64_t k = rc ? 0 : mq_get_varint(rd);
  bool whole = !rc && !rd->err && k == fb->count;
  for (size_t i = 0; i < fb->count; i++) {
    size_t len = 0;
    const uint8_t *res = whole ? mq_get_bytes(rd, &len, total) : NULL;
    if (rc)
      forward_answered(n, fb->reqs[i], rc, why, NULL, 0);
    else if (!res)
      forward_answered(n, fb->reqs[i], 0, NULL, (const uint8_t *)"", 0); /* malformed */
    else
      forward_answered(n, fb->reqs[i], 0, NULL, res, len);
  }
  free(fb);
}

void forward_on_reply(struct mq_node *n, struct net_mail *nm) {
  struct mq_reader rd;
  mq_reader_init(&rd, nm->data, nm->len);
  answer_batch(n, nm->batch, nm->rc, nm->st.msg, &rd, nm->len);
  free(nm);
}

static void on_answer(struct mq_node *n, struct net_mail *nm) {
  struct mq_reader rd;
  mq_reader_init(&rd, nm->data, nm->len);
  mq_get_u8(&rd);
  uint64_t inc = mq_get_u64(&rd), id = mq_get_u64(&rd);
  uint32_t code = mq_get_u32(&rd);
  size_t why_len = 0;
  const uint8_t *why = mq_get_bytes(&rd, &why_len, MQ_STATUS_MSG_MAX - 1);
  struct fwd_batch *fb = n->fwd_sent;
  while (fb && fb->id != id)
    fb = fb->next;
  /* An answer to an attempt given up, or meant for an earlier
   * incarnation of this agent, is dropped. */
  if (rd.err || !why || inc != n->self.inc || !fb ||
      fb->to != mq_raft_node_key(nm->hello.node_id)) {
    free(nm);
    return;
  }
  sent_unlink(n, fb);
  char msg[MQ_STATUS_MSG_MAX];
  memcpy(msg, why, why_len);
  msg[why_len] = '\0';
  answer_batch(n, fb, (int)code, msg, &rd, nm->len);
  free(nm);
}

/* ------------------------------------------------------------------------ */
/* Batches arriving here: each request runs on its own; the answer goes
 * back when the last one is done. */

struct call_batch {
  struct mq_node *n;
  struct net_mail *nm; /* the call or frame: request bytes are borrowed from it */
  bool framed;
  uint64_t inc, id; /* framed: the sender's, to echo */
  size_t count, left;
  struct mq_buf *results;
  struct call_req *reqs;
};

struct call_req {
  struct mq_req req;
  struct call_batch *cb;
  size_t slot;
};

/* Sends a framed batch's answer back to the agent nm came from. */
static void send_answer(struct mq_node *n, const struct net_mail *nm, uint64_t inc, uint64_t id,
                        int code, const char *why, const struct mq_buf *results, size_t k) {
  struct mq_buf b;
  mq_buf_init(&b);
  mq_buf_put_u8(&b, FWD_ANS);
  mq_buf_put_u64(&b, inc);
  mq_buf_put_u64(&b, id);
  mq_buf_put_u32(&b, (uint32_t)code);
  mq_buf_put_bytes(&b, why, strlen(why));
  mq_buf_put_varint(&b, k);
  for (size_t i = 0; i < k; i++)
    mq_buf_put_bytes(&b, results[i].data, results[i].len);
  const struct member *m = member_by_id(n, nm->hello.node_id);
  const char *addr = m && m->addr[0] ? m->addr : nm->hello.peer_address;
  if (b.err)
    mq_warn("core", "out of memory answering %zu requests forwarded by %s; they are retried", k,
            nm->hello.node_id);
  else if (n->peer)
    n->peer->send(n->peer, nm->hello.node_id, addr, b.data, b.len);
  mq_buf_close(&b);
}

static void refuse(struct mq_node *n, struct net_mail *nm, bool framed, uint64_t inc, uint64_t id,
                   int code, const char *msg) {
  if (framed) {
    send_answer(n, nm, inc, id, code, msg, NULL, 0);
  } else {
    struct mq_status st;
    mq_status_set(&st, code, "%s", msg);
    node_reply(n, nm->ctx, code, &st, NULL, 0);
  }
  free(nm);
}

static void call_batch_finish(struct call_batch *cb) {
  struct mq_node *n = cb->n;
  int err = 0;
  for (size_t i = 0; i < cb->count; i++)
    err |= cb->results[i].err;
  if (cb->framed) {
    if (err)
      send_answer(n, cb->nm, cb->inc, cb->id, MQ_ENOMEM, "out of memory encoding the answers", NULL,
                  0);
    else
      send_answer(n, cb->nm, cb->inc, cb->id, 0, "", cb->results, cb->count);
  } else {
    struct mq_buf b;
    mq_buf_init(&b);
    mq_buf_put_varint(&b, cb->count);
    for (size_t i = 0; i < cb->count; i++)
      mq_buf_put_bytes(&b, cb->results[i].data, cb->results[i].len);
    if (err || b.err) {
      struct mq_status st;
      mq_status_set(&st, MQ_ENOMEM, "out of memory encoding the answers");
      node_reply(n, cb->nm->ctx, MQ_ENOMEM, &st, NULL, 0);
    } else {
      node_reply(n, cb->nm->ctx, 0, NULL, b.data, b.len);
    }
    mq_buf_close(&b);
  }
  for (size_t i = 0; i < cb->count; i++)
    mq_buf_close(&cb->results[i]);
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

/* Runs the batch of nm, whose requests follow in rd ([varint k]...). */
static void run_batch(struct mq_node *n, struct net_mail *nm, struct mq_reader *rd, bool framed,
                      uint64_t inc, uint64_t id) {
  uint64_t k = mq_get_varint(rd);
  if (rd->err || k == 0 || k > MAX_BATCH) {
    refuse(n, nm, framed, inc, id, MQ_EINVAL, "malformed forwarded request batch");
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
    refuse(n, nm, framed, inc, id, MQ_ENOMEM, "out of memory");
    return;
  }
  /* Decode everything before running anything: a malformed batch is
   * refused whole. */
  struct reqcodec_clock clock = node_clock(n);
  for (size_t i = 0; i < k; i++) {
    size_t len;
    const uint8_t *one = mq_get_bytes(rd, &len, nm->len);
    void *owned;
    if (!one || reqcodec_decode_req(one, len, &cb->reqs[i].req, &owned, clock)) {
      free(cb->results);
      free(cb->reqs);
      free(cb);
      refuse(n, nm, framed, inc, id, MQ_EINVAL, "malformed forwarded request");
      return;
    }
  }
  cb->n = n;
  cb->nm = nm;
  cb->framed = framed;
  cb->inc = inc;
  cb->id = id;
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

void forward_on_call(struct mq_node *n, struct net_mail *nm) {
  struct mq_reader rd;
  mq_reader_init(&rd, nm->data, nm->len);
  if (mq_get_u8(&rd) != CALL_REQ || rd.err) {
    refuse(n, nm, false, 0, 0, MQ_EINVAL, "malformed forwarded request batch");
    return;
  }
  run_batch(n, nm, &rd, false, 0, 0);
}

bool forward_is_frame(const uint8_t *data, size_t len) {
  return len >= 1 && (data[0] == FWD_REQ || data[0] == FWD_ANS);
}

void forward_on_frame(struct mq_node *n, struct net_mail *nm) {
  if (nm->data[0] == FWD_ANS) {
    on_answer(n, nm);
    return;
  }
  struct mq_reader rd;
  mq_reader_init(&rd, nm->data, nm->len);
  mq_get_u8(&rd);
  uint64_t inc = mq_get_u64(&rd), id = mq_get_u64(&rd);
  if (rd.err) {
    mq_warn("peer", "dropped a malformed forwarded batch from %s (%zu bytes)", nm->hello.node_id,
            nm->len);
    free(nm);
    return;
  }
  run_batch(n, nm, &rd, true, inc, id);
}
