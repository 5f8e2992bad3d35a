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
 * sub-request per shard (scatter.c); forwarding itself, both ways, is
 * forward.c's. */
#include "cluster/internal.h"
#include "util/log.h"

#include <stdlib.h>
#include <string.h>

#define DEFAULT_DEADLINE_MS 5000
#define DEADLINE_MARGIN_MS 50

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
    forward_push(n, r, to);
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
/* Calls and their answers, by what they carry */

void route_on_reply(struct mq_node *n, struct net_mail *nm) {
  if (nm->call_tag == TAG_GOSSIP)
    members_on_gossip_reply(n, nm);
  else if (nm->call_tag == TAG_FOLLOW)
    follow_on_reply(n, nm);
  else
    forward_on_reply(n, nm);
}

void route_on_call(struct mq_node *n, struct net_mail *nm) {
  if (nm->len >= 1 && nm->data[0] == CALL_GOSSIP) {
    members_on_gossip_call(n, nm, nm->data + 1, nm->len - 1);
    return;
  }
  if (members_is_foreign(n, nm->hello.node_id)) {
    struct mq_status st;
    mq_status_set(&st, MQ_EINVAL, "this agent belongs to another cluster");
    node_reply(n, nm->ctx, MQ_EINVAL, &st, NULL, 0);
    free(nm);
    return;
  }
  if (nm->len >= 1 && nm->data[0] == CALL_WATCH)
    follow_on_poll_call(n, nm);
  else
    forward_on_call(n, nm);
}
