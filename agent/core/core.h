/* Internal state of one Raft group, shared by the files of agent/core/.
 * Nothing outside agent/core/ includes this header.
 *
 * The agent links gRPC, libwebsockets and curl into one binary, so every
 * function here that is not static carries a prefix: raft_ (the role and
 * replication steps) or rlog_ (the in-memory log); the public API is
 * mq_raft_ (raft.h, host.h). tests/raft/symbols.cmake keeps it so. */
#ifndef MQ_CORE_CORE_H
#define MQ_CORE_CORE_H

#include "core/bugs.h"
#include "core/raft.h"
#include "util/buf.h"

/* ---- In-memory log (log.c) ---------------------------------------------
 * Entries snap_index+1 .. last, stored in ents[head .. head+n). The entry
 * at snap_index is represented only by snap_term. Payloads are copied into
 * chunks, oldest first, each given back once compaction passes the highest
 * index whose payload it holds (log.c says why). */
struct rlog_chunk;
struct rlog {
  struct mq_raft_entry *ents;
  size_t head, n, cap;
  bool ents_heap; /* ents from malloc, not mapped (log.c) */
  uint64_t snap_index, snap_term;
  uint64_t changed_from; /* lowest index written/truncated, for checkers */
  uint64_t bytes;        /* entry payloads held */
  struct rlog_chunk *oldest, *newest;
  struct rlog_chunk *spare; /* one emptied chunk kept for the next */
  size_t chunk;             /* bytes of a chunk */
  uint64_t mapped;          /* bytes of all chunks, spare included */
};

/* Chunks of a sixteenth of snapshot_bytes (the log's byte bound), between
 * 4 KiB and 64 KiB: a small bound is not tripled by its chunks. */
void rlog_init(struct rlog *l, uint64_t snapshot_bytes);
void rlog_close(struct rlog *l);
uint64_t rlog_last(const struct rlog *l);
uint64_t rlog_last_term(const struct rlog *l);
/* Term at i; 0 when i is out of the log (below snapshot or past last). */
uint64_t rlog_term(const struct rlog *l, uint64_t i);
struct mq_raft_entry *rlog_at(const struct rlog *l, uint64_t i);
bool rlog_match(const struct rlog *l, uint64_t i, uint64_t term);
/* Appends a copy of e (index must be last+1). 0 or MQ_ENOMEM. */
int rlog_append(struct rlog *l, uint64_t term, uint32_t type, const void *data,
                size_t len);
/* Drops entries >= i (i > snap_index). */
void rlog_truncate(struct rlog *l, uint64_t i);
/* Drops entries <= i and records (i, term) as the snapshot point; if
 * i > last the whole log goes. */
void rlog_compact(struct rlog *l, uint64_t i, uint64_t term);
/* Largest j <= i with term(j) <= term, or snap_index (fast backtracking). */
uint64_t rlog_conflict_by_term(const struct rlog *l, uint64_t i, uint64_t term);

/* ---- Per-follower replication state, leader only (repl.c) ------------- */
enum {
  PR_PROBE = 0,
  PR_REPLICATE,
  PR_SNAPSHOT
};
#define MQ_RAFT_MAX_INFLIGHT 128

struct progress {
  uint64_t match, next;
  int state;
  bool paused; /* probe: one append sent, waiting for an answer */
  bool active; /* heard from since the last check-quorum round */
  uint64_t sent_commit;
  uint64_t read_ack; /* highest ReadIndex round acknowledged */
  /* in-flight appends (replicate state): ring of (last index, bytes) */
  uint64_t inf_idx[MQ_RAFT_MAX_INFLIGHT], inf_bytes[MQ_RAFT_MAX_INFLIGHT];
  uint32_t inf_head, inf_n;
  uint64_t inf_total;
  /* snapshot being sent: the follower holds [0, snap_off); the chunks
   * sent since end at snap_sent_end */
  uint64_t snap_index, snap_off, snap_sent_end;
  uint32_t snap_quiet; /* leader ticks since it last answered a chunk */
  bool snap_probe;     /* silent for a while: one chunk until it answers */
};

/* A ReadIndex round waiting for a quorum of heartbeat acks. */
struct read_req {
  uint64_t ctx, index, round;
};

/* An outgoing message. APP entries and SNAP chunk bytes are resolved to
 * pointers only in mq_raft_ready(), so that the log may grow or be
 * compacted in between. */
struct omsg {
  struct mq_raft_msg m;
};

struct mq_raft {
  struct mq_raft_options o;
  uint64_t rng;
  uint64_t term;
  struct mq_raft_member vote;
  bool voted;
  struct rlog log;
  uint64_t commit, applied;
  struct mq_raft_conf conf; /* latest in the log, in effect (diss. §4.1) */
  uint64_t conf_index;
  uint64_t conf_term; /* of the entry at conf_index; 0 if unknown */
  struct mq_raft_conf snap_conf;
  /* our snapshot: [varint conf_len][conf][state machine bytes] */
  uint8_t *snap_blob;
  size_t snap_blob_len, snap_hdr;
  size_t snap_room;  /* bytes of the allocation before snap_blob (adopted) */
  bool snap_pending; /* installed from a leader, not yet in a ready */
  bool snap_wanted;  /* a follower needs a snapshot and we hold no bytes */
  struct mq_raft_snapshot rd_snap;

