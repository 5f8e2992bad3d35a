/* Private state of the node, shared by the files of agent/cluster/ that
 * make up the core loop:
 *   node.c       lifecycle, the loop, mail dispatch, ticks
 *   req.c        request FIFOs, copying into and releasing requests
 *   replica.c    Raft groups of the shards this agent holds: create, ready
 *                handling, apply, pending proposals and reads, snapshots
 *   exec.c       executing a request against a local replica
 *   route.c      routing: local, forwarded to the leader, retried
 *   forward.c    forwarding, both ways: batches on the pipes or in calls
 *   scatter.c    fanning a request out to every shard, merging the answers
 *   reqcodec.c   requests and results as bytes for forwarding
 *   members.c    the member table, peer events, gossip, bootstrap
 *   discovered.c addresses discovery reports, the current source
 *   reconcile.c  moving each shard's configuration toward its placement
 *   health.c     per-shard health, readiness, whether leaving is safe
 *   recovery.c   rebuilding a group whose majority is provably gone
 *   watch.c      watches
 * Everything here is owned by the core loop thread unless a field says
 * otherwise. */
#ifndef MQ_CLUSTER_INTERNAL_H
#define MQ_CLUSTER_INTERNAL_H

#include "cluster/bugs.h"
#include "cluster/install.h"
#include "cluster/io.h"
#include "cluster/mailbox.h"
#include "cluster/node.h"
#include "cluster/req.h"
#include "core/host.h"
#include "core/raft.h"
#include "store/sm.h"
#include "util/buf.h"

#include <pthread.h>
#include <stdatomic.h>

/* Mailbox item kinds. */
enum {
  MAIL_REQ = 1,
  MAIL_WATCH_OPEN,
  MAIL_WATCH_CLOSE,
  MAIL_FRAME,     /* struct net_mail: a Raft frame from a peer */
  MAIL_PEER_UP,   /* struct net_mail: hello of a peer */
  MAIL_PEER_DOWN, /* struct net_mail: node id */
  MAIL_CALL,      /* struct net_mail: an incoming call */
  MAIL_REPLY,     /* struct net_mail: the reply to one of our calls */
  MAIL_DRAIN,
  MAIL_HAND_OFF,
  MAIL_DISCOVERED,  /* struct net_mail: call_tag = source; rc 0: peers in data,
                       else why (discovered.c) */
  MAIL_RECONFIGURE, /* struct net_mail: a struct mq_config in data */
};

/* Mail posted by transport threads; data follows the struct. */
struct net_mail {
  struct mq_mail mail;
  struct mq_peer_hello hello;
  struct mq_peer_call_ctx *ctx; /* MAIL_CALL */
  struct mq_req *req;           /* unused */
  struct fwd_batch *batch;      /* MAIL_REPLY of TAG_FORWARD: what was forwarded */
  uint64_t call_tag;            /* MAIL_REPLY: what the call was for */
  int32_t shard;                /* MAIL_REPLY of TAG_FOLLOW */
  int rc;                       /* MAIL_REPLY */
  struct mq_status st;          /* MAIL_REPLY */
  size_t len;
  uint8_t data[];
};

/* p_flags of a request */
enum {
  REQ_LOCAL_ONLY = 1u, /* forwarded to us: execute here or answer NOT_LEADER */
  REQ_INTERNAL = 2u,   /* created by the node (sub-request, forwarded call) */
  REQ_VALIDATED = 4u,  /* inputs checked once, where the request entered */
};

#define MQ_SHARD_LOAD_SOURCES 7

/* One shard. Every shard has an entry; only those this agent holds a
 * replica of have raft and sm. */
struct shard {
  int32_t id;
  struct mq_sm *sm;     /* NULL when not held */
  uint64_t sm_baseline; /* mq_sm_budget_bytes() of the empty state machine */
  struct mq_raft *raft; /* NULL when not held; owned by the host */
  uint64_t applied;     /* Raft index applied (includes no-op and conf entries) */
  int role;
  uint64_t term;
  struct mq_raft_member leader;

  struct req_list proposals;        /* waiting for their entry, in index order */
  struct req_list reads_wait_ctx;   /* ReadIndex sent, waiting for the read state */
  struct req_list reads_wait_apply; /* read index known, waiting for apply */
  struct req_list reads_retry;      /* leader had not committed in its term yet */

