/* An in-memory cluster of Raft nodes for the simulator and the scenario
 * tests: one seeded PRNG, a simulated clock (ticks) and network (delay,
 * loss, duplication, reordering via random delay, per-link cuts), a tiny
 * state machine per node, crashes with amnesia and restarts under a new
 * incarnation, and a checker that verifies the Raft safety properties after
 * every event. Every message crosses the wire codec. FX_DEBUG=1 in the
 * environment prints the entries behind a log-matching failure. */
#ifndef MQ_TESTS_RAFT_FIXTURE_H
#define MQ_TESTS_RAFT_FIXTURE_H

#include <stdbool.h>
#include <stdint.h>

#include "core/raft.h"

#define FX_MAX_NODES 7
#define FX_TRACE 48

struct fx_map;

struct fx_node {
  bool alive;
  struct mq_raft_member id; /* node = slot + 1 */
  struct mq_raft *r;
  /* state machine: a hash chain over applied commands */
  uint64_t applied, hash, count;
  uint64_t last_commit, last_applied; /* monotonicity, per incarnation */
  int last_role;
  uint64_t last_term;
  uint64_t down_until; /* restart tick while crashed */
};

struct fx_msg {
  uint64_t at;
  int from, to;
  uint8_t *bytes;
  size_t len;
};

struct fx_read {
  uint64_t id;
  int node;
  uint64_t inc;
  uint64_t min_index; /* highest commit anywhere when the read began */
  uint64_t index;     /* 0 until the read state arrives */
  bool done;
};

struct fx {
  uint64_t rng;
  int n;
  struct fx_node nodes[FX_MAX_NODES];
  struct mq_raft_options opt;
  uint64_t now;
  /* network */
  struct fx_msg *q;
  size_t nq, capq;
  bool cut[FX_MAX_NODES][FX_MAX_NODES]; /* cut[a][b]: a -> b is lost */
  unsigned loss_pm, dup_pm, max_delay;  /* per mille, per mille, ticks */
  bool fifo; /* each link delivers in the order sent, as a peer stream does */
  struct mq_raft_entry *scratch;
  size_t scratch_cap;
  /* checker state */
  struct fx_map *prev;  /* (index, term) -> (prev term, data hash) */
  struct fx_map *votes; /* (node, inc, term) -> voted-for */
  uint64_t *leader_of;  /* term -> member key of its leader */
  size_t n_leader_of;
  uint64_t *cterm, *cdata, *chain; /* per committed index */
  uint64_t *cin;                   /* per committed index: the term in which it was first seen
                                      committed (the committing leader's term) */
  size_t n_committed;              /* capacity of the three arrays */
  uint64_t commit_max;
  uint64_t acked_max;
  struct fx_read *reads;
  size_t n_reads, cap_reads;
  uint64_t next_cmd, next_read;
  /* results */
  bool failed;
  char why[512];
  char trace[FX_TRACE][160];
  unsigned trace_n;
  bool verbose;
  /* called when a member is first seen leading a term (after the checks) */
  void (*on_leader)(struct fx *f, int i, void *arg);
  void *on_leader_arg;
  /* counters */
  uint64_t n_delivered, n_applied, n_reads_ok, n_snap_installs, n_elections;
  uint64_t snap_bytes_sent; /* chunk bytes in every SNAP message sent */
  uint64_t snap_total;      /* the whole snapshot's, as the last one said */
};

void fx_init(struct fx *f, uint64_t seed, int voters, int spare,
             const struct mq_raft_options *tmpl);
void fx_close(struct fx *f);
uint64_t fx_rand(struct fx *f);
void fx_note(struct fx *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void fx_fail(struct fx *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void fx_print_trace(const struct fx *f);

/* Handles every ready batch of node i (apply, send, reads, snapshots). */
void fx_process(struct fx *f, int i);
void fx_process_all(struct fx *f);
/* One tick for every live node (and restarts due). */
void fx_tick(struct fx *f);
/* Delivers the messages due now; returns how many. */
size_t fx_deliver_due(struct fx *f);
/* Delivers the oldest message (ignoring delays); false if none. */
bool fx_deliver_one(struct fx *f);
/* Delivers until the network is empty, ignoring delays. */
void fx_deliver_all(struct fx *f);
/* Runs ticks (with delivery) until pred or max ticks; returns pred's value. */
bool fx_run_until(struct fx *f, int max_ticks, bool (*pred)(struct fx *f, void *arg), void *arg);

void fx_isolate(struct fx *f, int i);
void fx_heal(struct fx *f);
void fx_drop_all(struct fx *f);

/* Client actions; 0 or MQ_E*. */
int fx_propose(struct fx *f, int i, uint64_t *index);
int fx_read(struct fx *f, int i, uint64_t *read_id);
bool fx_read_done(const struct fx *f, uint64_t read_id, uint64_t *index);
int fx_change(struct fx *f, int leader, int op, struct mq_raft_member m);

/* Crash with amnesia; fx_restart() brings node i back empty under a new
 * incarnation (not a member until added). */
void fx_crash(struct fx *f, int i);
void fx_restart(struct fx *f, int i);

/* The live leader with the highest term, or -1. */
int fx_leader(const struct fx *f);
int fx_role(const struct fx *f, int i);
uint64_t fx_commit(const struct fx *f, int i);
uint64_t fx_term(const struct fx *f, int i);
const char *fx_role_name(int role);

/* Runs every safety check over the current state (also done after every
 * event by the functions above). */
void fx_check(struct fx *f);

#endif
