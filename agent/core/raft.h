/* Raft consensus as a pure state machine, one object per group (shard).
 *
 * Nothing in here performs I/O, reads a clock, draws randomness of its own or
 * logs. Time is mq_raft_tick(); randomness comes from the seed in the
 * options; everything the caller must do comes out of mq_raft_ready() as a
 * batch, and mq_raft_advance() says the batch was handled. The log lives in
 * this object's memory: MemQuorum is memory-only, so there is no stable
 * storage step. What replaces disk durability is identity: a process that
 * lost its memory must come back as a new incarnation (see mq_raft_member),
 * and then it never votes or counts toward a quorum under the old one.
 *
 * Protocol (Raft paper, "In Search of an Understandable Consensus
 * Algorithm", and Ongaro's dissertation): pre-vote and check-quorum always
 * on; a new leader appends a no-op and commits earlier-term entries only
 * through an entry of its own term (§5.4.2); ReadIndex reads (diss. §6.4);
 * single-server membership changes, one at a time and only once the leader
 * has committed in its term (diss. §4.1); learners; leadership transfer
 * (diss. §3.10); snapshots sent in chunks (§7). Beyond the paper: rebuilding
 * a group whose majority is provably gone (old incarnations), when the
 * survivors provably hold every committed entry (recover.c).
 *
 * Handling a ready batch, in this order (between mq_raft_ready() and
 * mq_raft_advance() the caller calls nothing else on this group):
 *   1. rd.snapshot != NULL: replace the state machine with rd.snapshot->data
 *      (it is the state after applying index rd.snapshot->index).
 *   2. (Persist: nothing to do; the log is kept in memory by the core.)
 *   3. Send every message in rd.msgs (e.g. mq_raft_msg_encode() them or let
 *      struct mq_raft_host batch them). Losing, reordering or duplicating
 *      them is allowed.
 *   4. Apply rd.committed[0..n) in order. NORMAL entries carry the bytes
 *      given to mq_raft_propose(); NOOP and CONF entries carry nothing for
 *      the state machine (CONF data is an encoded configuration, see
 *      mq_raft_conf_decode()).
 *   5. Serve rd.reads whose index <= the applied index (after step 4 every
 *      read in the batch satisfies this or will after a later batch).
 *   6. mq_raft_advance(r, &rd).
 *   7. rd.snapshot_at != 0: snapshot the state machine (it now reflects
 *      exactly that index) and hand the bytes to mq_raft_compact().
 *      rd.compact_at != 0 (lazy_snapshots): mq_raft_compact(r,
 *      rd.compact_at, NULL, 0); no bytes needed.
 * Every pointer in rd is borrowed from the core and valid until step 6.
 *
 * Usage (one group, caller owns the transport and the state machine):
 *
 *   struct mq_raft *r;
 *   mq_raft_create(&opts, &initial_conf, &r);
 *   for (;;) {                      // the core loop
 *     every tick:   mq_raft_tick(r);
 *     on message:   mq_raft_step(r, &msg);            // msg decoded by caller
 *     on request:   mq_raft_propose(r, cmd, len, &term, &index);
 *     on read:      mq_raft_read_index(r, req_id);
 *     while (mq_raft_has_ready(r)) {
 *       struct mq_raft_ready rd;
 *       mq_raft_ready(r, &rd);
 *       ... steps 1-5 above ...
 *       mq_raft_advance(r, &rd);
 *       if (rd.snapshot_at) mq_raft_compact(r, rd.snapshot_at, bytes, n);
 *     }
 *   }
 *
 * A proposal succeeded when an entry with the (term, index) it was given is
 * applied; if the entry applied at that index has another term, it was lost
 * to a leader change and may be retried. Many groups on one node: see
 * struct mq_raft_host in core/host.h.
 *
 * Threading: an object is used by one thread at a time (DESIGN.md section 5:
 * the core loop). Errors: 0 or a negative MQ_E* code (util/err.h). */
#ifndef MQ_CORE_RAFT_H
#define MQ_CORE_RAFT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A member of a group: a node (mq_raft_node_key() of its node id string)
 * under one incarnation. Two members are the same only if both fields are
 * equal. A node that restarts with empty memory takes a new incarnation,
 * from mq_raft_incarnation_next(). */
struct mq_raft_member {
  uint64_t node;
  uint64_t inc;
};

