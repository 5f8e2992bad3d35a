/* The node: this agent's core loop and the one door into it.
 *
 * One core loop thread owns every shard state machine (and, with
 * replication, every Raft group). Front ends — the gRPC server, the
 * websocket feed, the Kafka consumer — never touch shards: they fill a
 * struct mq_req, hand it over with mq_node_submit(), and get it back through
 * its done() callback once the request is complete (DESIGN.md section 5).
 *
 * The write path is: validate (front end) -> submit -> propose a command to
 * the shard's group -> commit -> apply to the state machine -> done(). With a
 * single voter, commit is immediate; with replication the Raft core sits
 * between propose and apply and nothing on either side changes.
 *
 * Threads: mq_node_submit, mq_node_watch_open, mq_watch_pop, mq_watch_close
 * and mq_node_ready may be called from any thread. done() and watch notify
 * callbacks run on the core loop thread and must not block: they typically
 * wake the front end's own thread, or, for the gRPC server served by the
 * loop itself, post a completion it picks up on its next poll. */
#ifndef MQ_CLUSTER_NODE_H
#define MQ_CLUSTER_NODE_H

#include "cluster/io.h"
#include "config/config.h"
#include "store/types.h"
#include "util/err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mq_node;

/* Link and kind of anything posted to the core loop's mailbox. */
struct mq_mail {
  struct mq_mail *next;
  int kind;
};

enum mq_req_type {
  MQ_REQ_PUT,
  MQ_REQ_GET,
  MQ_REQ_DELETE,
  MQ_REQ_SCAN,
  MQ_REQ_PRODUCE,
  MQ_REQ_READ,
  MQ_REQ_STATUS,
  MQ_REQ_RECOVER,
  MQ_REQ_INGEST_PROBE, /* the Kafka position shard `partition` holds (agent/ingest) */
};

/* Where a replica's memory goes (mq_shard_metrics.mem, Cluster Status). */
enum mq_mem_structure {
  MQ_MEM_KV_RECORDS,    /* record headers, keys and values */
  MQ_MEM_KV_INDEX,      /* hash table, ordered index, expiry heap */
  MQ_MEM_RAFT_LOG,      /* log entries kept since the last snapshot */
  MQ_MEM_WATCH_HISTORY, /* events a watch can resume from */
  MQ_MEM_REQUEST_IDS,   /* outcomes kept for retried requests */
  MQ_MEM_TOPIC_LOGS,    /* topic log entries */
  MQ_MEM_STRUCTURES
};
const char *mq_mem_structure_name(enum mq_mem_structure s);

struct mq_shard_status {
  int32_t shard;
  bool healthy;     /* leader, RF current voters all up, no learner, caught up */
  char health[256]; /* "ok", or every problem this agent sees */
  char leader[128]; /* node id, empty when unknown */
  char replicas[8][128];
  int n_replicas;
  char role[16]; /* leader, follower, learner, candidate, none */
  uint64_t term;
  uint64_t commit_index;
  uint64_t applied_index;
  uint64_t keys;
  uint64_t bytes;
  uint64_t digest;
  int64_t revision;
  char placement[8][128]; /* the agents placement wants it on */
  int n_placement;
  uint64_t mem[MQ_MEM_STRUCTURES];
};

struct mq_member_status {
  char node_id[128];
  char address[300];
  char state[16]; /* alive, suspect, dead, left */
};

struct mq_discovery_status {
  bool configured, answering;
  int64_t last_success_unix_ms; /* 0: never */
  uint64_t errors;
  char last_error[256];
  int32_t found;
};

struct mq_node_status {
  char node_id[128];
  int32_t shards_total;
  int32_t replication_factor;
  int discovery;                         /* enum mq_discovery_source in use */
  struct mq_discovery_status sources[3]; /* by enum mq_discovery_source */
  uint64_t cluster_id;                   /* 0: not known yet */
  int32_t moves_in_progress;
  struct mq_member_status *members;
  size_t n_members;
  struct mq_shard_status *shards;
  size_t n_shards;
};

/* What `mqctl recover` is shown before and after it acts. */
struct mq_recover_report {
  bool lossless; /* the agent would recover by itself: nothing can be lost */
  bool started;  /* a recovery election started (confirm) */
  char text[2048];
};

/* A request and, once done, its result.
 *
 * Inputs are borrowed by the node from submit until done(). Outputs are
 * owned by the request and released by mq_req_clear(). */
struct mq_req {
  enum mq_req_type type;