  /* what other agents say leads this shard (when we do not know better) */
  char hint_leader[128];
  uint64_t hint_term;
  int64_t last_reconcile_ms;
  uint64_t next_seq;           /* request ids of writes entering here, per shard */
  struct mq_forkjob *snap_job; /* snapshot bytes being built by a child */
  uint64_t snap_job_index;     /* ... of the state at this index */
  struct mq_install *install;  /* a leader's snapshot being decoded (install.h) */
  bool install_failed;         /* its bytes did not decode: the shard applies
                                  nothing more (the log is past its state) */
  bool was_member;             /* some applied configuration included this agent */
  int64_t stray_since_ms;      /* never a member and no leader since (replica_drop_strays) */
  bool placed;                 /* a majority of the replicas placement wants have
                                  been voters (replica_writable) */
  bool exists_elsewhere;       /* gossip: another agent holds it or knows its leader */

  /* recovery.c */
  int64_t leaderless_since_ms; /* no leader known since; 0: one is */
  int64_t recover_retry_ms;    /* no automatic attempt before */
  uint64_t recover_term;       /* term a recovery election of ours would win */
  bool recover_warned;         /* said once that only an operator can help */

  /* following this shard from a replica for local watches (not held) */
  bool follow_polling;
  int64_t follow_rev; /* last revision received; FOLLOW_FROM_NOW before the first */
  int64_t follow_retry_at_ms;
  uint32_t follow_attempts;

  /* where the requests this agent ran as leader came from (reconcile.c) */
  struct shard_load {
    uint64_t term;         /* counts belong to this term's leadership */
    int64_t since_ms;      /* window start */
    int64_t moved_ms;      /* last hand-over for load */
    uint32_t local, other; /* entered here; forwarded by a non-voter */
    uint64_t key[MQ_SHARD_LOAD_SOURCES];
    uint32_t count[MQ_SHARD_LOAD_SOURCES];
  } load;
  int64_t led_since_ms;    /* this agent has led it since (0: does not) */
  int64_t pinned_until_ms; /* its requests come from here: leader balancing
                              leaves it alone until then (reconcile.c) */

  /* published for other threads (mq_node_metrics) after each apply */
  _Atomic uint64_t pub_keys, pub_bytes, pub_applied, pub_commit, pub_term;
  _Atomic uint64_t pub_mem[MQ_MEM_STRUCTURES];
  _Atomic int64_t pub_revision;
  _Atomic bool pub_leader;
};

/* One agent of the cluster, this one included. */
/* Bootstrap with discovery, what an agent publishes besides its vote
 * (members.c, found_by_vote): a voter locks its vote for a candidate that
 * claims (and keeps it until that claim is abandoned); a candidate claims
 * once it has enough votes, and founds once enough are locked. */
struct boot_state {
  bool locked;          /* its vote is promised to the claim below */
  uint64_t lock_epoch;  /* the candidate's claim it is locked to */
  bool claiming;        /* as a candidate: asks its voters to lock */
  uint64_t claim_epoch; /* as a candidate: its current (or last) claim */
};

struct member {
  char id[128];
  char addr[300];    /* peer address host:port */
  uint64_t key;      /* mq_raft_node_key(id) */
  uint64_t inc;      /* current incarnation; 0: not known yet */
  uint64_t features; /* MQ_PEER_FEATURE_* of its last handshake */
  bool up;           /* handshake done and pipe not reported down */
  bool self;
  bool seed;             /* from the static configuration */
  bool formed;           /* it said the cluster exists */
  bool answered;         /* it answered a gossip call since we started */
  bool leaving;          /* it said it is shutting down: leadership is not handed
                            to it (cleared when it comes back as a new incarnation) */
  int64_t down_since_ms; /* not up since then (CLOCK_MONOTONIC); 0 while up */
  int64_t last_gossip_ms;
  uint64_t cluster_id; /* what it said; 0: none yet */
  bool foreign;        /* it belongs to another cluster: never used */
  char vote[128];      /* bootstrap: whom it votes to found the cluster */
  uint64_t vote_inc;
  struct boot_state boot; /* bootstrap: its lock and claim (members.c) */
};

/* An address discovery reported (discovered.c). */
#define MQ_MAX_CONTACTS 256
struct contact {
  char addr[300];
  uint8_t sources; /* bit per enum mq_discovery_source that lists it */
};

/* One discovery source as the node sees it. */
struct disc_state {
  bool ok;          /* its last report was a list, not a failure */
  bool failed_once; /* it has failed at least once (logs "answers again") */
  size_t found;     /* agents in its last list */
  int64_t last_ok_wall_ms;
  uint64_t errors;
  char why[256]; /* its last failure */
};