  int role;
  void (*tick)(struct mq_raft *r);
  int (*step)(struct mq_raft *r, const struct mq_raft_msg *m);
  struct mq_raft_member leader;
  struct mq_raft_member heard; /* the leader we last followed, and its */
  uint64_t heard_term;         /* term (recover.c) */
  uint32_t elapsed, hb_elapsed, timeout;
  uint32_t granted, rejected; /* vote bitmaps over conf slots */
  uint64_t idle_last;         /* last log index at the previous tick */
  uint32_t idle_ticks;        /* ticks since the log last changed */

  struct progress prog[MQ_RAFT_MAX_MEMBERS]; /* leader: parallel to conf */
  bool commit_due; /* lazy_commit: mq_raft_flush_commit() is sending */
  bool transferring;
  struct mq_raft_member transferee;
  uint32_t transfer_elapsed;
  struct read_req *reads;
  size_t n_reads, cap_reads;
  uint64_t read_round;

  /* recovery election (recover.c): running while `recovering`; the
   * electorate is every member of rec_next, all of whom must grant */
  bool recovering;
  struct mq_raft_conf rec_next;   /* the configuration to lead */
  struct mq_raft_conf rec_voters; /* who must grant (roles unused) */
  uint32_t rec_granted;           /* bitmap over rec_voters slots */
  uint64_t rec_fence; /* configuration index of the newest recovery we
                         voted for: no recovery of our own from before it */
  bool removed;       /* told we are not in a later committed configuration */

  /* follower: snapshot being received */
  struct mq_buf rx;
  uint64_t rx_index, rx_term;

  /* outputs */
  struct omsg *out;
  size_t n_out, cap_out;
  struct mq_raft_msg *rd_msgs;
  size_t cap_rd_msgs;
  struct mq_raft_read_state *rs;
  size_t n_rs, cap_rs;
  int last_role;
  uint64_t last_term;
  struct mq_raft_member last_leader;
  uint64_t snapshot_asked;
};

/* raft.c */
void raft_send_msg(struct mq_raft *r, const struct mq_raft_msg *m);
void raft_become_follower(struct mq_raft *r, uint64_t term,
                          struct mq_raft_member leader);
bool raft_is_voter(const struct mq_raft *r, struct mq_raft_member m);
int raft_quorum(const struct mq_raft *r);
int raft_append_entry(struct mq_raft *r, uint64_t term, uint32_t type,
                      const void *data, size_t len);
void raft_commit_to(struct mq_raft *r, uint64_t c);
enum {
  CAMP_PRE,
  CAMP_ELECT,
  CAMP_TRANSFER,
  CAMP_RECOVER
};
void raft_campaign(struct mq_raft *r, int kind);
void raft_become_leader(struct mq_raft *r);
void raft_set_conf(struct mq_raft *r, const struct mq_raft_conf *c,
                   uint64_t index);
void raft_reload_conf(struct mq_raft *r);
void raft_drop_out_msgs(struct mq_raft *r);
/* Queues the answer to ReadIndex round ctx for the next ready. */
void raft_push_read_state(struct mq_raft *r, uint64_t ctx, uint64_t index);

/* repl.c (leader side) */
void raft_leader_reset(struct mq_raft *r);
void raft_leader_tick(struct mq_raft *r);
bool raft_sending_snapshot(const struct mq_raft *r);
int raft_leader_step(struct mq_raft *r, const struct mq_raft_msg *m);
void raft_leader_flush(struct mq_raft *r);
void raft_leader_conf_changed(struct mq_raft *r,
                              const struct mq_raft_conf *old);
bool raft_maybe_commit(struct mq_raft *r);
void raft_send_heartbeats(struct mq_raft *r, uint64_t round);

/* follow.c (follower side) */
void raft_handle_append(struct mq_raft *r, const struct mq_raft_msg *m);
void raft_handle_heartbeat(struct mq_raft *r, const struct mq_raft_msg *m);
void raft_handle_snapshot(struct mq_raft *r, const struct mq_raft_msg *m);
/* Frees the snapshot bytes held (an adopted blob from its allocation). */
void raft_snap_blob_free(struct mq_raft *r);
int raft_conf_at(const struct mq_raft *r, uint64_t index,
                 struct mq_raft_conf *c);

/* recover.c (and raft_campaign_recover in raft.c) */
void raft_campaign_recover(struct mq_raft *r, bool pre);
void raft_recover_poll(struct mq_raft *r, const struct mq_raft_msg *m);
void raft_recover_won(struct mq_raft *r);

#endif