  /* ---- inputs ---- */
  const char *key; /* PUT GET DELETE PRODUCE(entry key) READ(routing key) */
  size_t key_len;
  const uint8_t *value; /* PUT, PRODUCE */
  size_t value_len;
  int64_t ttl_ms;        /* PUT */
  struct mq_precond pre; /* PUT, DELETE */
  bool return_previous;  /* PUT */
  bool serializable;     /* GET SCAN READ: SERIALIZABLE instead of LINEARIZABLE */
  const char *prefix;    /* SCAN */
  size_t prefix_len;
  const char *start_after; /* SCAN */
  size_t start_after_len;
  uint32_t limit;    /* SCAN; 0: default 100 */
  bool keys_only;    /* SCAN */
  const char *topic; /* PRODUCE READ */
  size_t topic_len;
  int32_t partition;  /* PRODUCE READ; -1: by key (or all, for READ without key) */
  int64_t timestamp;  /* PRODUCE; 0: now */
  int64_t offset;     /* READ */
  uint32_t count;     /* READ; 0: default 100 */
  uint64_t client_id; /* writes: request identity, 0: none */
  uint64_t seq;
  int64_t deadline_ms; /* CLOCK_MONOTONIC ms; 0: none */
  bool confirm;        /* RECOVER (shard in `partition`): act, not only report */
  /* Kafka ingestion (PUT DELETE PRODUCE; INGEST_PROBE with the shard in
   * `partition`): the record's position, carried into the command
   * (store/cmd.h). An empty source: none. */
  const char *ingest_source;
  size_t ingest_source_len;
  int32_t ingest_partition;
  int64_t ingest_offset;
  int64_t ingest_prev;

  /* ---- outputs ---- */
  struct mq_status status; /* code 0 or MQ_E*, with a message */
  int64_t revision;        /* PUT DELETE PRODUCE */
  int32_t shard;           /* PUT DELETE GET PRODUCE(partition) */
  bool deleted;            /* DELETE */
  int64_t out_offset;      /* PRODUCE */
  bool has_kv;             /* GET: kv; PUT: previous */
  struct mq_kv kv;         /* key/value point into memory owned by the req */
  struct mq_kv *kvs;       /* SCAN */
  size_t n_kvs;
  bool more;                /* SCAN */
  struct mq_entry *entries; /* READ */
  size_t n_entries;
  int64_t next_offset;                /* READ */
  int64_t high_watermark;             /* READ */
  int64_t log_start_offset;           /* READ */
  struct mq_node_status *node_status; /* STATUS */
  struct mq_recover_report *recover;  /* RECOVER */
  int64_t ingest_recorded;            /* with an ingest source: the shard's position
                                         after the write (-1: none); MQ_INGEST_UNKNOWN
                                         unless the command reached the state machine */

  /* ---- completion ---- */
  /* Called exactly once, on the core loop thread, when the request is
   * complete (successfully or not). Must not block. */
  void (*done)(struct mq_req *req);
  void *arg;

  /* ---- node private (zeroed by mq_req_init; front ends leave alone) ---- */
  struct mq_mail mail;
  struct mq_req *pnext;     /* pending/retry lists of the core loop */
  uint64_t p_index, p_term; /* awaited log entry or read index */
  uint64_t p_ctx;           /* ReadIndex round */
  int32_t p_shard1;         /* shard + 1 the request is pinned to; 0: by key */
  uint32_t p_flags;
  uint32_t p_attempts;
  int64_t p_retry_at_ms;
  struct mq_req *p_parent; /* scatter-gather: the request this one is part of */
  void *p_ctx_ptr;         /* forwarded call context */
  uint64_t p_origin;       /* key of the agent that forwarded it; 0: ours */
  char p_leader_hint[128]; /* NOT_LEADER answers: who leads */
};

#define MQ_INGEST_UNKNOWN (-2)

/* Zeroes r (ingest_recorded: MQ_INGEST_UNKNOWN) and sets its type. */
void mq_req_init(struct mq_req *r, enum mq_req_type type);
/* Frees the outputs of a completed request; r can then be reused. */
void mq_req_clear(struct mq_req *r);

/* Creates a node for cfg, with its loop's io and its transport to the
 * other agents (cluster/io.h); all borrowed for the node's lifetime (the
 * transport is shut down by mq_node_stop, freed by its owner after
 * mq_node_free). Does not start threads. Returns 0, MQ_ENOMEM or MQ_EINVAL
 * with a message in st. */
int mq_node_new(struct mq_node **out, const struct mq_config *cfg, const struct mq_node_io *io,
                struct mq_status *st);
/* Starts the core loop thread, which polls the io, and the transport. On
 * an error, stop and free the node as usual. */
int mq_node_start(struct mq_node *n, struct mq_status *st);
/* For simulators: starts the transport but no thread; the caller runs the
 * loop's rounds with mq_node_step() on its own thread (one thread may step
 * many nodes). The io's poll is called with a 0 timeout. */
int mq_node_start_stepped(struct mq_node *n, struct mq_status *st);
/* One round of the loop (events, mail, the timer when due on the io's
 * clock, Raft ready batches, frames and forwards). False once stopping. */