/* A placement table (placement.h) and the members it was computed over. */
struct placement_cache {
  uint64_t key;  /* hash of the member indexes it covers */
  size_t *table; /* shards x stride indexes into map */
  size_t stride, rf;
  int *map; /* table index -> index in the member array */
  int n;
};

struct watch_hub {
  struct mq_watch *head; /* active watches, core-thread owned list */
};

struct mq_node {
  const struct mq_config *cfg; /* &own_cfg */
  struct mq_config own_cfg;    /* the loop changes live settings in it */
  struct mq_store_limits limits;
  struct shard *shards;
  int n_shards;

  struct mq_mailbox mailbox;
  struct mq_loop_io *io;          /* polled by the loop; clocks, randomness (cluster/io.h) */
  struct mq_transport *transport; /* to the other agents, unstarted for a lone one */
  pthread_t thread;
  bool started;        /* the loop runs (a thread, or stepped by a simulator) */
  bool threaded;       /* on a thread of its own (mq_node_start) */
  int64_t next_tick;   /* io clock: when on_timer() runs next */
  atomic_bool core_go; /* the transport is set up: the loop may take mail */
  atomic_bool stopping;
  atomic_bool ready;
  bool ready_once;            /* readiness passed its start gate (health.c) */
  atomic_bool draining;       /* SIGTERM: readiness off, leaving announced */
  atomic_bool handing_off;    /* draining, and leaving is safe (or waited out):
                                 leadership goes to other replicas */
  atomic_int drain_risk;      /* while draining: shards whose majority depends on
                                 this agent; -1 until counted */
  pthread_mutex_t ready_lock; /* guards the two texts below */
  char not_ready_why[256];    /* why readiness is off, for /readyz */
  char drain_risk_why[512];   /* which shards keep the drain waiting */
  atomic_int led_shards;      /* shards this agent leads, for drain */
  atomic_int peers_up;        /* other members whose pipe is up, for drain */
  atomic_int drain_left;      /* while draining: led shards that still have a
                                 replica to hand them to; -1 until counted */
  int64_t now_ms;             /* CLOCK_MONOTONIC at the top of the iteration */
  uint32_t tick_count;
  /* idle_trim (node.c): requests and applied writes counted when they
   * last changed, since when, and whether memory was handed back since */
  uint64_t trim_seen;
  /* snapshots built by forked children (replica.c): running, failures in
   * a row, and whether forking is off after too many */
  int snap_jobs, snap_job_failures;
  struct mq_reaper reaper; /* threads freeing states that snapshots replaced */
  bool snap_jobs_off;
  uint64_t writes_applied; /* log entries applied here, expiries not counted */
  int64_t trim_quiet_since;
  bool trimmed;
  uint32_t ticks_per_raft_tick;

  /* Set when the core loop has stopped taking mail (or never ran), under
   * exit_lock: a watch closed after that is released on the closing
   * thread. */
  pthread_mutex_t exit_lock;
  pthread_cond_t exit_cond;
  bool loop_exited;

  /* Raft */
  struct mq_raft_host host;
  struct mq_raft_member self;
  uint64_t seed_hash;
  uint64_t next_ctx;   /* ReadIndex rounds */
  uint64_t client_id;  /* request identity of writes entering here */
  bool formed;         /* the cluster exists (we created or saw it) */
  bool dynamic;        /* discovery finds the agents (Nacos, DNS): bootstrap
                          by votes, not by the seed list (members.c) */
  uint64_t cluster_id; /* agreed at founding; 0 until known */
  char boot_vote[128]; /* bootstrap: the agent this one votes for */
  uint64_t boot_vote_inc;
  struct boot_state boot; /* its lock, and its claim as a candidate */
  int64_t boot_claim_ms;  /* when the claim started */
  int64_t boot_abandon_after_ms;
  int boot_seen;        /* agents counted at the last bootstrap check */
  int64_t boot_seen_ms; /* when that count last changed */
  struct mq_raft_entry *scratch_ents;
  size_t scratch_ents_cap;

  /* members */
  struct member *members;
  int n_members, cap_members;
  struct placement_cache placed_all, placed_live;
  int64_t last_gossip_round_ms;

  /* discovery (discovered.c) */
  struct contact contacts[MQ_MAX_CONTACTS];
  int n_contacts;
  struct disc_state disc[MQ_DISCOVERY_SOURCES];
  int disc_current; /* enum mq_discovery_source */
  _Atomic int m_disc_source;
  _Atomic uint64_t m_disc_errors[MQ_DISCOVERY_SOURCES];
  _Atomic int64_t m_disc_last_ok_ms[MQ_DISCOVERY_SOURCES];