/* Stable 64-bit key of a node id string (FNV-1a, never 0). Every node
 * computes the same key for the same string; the host keeps the reverse map
 * and must reject two known names with the same key. */
uint64_t mq_raft_node_key(const char *node_id);

/* The incarnation a node must use when it starts with empty memory: greater
 * than `highest_seen` (the largest incarnation of this node the caller knows
 * of, e.g. from discovery metadata) and than `floor` (e.g. a boot-time
 * clock reading in ns, so that it grows even when nothing is known). */
uint64_t mq_raft_incarnation_next(uint64_t highest_seen, uint64_t floor);

bool mq_raft_member_eq(struct mq_raft_member a, struct mq_raft_member b);

/* ---- Configuration ------------------------------------------------------ */

#define MQ_RAFT_MAX_MEMBERS 16
enum {
  MQ_RAFT_VOTER = 1,
  MQ_RAFT_LEARNER = 2
};

struct mq_raft_conf {
  uint32_t n;
  struct {
    struct mq_raft_member id;
    uint8_t role; /* MQ_RAFT_VOTER or MQ_RAFT_LEARNER */
  } m[MQ_RAFT_MAX_MEMBERS];
};

/* Index of id in c, or -1. */
int mq_raft_conf_find(const struct mq_raft_conf *c, struct mq_raft_member id);
/* Decodes the data of a CONF entry. Returns 0 or MQ_ECORRUPT. */
int mq_raft_conf_decode(struct mq_raft_conf *c, const void *data, size_t len);

/* ---- Log entries and messages ------------------------------------------- */

enum {
  MQ_RAFT_ENTRY_NORMAL = 0,
  MQ_RAFT_ENTRY_NOOP = 1,
  MQ_RAFT_ENTRY_CONF = 2
};

struct mq_raft_entry {
  uint64_t term;
  uint64_t index;
  uint32_t type;
  uint32_t len;
  uint8_t *data; /* owned by whoever owns the entry array */
};

enum {
  MQ_RAFT_MSG_APP = 1,  /* index/log_term: previous entry; entries */
  MQ_RAFT_MSG_APP_RESP, /* index: matched (or rejected) index; hint */
  MQ_RAFT_MSG_VOTE,     /* index/log_term: candidate's last entry */
  MQ_RAFT_MSG_VOTE_RESP,
  MQ_RAFT_MSG_PREVOTE,
  MQ_RAFT_MSG_PREVOTE_RESP,
  MQ_RAFT_MSG_HEARTBEAT, /* commit, ctx (ReadIndex round) */
  MQ_RAFT_MSG_HEARTBEAT_RESP,
  MQ_RAFT_MSG_SNAP,        /* one chunk: snap_index/term, index=offset */
  MQ_RAFT_MSG_SNAP_RESP,   /* index: next offset wanted */
  MQ_RAFT_MSG_TIMEOUT_NOW, /* leadership transfer: campaign now */
  MQ_RAFT_MSG_MAX_TYPE = MQ_RAFT_MSG_TIMEOUT_NOW
};

#define MQ_RAFT_FLAG_REJECT 1u
#define MQ_RAFT_FLAG_TRANSFER 2u /* a vote for a leadership transfer */
#define MQ_RAFT_FLAG_RECOVER                                                   \
  4u /* a (pre-)vote of a recovery election; hint:                             \
        the candidate's configuration index */
#define MQ_RAFT_FLAG_NOT_MEMBER                                                \
  8u /* a (pre-)vote answer: you are not in my                                 \
        committed configuration at index hint */

struct mq_raft_msg {
  uint64_t group;
  uint32_t type;
  uint32_t flags;
  struct mq_raft_member from, to;
  uint64_t term;
  uint64_t index;
  uint64_t log_term;
  uint64_t commit;
  uint64_t hint;       /* APP_RESP reject: probe hint index; SNAP: total */
  uint64_t ctx;        /* HEARTBEAT(_RESP): ReadIndex round */
  uint64_t snap_index; /* SNAP, SNAP_RESP */
  uint64_t snap_term;  /* SNAP */
  const struct mq_raft_entry *entries; /* APP */
  size_t n_entries;
  const uint8_t *data; /* SNAP: chunk bytes */
  size_t len;
};

/* ---- Options and lifecycle ---------------------------------------------- */