bool mq_node_step(struct mq_node *n);
/* Hands a request to the core loop. Returns 0 (done() will be called) or
 * MQ_EUNAVAIL when the node is stopping (done() will not be called). */
int mq_node_submit(struct mq_node *n, struct mq_req *r);
/* Readiness (README "Readiness"): since it started, this agent has been a
 * caught-up voter of every shard placement gives it, in groups that count
 * no dead member and no old incarnation as a voter; and every shard it
 * hosts has a leader and is caught up. */
bool mq_node_ready(const struct mq_node *n);
/* Why the agent is not ready ("" when it is), copied into buf. */
void mq_node_not_ready_why(struct mq_node *n, char *buf, size_t cap);
/* Graceful shutdown. Readiness goes false and the other agents hear this
 * one is leaving. Then it waits, at most timeout_ms, until leaving costs no
 * shard its majority of live, current voters (it keeps serving meanwhile
 * and logs what it waits for); interrupted(arg), polled, ends the wait
 * early (a second SIGTERM). Either way a WARN names the shards at risk.
 * Last, the leadership of every shard led here goes to another caught-up
 * voter (a few seconds at most). Blocks until done. */
void mq_node_drain(struct mq_node *n, int timeout_ms, bool (*interrupted)(void *arg), void *arg);
/* Stops the core loop: requests still queued complete with MQ_EUNAVAIL,
 * watches end, the peer transport shuts down. The loop thread keeps
 * polling the queue for the API server's last calls. Idempotent. */
void mq_node_stop(struct mq_node *n);
/* Stops, then shuts the queue down, joins the loop thread and frees. Any
 * API server on the node's queue must be freed before. */
void mq_node_free(struct mq_node *n);

void mq_node_status_free(struct mq_node_status *s);

/* Counters and gauges for /metrics, readable from any thread (relaxed
 * atomics published by the core loop; a snapshot, not a transaction). */
#define MQ_REQ_TYPES (MQ_REQ_INGEST_PROBE + 1)
struct mq_shard_metrics {
  uint64_t keys;
  uint64_t bytes;
  uint64_t mem[MQ_MEM_STRUCTURES];
  int64_t revision;
  uint64_t applied_index;
  uint64_t commit_index;
  uint64_t term;
  bool is_leader;
};
struct mq_node_metrics {
  uint64_t requests[MQ_REQ_TYPES]; /* completed, by type */
  uint64_t errors[MQ_REQ_TYPES];   /* completed with an error, by type */
  uint64_t expired_keys;           /* EXPIRE commands applied */
  uint64_t watches_open;
  uint64_t watch_events;         /* events queued to watchers */
  uint64_t watches_dropped_slow; /* watches ended for falling behind */
  uint64_t forwarded;            /* requests sent to a leader elsewhere */
  uint64_t retries;              /* request attempts tried again */
  uint64_t forward_batches_lost; /* forwarded by pipe, unanswered in time or cut off */
  uint64_t snapshots_installed;  /* shard snapshots installed from a leader */
  uint64_t handoffs;             /* leaderships handed to another replica */
  uint64_t recoveries;           /* groups rebuilt from their survivors here */
  uint64_t memory_budget_bytes;
  uint64_t memory_used_bytes;
  /* elastic membership (reconcile.c): learners added, promoted, replicas
   * removed, leaderships handed over for balance, learners of shards led
   * here now, snapshot bytes received */
  uint64_t moves_started, moves_finished, replicas_removed, balance_moves;
  uint64_t moves_in_progress, snapshot_bytes;
  /* snapshots for followers made here: by a forked child, in the loop */
  uint64_t snapshots_built_child, snapshots_built_loop;
  /* discovery: the current source (enum mq_discovery_source), per source
   * the wall time of its last answer (ms, 0: never) and its failed rounds */
  int discovery_source;
  int64_t discovery_last_ok_ms[3];
  uint64_t discovery_errors[3];
  int n_shards;
  struct mq_shard_metrics *shards; /* caller-provided array of n_shards */
};
/* Name of a request type ("put", "get", ...). */
const char *mq_req_type_name(enum mq_req_type t);
/* Fills m; m->shards must point to mq_node_shards(n) elements (or be NULL). */
void mq_node_metrics(const struct mq_node *n, struct mq_node_metrics *m);
int mq_node_shards(const struct mq_node *n);
/* The peer address other agents reach this one on ("host:port"), or "" for
 * a lone agent that runs no peer transport. */
const char *mq_node_peer_address(const struct mq_node *n);
const struct mq_config *mq_node_config(const struct mq_node *n);
/* Any thread. Applies the settings of next that can change while the agent
 * runs (leader-follow window, key/value limits, memory budget,
 * replace-dead-after, log level and format) at the loop's next round, and
 * logs each one that changed. The others in next are ignored: they need a
 * restart (MQ_CONFIG_LIVE marks the live ones in the settings table).
 * MQ_EUNAVAIL when stopping. */