  /* the transport once started; NULL for a lone agent */
  struct mq_transport *peer;
  atomic_int frames_queued; /* frames posted and not yet handled */

  struct req_list retry;                      /* requests waiting to be routed again */
  struct req_list fwd_pending;                /* to forward at the end of this iteration */
  struct fwd_batch *fwd_sent, *fwd_sent_tail; /* framed batches awaiting answers */
  uint64_t fwd_next_id;
  struct mq_mail drain_mail, hand_off_mail;
  struct parked_poll *parked; /* watch polls from agents following our shards */

  struct mq_buf scratch; /* encoding, core thread only */
  struct watch_hub watches;

  /* metrics, written by the core loop only */
  _Atomic uint64_t m_requests[MQ_REQ_TYPES];
  _Atomic uint64_t m_errors[MQ_REQ_TYPES];
  _Atomic uint64_t m_expired, m_watches_open, m_watch_events, m_watches_slow;
  _Atomic uint64_t m_forwarded, m_retries, m_snapshots_installed, m_handoffs;
  _Atomic uint64_t m_fwd_lost;   /* framed batches given up (forward.c) */
  _Atomic uint64_t m_recoveries; /* groups rebuilt from their survivors here */
  _Atomic uint64_t m_moves_started, m_moves_finished, m_replicas_removed, m_balance_moves;
  _Atomic uint64_t m_snapshot_bytes; /* received by snapshot (joining, catching up) */
  _Atomic uint64_t m_snap_built_child, m_snap_built_loop; /* for followers, made here */
  _Atomic uint64_t m_moves_in_progress;                   /* learners of the shards led here */
  int64_t last_balance_ms;
};

/* The io's clocks (cluster/io.h), in ms. */
static inline int64_t node_now(struct mq_node *n) { return n->io->mono_ms(n->io); }
static inline int64_t node_wall(struct mq_node *n) { return n->io->wall_ms(n->io); }
/* Answers an incoming peer call (see mq_transport.reply). */
static inline void node_reply(struct mq_node *n, struct mq_peer_call_ctx *ctx, int rc,
                              const struct mq_status *st, const uint8_t *data, size_t len) {
  n->transport->reply(n->transport, ctx, rc, st, data, len);
}

/* node.c */
void mq_req_complete(struct mq_node *n, struct mq_req *r); /* count + done */

/* discovered.c */
void discovered_on_mail(struct mq_node *n, struct net_mail *nm);
bool discovered_is_member_addr(struct mq_node *n, const char *addr);

/* replica.c */
int replica_create(struct mq_node *n, struct shard *s, const struct mq_raft_conf *initial);
void replica_destroy(struct mq_node *n, struct shard *s);
/* Drops replicas a stale message made that no leader has spoken to since. */
void replica_drop_strays(struct mq_node *n);
/* Proposes an encoded command; completes r when applied (or hands it back
 * to routing if leadership is lost). r may be NULL (reaper). */
void replica_propose(struct mq_node *n, struct shard *s, const struct mq_cmd *c, struct mq_req *r);
/* Starts a linearizable read: r is executed once the read index is applied. */
void replica_read(struct mq_node *n, struct shard *s, struct mq_req *r);
/* Tells followers of the commit index their leader has not sent yet
 * (lazy_commit), once per loop tick: at most TICK_MS late. */
void replica_flush_commits(struct mq_node *n);
/* Hands every group's ready batch to the store and the transport. Groups
 * with nothing ready are left alone unless all: their published figures
 * and membership checks are refreshed once per timer tick. */
void replica_process_ready(struct mq_node *n, bool all);
void replica_flush_frames(struct mq_node *n);
void replica_receive_frame(struct mq_node *n, const uint8_t *data, size_t len);
void replica_tick(struct mq_node *n);
/* Collects the bytes of snapshots built by children (a bounded piece a tick). */
void replica_snapshot_tick(struct mq_node *n);
void replica_install_tick(struct mq_node *n); /* snapshots decoded off the loop */
void replica_expire(struct mq_node *n);       /* fail requests about to miss their deadline */
bool replica_is_leader(const struct shard *s);
/* The leader, committed in its term and all of it applied: no revision of
 * the shard exists anywhere that this replica has not applied. */
bool replica_authoritative(const struct shard *s);
/* True once a majority of the replicas placement wants for s are voters of
 * its group. Until then a leader holds writes back: a write acknowledged
 * while the founder was the only voter would die with the founder. */