struct mq_raft_options {
  uint64_t group;
  struct mq_raft_member self;
  uint32_t election_ticks;     /* randomized in [e, 2e); default 10 */
  uint32_t heartbeat_ticks;    /* default 1 */
  uint32_t max_inflight;       /* appends in flight per follower; default 64 */
  uint64_t max_inflight_bytes; /* default 8 MiB */
  uint64_t max_msg_bytes;      /* entry bytes per append; default 1 MiB */
  uint32_t snapshot_chunk;     /* bytes per snapshot chunk; default 256 KiB */
  uint32_t snapshot_window;    /* chunks sent ahead of the follower's
                                  answers; default 4 */
  uint64_t snapshot_entries;   /* ask for a snapshot after this many applied
                                  entries past the last one; 0 = never */
  uint64_t snapshot_bytes;     /* the same once the log holds this many
                                  entry bytes; 0 = no byte bound */
  bool lazy_snapshots;         /* compact the log without a snapshot
                                  (rd.compact_at: once snapshot_entries
                                  are applied past the last point, the
                                  oldest eighth of them) and ask for
                                  the state machine's bytes (rd.snapshot_at)
                                  only when a follower needs them */
  bool lazy_commit;            /* a leader tells followers of a new commit
                                  index with its next append or heartbeat,
                                  or at mq_raft_flush_commit(), instead of
                                  in an append of its own at once */
  uint64_t max_snapshot_bytes; /* accepted from a leader; default 1 GiB */
  uint64_t max_uncommitted;    /* entries a leader holds uncommitted before
                                  proposals get MQ_ENOSPACE; default 65536 */
  uint64_t seed;               /* seeds the election-timeout PRNG */
};

/* Fills o with defaults; the caller then sets group, self and seed. */
void mq_raft_options_default(struct mq_raft_options *o);

struct mq_raft;

/* Creates a group member. `initial` is the group's first configuration,
 * identical on every initial member (it becomes entry 1, term 1, committed);
 * NULL for a member that joins an existing group (it waits to be added and
 * to receive the log or a snapshot from the leader). The options are
 * copied. Returns 0, MQ_EINVAL or MQ_ENOMEM. */
int mq_raft_create(const struct mq_raft_options *o,
                   const struct mq_raft_conf *initial, struct mq_raft **out);
void mq_raft_destroy(struct mq_raft *r);

/* ---- Inputs ------------------------------------------------------------- */

void mq_raft_tick(struct mq_raft *r);
/* lazy_commit: a leader sends an append without entries to every follower
 * that has not yet been told its commit index. No-op otherwise. */
void mq_raft_flush_commit(struct mq_raft *r);
/* Feeds one message from the network; m and everything it points to are
 * borrowed for the call (entries are copied). Messages for another member
 * or group, stale or malformed ones are dropped: returns 0 or MQ_ECORRUPT
 * (dropped as malformed); never asserts on message contents. */
int mq_raft_step(struct mq_raft *r, const struct mq_raft_msg *m);
/* Appends a command (copied). On 0, *term and *index (either may be NULL)
 * name the entry. MQ_ENOTLEADER (forward to the leader), MQ_EUNAVAIL
 * (leadership transfer in progress), MQ_EINVAL (too large), MQ_ENOSPACE
 * (max_uncommitted entries wait for a quorum: back off). */
int mq_raft_propose(struct mq_raft *r, const void *data, size_t len,
                    uint64_t *term, uint64_t *index);
/* Starts a ReadIndex round tagged with the caller's ctx; the answer comes
 * as an mq_raft_read_state. MQ_ENOTLEADER, or MQ_EUNAVAIL until the leader
 * has committed an entry of its term (retry after a tick). Rounds that are
 * pending when leadership is lost are dropped: fail them when ready shows a
 * role change. */
int mq_raft_read_index(struct mq_raft *r, uint64_t ctx);
/* Hands leadership to voter `to` once it has the whole log. MQ_ENOTLEADER,
 * MQ_EINVAL (not a voter, or self), MQ_EPRECOND (a transfer is running). */
int mq_raft_transfer_leadership(struct mq_raft *r, struct mq_raft_member to);
/* Starts an election now (after pre-vote) if this member is a voter. */
void mq_raft_campaign(struct mq_raft *r);
/* The host saw its connection to node `node_key` (any incarnation) close:
 * the process is gone or the link broke. If that node is this follower's
 * leader, the follower stops counting on it: its check-quorum lease ends
 * now (it grants pre-votes) and it campaigns after 1 to election_ticks/2
 * ticks instead of a whole election timeout. Only timing changes: an
 * election still needs a majority of pre-votes and votes, and a leader
 * that still reaches the others keeps their lease. A heartbeat from the
 * leader before the campaign puts the full timeout back. */