int mq_node_reconfigure(struct mq_node *n, const struct mq_config *next);
/* This agent's incarnation: a new one at every start (what discovery
 * publishes next to the node id). */
uint64_t mq_node_incarnation(const struct mq_node *n);

/* ---- Discovery ----
 *
 * Discovery (agent/discovery) tells the node which agents exist; the node
 * contacts them over the peer transport and learns their identity there.
 * It is a hint, never a vote: an agent missing from every source stays a
 * member, and only its own unreachability over the peer links (for
 * --replace-dead-after) moves its replicas. */
enum mq_discovery_source {
  MQ_DISCOVERY_STATIC, /* --peers */
  MQ_DISCOVERY_DNS,    /* --dns-name */
  MQ_DISCOVERY_NACOS,  /* --nacos */
};
#define MQ_DISCOVERY_SOURCES 3
_Static_assert(MQ_DISCOVERY_SOURCES ==
                   sizeof((struct mq_node_metrics *)0)->discovery_errors / sizeof(uint64_t),
               "mq_node_metrics has a slot per discovery source");
struct mq_discovered {
  char addr[300];       /* host:port (or [v6]:port) of its peer transport */
  char node_id[128];    /* "" when the source does not say (DNS) */
  uint64_t incarnation; /* 0 when the source does not say */
};
/* Any thread. Everything source finds now, replacing what it reported
 * last (count may be 0: a source that lists nobody removes no member).
 * Marks the source as answering. Copies peers; MQ_EUNAVAIL when stopping. */
int mq_node_discovered(struct mq_node *n, enum mq_discovery_source source,
                       const struct mq_discovered *peers, size_t count);
/* Any thread. The source did not answer (why: for status and the log);
 * what it reported last is kept. */
void mq_node_discovery_failed(struct mq_node *n, enum mq_discovery_source source, const char *why);
/* The name of a source: "static", "dns", "nacos". */
const char *mq_discovery_source_name(enum mq_discovery_source s);

/* ---- Watch ----
 *
 * A subscription to the change stream of matching keys (prefix) or of one
 * topic. Per shard, events arrive in revision order, with no gaps and no
 * duplicates. Each subscription has a bounded queue; a subscriber that
 * falls behind by more than its bound is ended with MQ_ENOSPACE ("watcher
 * too slow"), it never slows the core loop. */
struct mq_watch;

struct mq_watch_start {
  int32_t shard;
  int64_t revision; /* resume after this revision */
};

struct mq_watch_params {
  const char *prefix; /* KV changes of keys with this prefix ("" = all) */
  size_t prefix_len;
  const char *topic; /* non-NULL: PRODUCE events of this topic instead */
  size_t topic_len;
  const struct mq_watch_start *starts; /* shards not named start from now */
  size_t n_starts;
  size_t max_queued;         /* queue bound; 0: default 10000 */
  uint64_t max_queued_bytes; /* and in bytes of events; 0: default 64 MiB */
};

/* An event handed to a subscriber: a deep copy, shared by every watch it
 * matched and released with mq_watch_event_free(). */
struct mq_watch_event {
  struct mq_event ev; /* pointers into this allocation */
  /* private */
  struct mq_watch_event *next_unused;
  int refs;
};

/* Called on the core loop thread when events are queued or the watch ended.
 * Must not block; typically wakes the subscriber's thread, which then calls
 * mq_watch_pop() until it returns MQ_EAGAIN-like 1. */
typedef void (*mq_watch_notify_fn)(void *arg);

/* Opens a watch. params are copied. notify(arg) is called whenever new
 * events are queued (coalesced) or the watch ends. Returns 0 or an error with
 * a message (bad params). The initial replay of start revisions happens on
 * the core loop; a revision no longer retained ends the watch with
 * MQ_ECOMPACTED and a message saying which shard and revision. */
int mq_node_watch_open(struct mq_node *n, const struct mq_watch_params *params,
                       mq_watch_notify_fn notify, void *arg, struct mq_watch **out,
                       struct mq_status *st);

/* Takes the next event: returns 0 and sets *ev (free with
 * mq_watch_event_free), 1 when none is queued now, or a negative MQ_E* when
 * the watch has ended (after its queued events were taken), with the reason
 * copied to st. Any thread. */
int mq_watch_pop(struct mq_watch *w, struct mq_watch_event **ev, struct mq_status *st);
void mq_watch_event_free(struct mq_watch_event *ev);

/* Ends a watch from the subscriber's side. After closed(arg) runs (on the
 * core loop thread), no notify for this watch runs again and w is freed. */
void mq_watch_close(struct mq_watch *w, void (*closed)(void *arg), void *arg);

#endif