bool replica_writable(struct mq_node *n, struct shard *s);
void replica_fail_all(struct mq_node *n, int code, const char *msg);

/* exec.c: runs r against the local replica of shard s (r's shard) now. */
int exec_local(struct mq_node *n, struct shard *s, struct mq_req *r);
void exec_read_now(struct mq_node *n, struct shard *s, struct mq_req *r);
void exec_status(struct mq_node *n, struct mq_req *r);
void mq_exec_expire_sweep(struct mq_node *n);
int exec_validate(struct mq_node *n, struct mq_req *r);
int32_t exec_shard_of(struct mq_node *n, const struct mq_req *r);
bool exec_is_write(const struct mq_req *r);

/* route.c */
void route_request(struct mq_node *n, struct mq_req *r);
void route_retry_due(struct mq_node *n);
void route_requeue(struct mq_node *n, struct mq_req *r, int code, const char *why);
/* Calls and their answers, to the module that handles what they carry. */
void route_on_reply(struct mq_node *n, struct net_mail *m);
void route_on_call(struct mq_node *n, struct net_mail *m);

/* forward.c */
/* Queues r for `to`, the agent that leads its shard: sent at the end of
 * the loop round (forward_flush), batched per agent. */
void forward_push(struct mq_node *n, struct mq_req *r, struct member *to);
void forward_flush(struct mq_node *n);
void forward_on_reply(struct mq_node *n, struct net_mail *m); /* of a Call */
void forward_on_call(struct mq_node *n, struct net_mail *m);
/* A frame of forward.c's rather than a Raft frame; on_frame takes it
 * (and nm) over. */
bool forward_is_frame(const uint8_t *data, size_t len);
void forward_on_frame(struct mq_node *n, struct net_mail *nm);
/* Once per tick: batches without an answer in time are routed again. */
void forward_expire(struct mq_node *n);
/* The pipe to the member with this key went down: so are its batches. */
void forward_peer_down(struct mq_node *n, uint64_t key);
/* Stopping: batches awaiting answers complete with code. */
void forward_fail_all(struct mq_node *n, int code, const char *msg);
struct fwd_batch;
void forward_fail_batch(struct fwd_batch *fb, int code, const char *msg);

/* scatter.c */
/* Runs p (a multi-shard Scan or an all-partition Read) on every shard and
 * completes it with the merged answers. */
void route_scatter(struct mq_node *n, struct mq_req *p);

/* reqcodec.c */
/* A request carries its deadline as time left and as a wall-clock time;
 * both sides read their clocks once per batch. */
struct reqcodec_clock {
  int64_t mono_ms, wall_ms;
};
static inline struct reqcodec_clock node_clock(struct mq_node *n) {
  return (struct reqcodec_clock){node_now(n), node_wall(n)};
}
void reqcodec_encode_req(struct mq_buf *b, const struct mq_req *r, struct reqcodec_clock now);
int reqcodec_decode_req(const uint8_t *data, size_t len, struct mq_req *r, void **owned,
                        struct reqcodec_clock now);
void reqcodec_encode_result(struct mq_buf *b, const struct mq_req *r);
int reqcodec_decode_result(const uint8_t *data, size_t len, struct mq_req *r);

/* members.c */
/* Transport threads: the answer to one of our calls as MAIL_REPLY mail
 * (the reply copied), or NULL when out of memory. */
struct net_mail *net_mail_reply(uint64_t tag, int rc, const struct mq_status *st,
                                const uint8_t *reply, size_t len);
int members_init(struct mq_node *n);
void members_close(struct mq_node *n);
struct member *member_by_id(struct mq_node *n, const char *id);
struct member *member_by_key(struct mq_node *n, uint64_t key);
/* A peer said hello (handshake or gossip): its member, added if new, or
 * NULL when the table is full. */
struct member *members_on_up(struct mq_node *n, const struct mq_peer_hello *h);
void members_on_down(struct mq_node *n, const char *id);
void members_tick(struct mq_node *n);
void members_on_gossip_call(struct mq_node *n, struct net_mail *m, const uint8_t *body, size_t len);
void members_on_gossip_reply(struct mq_node *n, struct net_mail *m);
/* Sends a gossip round now (this agent's news: it is shutting down). */
void members_announce(struct mq_node *n);
int members_start_transport(struct mq_node *n, struct mq_status *st);
/* The replicas placement wants for shard s, as member pointers: the same
 * answer on every agent that knows the same members. */