void mq_raft_leader_unreachable(struct mq_raft *r, uint64_t node_key);

enum {
  MQ_RAFT_ADD_LEARNER = 1,
  MQ_RAFT_PROMOTE,
  MQ_RAFT_REMOVE
};
/* Proposes one membership change. Replacing a member that lost its memory:
 * ADD_LEARNER(new incarnation), wait for it to catch up, PROMOTE(new),
 * REMOVE(old); each step after the previous one is applied. MQ_ENOTLEADER;
 * MQ_EPRECOND if a change is uncommitted, the leader has not committed in
 * its term yet, a transfer runs, or a learner to promote is behind the
 * commit index; MQ_EINVAL (unknown member, last voter, wrong role);
 * MQ_ENOSPACE (MQ_RAFT_MAX_MEMBERS). */
int mq_raft_change_membership(struct mq_raft *r, int op,
                              struct mq_raft_member m, uint64_t *index);
/* ---- Recovery when a majority is provably gone (recover.c) --------------
 *
 * A member whose node restarted under a newer incarnation is gone: it will
 * never vote again. When gone voters leave a group without a possible
 * majority, the group can be rebuilt from its survivors.
 *
 * mq_raft_recovery_members() lists the members a recovery from this member
 * depends on: those of every configuration from the latest one it knows
 * committed to its latest one (at most `max`; returns how many). The host
 * marks which of them are gone; every other one must be alive and
 * reachable, or the host must not recover automatically (a member that is
 * down may hold the only copy of an entry).
 *
 * mq_raft_recovery_lossless() says whether rebuilding from the survivors
 * loses no committed entry, given the gone members (n_gone of them) and
 * the host's policy, which the answer relies on: it never removes a voter
 * that is not gone from a configuration with keep_voters or fewer voters.
 *
 * mq_raft_recover() starts a recovery election from this member: a pre-vote
 * round, then a new term, and the vote of every member of
 * mq_raft_recovery_members() that is not gone (learners too), each of which
 * grants only to a log at least as up to date as its own; one refusal ends
 * the attempt (retry later; another survivor may hold a more recent log).
 * The winner leads its latest configuration without the gone members and
 * appends that first thing; a winner that is not in it (its own removal
 * was uncommitted) steps down once it commits (diss. §4.2.2). A member
 * that voted for a recovery will not recover its group from an older
 * configuration than that candidate's. Whether to recover is the host's
 * decision: after mq_raft_recovery_lossless(), or on an operator's explicit
 * order, knowing what may be lost. Returns 0 (the outcome shows in ready
 * as a role change), MQ_EPRECOND (this member leads, or voted for a
 * recovery from a newer configuration than its own) or MQ_EINVAL (this
 * member is gone, or no voter would be left). */
size_t mq_raft_recovery_members(const struct mq_raft *r,
                                struct mq_raft_member *out, size_t max);
bool mq_raft_recovery_lossless(const struct mq_raft *r,
                               const struct mq_raft_member *gone, size_t n_gone,
                               uint32_t keep_voters);
int mq_raft_recover(struct mq_raft *r, const struct mq_raft_member *gone,
                    size_t n_gone);

/* Compacts the log behind a snapshot of the state machine taken at exactly
 * `index` (which must be the applied index). The bytes are copied. With
 * data NULL (lazy_snapshots), compacts the log up to index <= applied and
 * keeps no bytes: the core asks for them with rd.snapshot_at when a
 * follower needs a snapshot. */
int mq_raft_compact(struct mq_raft *r, uint64_t index, const void *data,
                    size_t len);

/* The same with bytes, without copying them: blob (from malloc) holds the
 * state machine's len bytes at blob + room, and the core writes its header
 * into the room in front (a few hundred bytes; with too little room it
 * copies after all). index may be below the applied index (bytes built in
 * the background of an older state), but not below the snapshot point.
 * The core owns blob from the call on, whatever it returns. */
int mq_raft_compact_adopt(struct mq_raft *r, uint64_t index, uint8_t *blob,
                          size_t room, size_t len);