size_t members_placement(struct mq_node *n, int32_t shard, struct member **out, size_t max);
/* Placement for a leader moving its group: members down for longer than
 * --replace-dead-after are left out while enough others remain. */
size_t members_placement_live(struct mq_node *n, int32_t shard, struct member **out, size_t max);
/* The incarnation of the member a configuration names is older than the
 * one its agent runs now: that identity will never vote again. A newer one
 * than this agent has heard of is not old: its hello has not arrived yet
 * (a one-way cut, a restart while this agent was away), and removing it
 * would take a live voter out of the group. Incarnations only grow
 * (mq_raft_incarnation_next). */
bool members_is_old(struct mq_node *n, struct mq_raft_member id);
/* True when the member with this id belongs to another cluster. */
bool members_is_foreign(struct mq_node *n, const char *id);

/* health.c */
enum {
  SH_NO_LEADER = 1u,   /* no leader known */
  SH_OLD_VOTER = 2u,   /* an old incarnation is still a voter */
  SH_VOTER_DOWN = 4u,  /* a voter (current incarnation) is down */
  SH_LEARNER = 8u,     /* a learner is catching up */
  SH_FEW_VOTERS = 16u, /* fewer voters than replicas wanted */
  SH_BEHIND = 32u,     /* this replica has not applied what it knows committed */
  SH_NOT_MEMBER = 64u, /* this agent holds the shard but is not in its configuration */
};
/* The health of shard s (held here) as this agent sees it: SH_* flags, and
 * a sentence naming every problem in why (NUL-terminated). */
unsigned health_of(struct mq_node *n, struct shard *s, char *why, size_t cap);
/* Readiness (README "Readiness"): recomputed by the loop; logs changes. */
void health_update_ready(struct mq_node *n);
/* While draining: how many shards would lose their majority of live,
 * current voters if this agent left now (published in n->drain_risk). */
void health_update_drain(struct mq_node *n);

/* recovery.c */
void recovery_tick(struct mq_node *n);
/* The role of s changed to rd's: counts a recovery election won. */
void recovery_on_role(struct mq_node *n, struct shard *s, int role, uint64_t term);
/* The RECOVER request (an operator's `mqctl recover`). */
void exec_recover(struct mq_node *n, struct mq_req *r);

/* reconcile.c */
void reconcile_tick(struct mq_node *n);
/* Counts a request this agent runs as the leader of s, by origin. */
void reconcile_note_load(struct mq_node *n, struct shard *s, const struct mq_req *r);
/* SIGTERM: readiness off, leaving announced, drain risk counted. */
void reconcile_drain(struct mq_node *n);
/* Leaving is safe (or waited out): hand every led shard over. */
void reconcile_hand_off(struct mq_node *n);

/* watch.c */
void mq_watch_open_on_loop(struct mq_node *n, struct mq_watch *w);
void mq_watch_close_on_loop(struct mq_node *n, struct mq_watch *w);
void mq_watch_dispatch(struct mq_node *n, const struct mq_event *ev);
void mq_watch_end_all(struct mq_node *n, int code, const char *msg);
void mq_watch_shard_restored(struct mq_node *n, struct shard *s);
/* Following shards held elsewhere (follow.c) */
#define FOLLOW_FROM_NOW (-1)
void mq_watch_follow_started(struct mq_node *n, int32_t shard, int64_t cur);
int64_t mq_watch_min_rev(struct mq_node *n, int32_t shard); /* INT64_MAX: no watch */
void mq_watch_end_shard(struct mq_node *n, int32_t shard, int code, const char *msg);
void follow_tick(struct mq_node *n);
void follow_on_reply(struct mq_node *n, struct net_mail *nm);
void follow_on_poll_call(struct mq_node *n, struct net_mail *nm);
void follow_on_event(struct mq_node *n, struct shard *s);
void follow_fail_parked(struct mq_node *n);
void reqcodec_encode_event(struct mq_buf *b, const struct mq_event *ev);
int reqcodec_decode_event(struct mq_reader *rd, struct mq_event *ev);
struct mq_watch *mq_watch_from_mail(struct mq_mail *m);

/* Call bodies start with one of these bytes. */
enum {
  CALL_REQ = 1,
  CALL_GOSSIP = 2,
  CALL_WATCH = 3
};
/* call_tag of a MAIL_REPLY */
enum {
  TAG_FORWARD = 1,
  TAG_GOSSIP = 2,
  TAG_FOLLOW = 3
};

#endif