/* ---- Outputs ------------------------------------------------------------ */

enum {
  MQ_RAFT_FOLLOWER = 0,
  MQ_RAFT_PRECANDIDATE,
  MQ_RAFT_CANDIDATE,
  MQ_RAFT_LEADER
};

struct mq_raft_snapshot {
  uint64_t index, term;
  struct mq_raft_conf conf;
  const uint8_t *data;
  size_t len;
};

struct mq_raft_read_state {
  uint64_t ctx;   /* as given to mq_raft_read_index() */
  uint64_t index; /* serve once applied >= index */
};

struct mq_raft_ready {
  int role;
  bool role_changed; /* role, term or leader changed since last batch */
  uint64_t term;
  struct mq_raft_member leader; /* {0,0} when unknown */
  uint64_t commit;
  const struct mq_raft_snapshot *snapshot;
  const struct mq_raft_msg *msgs;
  size_t n_msgs;
  const struct mq_raft_entry *committed;
  size_t n_committed;
  const struct mq_raft_read_state *reads;
  size_t n_reads;
  uint64_t snapshot_at; /* see step 7 above; 0 = none */
  uint64_t compact_at;  /* see step 7 above; 0 = none */
};

/* Step 1 later: between mq_raft_ready() and mq_raft_advance() of a batch
 * with rd.snapshot, hands the allocation that holds rd.snapshot->data to the
 * caller, who may then install it after mq_raft_advance() (on another
 * thread, say) and frees it with free() once done. The core keeps no bytes
 * for its snapshot then: as with lazy_snapshots, it asks for them with
 * rd.snapshot_at should a follower need them. NULL when the batch has no
 * snapshot. The caller applies the entries committed after it only once
 * it has installed it. */
void *mq_raft_snapshot_take(struct mq_raft *r);

/* True when there is something to do. May prepare outgoing appends. */
bool mq_raft_has_ready(struct mq_raft *r);
void mq_raft_ready(struct mq_raft *r, struct mq_raft_ready *rd);
void mq_raft_advance(struct mq_raft *r, const struct mq_raft_ready *rd);

/* ---- Inspection (tests, status pages) ----------------------------------- */

struct mq_raft_status {
  struct mq_raft_member self, leader, vote;
  int role;
  bool voted;
  uint64_t term, commit, applied, first_index, last_index;
  uint64_t snap_index, snap_term;
  struct mq_raft_conf conf; /* latest in the log: in effect */
  uint64_t conf_index;
  /* A member of a later, committed configuration said this one is not in
   * it: the group went on without this member (it missed its removal). Its
   * host may drop the replica. */
  bool removed;
};
void mq_raft_status(const struct mq_raft *r, struct mq_raft_status *st);
/* Term of the entry at index (0 if unknown or compacted below the snapshot). */
uint64_t mq_raft_term_at(const struct mq_raft *r, uint64_t index);
/* The current term and commit index (what mq_raft_status() reports, without
 * copying the rest). */
uint64_t mq_raft_term(const struct mq_raft *r);
uint64_t mq_raft_commit(const struct mq_raft *r);
/* Memory the in-memory log holds: entry payloads and the entry array. */
uint64_t mq_raft_log_bytes(const struct mq_raft *r);
/* The entry at index if it is in the log, else NULL. Borrowed. */
const struct mq_raft_entry *mq_raft_entry_at(const struct mq_raft *r,
                                             uint64_t index);
/* Lowest log index written or truncated since the last call (UINT64_MAX if
 * none); lets a checker look only at what changed. */
uint64_t mq_raft_log_changed_from(struct mq_raft *r);

/* ---- Wire format (core/codec.c) ----------------------------------------- */

struct mq_buf;
struct mq_reader;

/* Appends m to b (check b->err once at the end). */
void mq_raft_msg_encode(struct mq_buf *b, const struct mq_raft_msg *m);
/* Decodes one message. Entry headers go to *ents (grown with realloc; the
 * caller frees it), entry and chunk bytes are borrowed from the reader's
 * memory. Returns 0, MQ_ECORRUPT or MQ_ENOMEM; never reads past the end. */
int mq_raft_msg_decode(struct mq_reader *rd, struct mq_raft_msg *m,
                       struct mq_raft_entry **ents, size_t *ents_cap);
void mq_raft_conf_encode(struct mq_buf *b, const struct mq_raft_conf *c);

#endif
