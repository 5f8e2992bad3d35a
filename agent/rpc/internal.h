/* Internals shared by the files of the gRPC server (agent/rpc).
 *
 * Completion-queue model: one grpc_completion_queue, polled either by the
 * core loop (rpc/cq.h; one gRPC thread, the default) or by
 * cfg->grpc_threads threads of the server's own. Every tag handed to the C
 * core is a pointer to a struct rpc_tag embedded in a per-call (or
 * per-slot) heap object; the polling thread calls tag->fn(tag, ok) through
 * rpc_tag_run(). There is no per-call state outside
 * those objects.
 *
 * Wake-ups from other threads (the core loop's done() and watch notify
 * callbacks, the readiness poller) are zero-op batches,
 * grpc_call_start_batch(call, NULL, 0, tag, NULL), which the C core turns
 * into an immediate completion of tag on the call's queue. That is only
 * legal while the call is referenced and the queue is not shut down; the
 * server shuts the queue down only after every call object is gone
 * (srv->live == 0).
 *
 * Only agent/rpc includes generated protobuf code (STYLE.md rule 10). */
#ifndef MQ_RPC_INTERNAL_H
#define MQ_RPC_INTERNAL_H

#include "cluster/node.h"
#include "config/config.h"
#include "rpc/server.h"
#include "store/sm.h"
#include "util/err.h"

#include "memquorum/v1/memquorum.pb-c.h"

#include <grpc/byte_buffer.h>
#include <grpc/grpc.h>
#include <protobuf-c/protobuf-c.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#define RPC_CONTAINER(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

/* A group of tags whose owner counts its batches in flight (the peer
 * transport, to know when it may let go of its calls): end() runs after
 * the handler of every tag of the group. */
struct rpc_tag_group {
  void (*end)(struct rpc_tag_group *g);
};

/* A completion-queue tag. ok is the event's success flag. group is NULL
 * unless the tag belongs to one (the objects holding tags are zeroed when
 * allocated). */
struct rpc_tag {
  void (*fn)(struct rpc_tag *t, bool ok);
  struct rpc_tag_group *group;
};

/* Runs the handler of one event's tag, then its group's end(). */
void rpc_tag_run(void *tag, bool ok);

struct mq_rpc_server;
struct rpc_method;

/* Starts serving one accepted call. Takes ownership of call and payload
 * (payload may be NULL). */
typedef void (*rpc_start_fn)(struct mq_rpc_server *s, const struct rpc_method *m, grpc_call *call,
                             gpr_timespec deadline, grpc_byte_buffer *payload);

enum rpc_kind { RPC_UNARY, RPC_SERVER_STREAM, RPC_BIDI };

/* One method this server answers. impl is the handler's own descriptor. */
struct rpc_method {
  const char *path; /* "/memquorum.v1.KV/Put" */
  enum rpc_kind kind;
  rpc_start_fn start;
  const void *impl;
};

/* methods.c: every method, and the distinct service names in order. */
extern const struct rpc_method rpc_methods[];
extern const size_t rpc_n_methods;
/* Writes the service name of rpc_methods[i] ("memquorum.v1.KV") into buf. */
void rpc_method_service(const struct rpc_method *m, char *buf, size_t cap);
/* True if name is one of our services. */
bool rpc_is_service(const char *name);

/* A streaming call that the server can reach from outside its CQ events:
 * on shutdown (cancelled with UNAVAILABLE) and on readiness changes. */
struct rpc_stream {
  struct mq_rpc_server *srv;
  grpc_call *call;
  atomic_int refs;
  struct rpc_stream *prev, *next;
  void (*poke)(struct rpc_stream *st);   /* readiness changed; under srv->mu; may be NULL */
  void (*destroy)(struct rpc_stream *st); /* frees the containing object */
};

struct mq_rpc_server {
  struct mq_node *node;
  const struct mq_config *cfg;
  struct mq_store_limits limits;
  grpc_server *server;
  grpc_completion_queue *cq;
  bool shared_cq; /* the core loop's (rpc/cq.h): no completion-queue threads of ours */
  void **handles; /* registered-method handle per rpc_methods[i] */
  pthread_t *threads;
  int n_threads;
  int port;

  pthread_mutex_t mu;
  pthread_cond_t cv;
  long live;                 /* call objects alive (unary, stream, unimplemented) */
  long slots;                /* request slots posted and not yet returned */
  bool shutting_down;        /* no new slots are posted */
  bool shutdown_notified;    /* the server's shutdown tag fired */
  bool cq_down;
  bool shut;                 /* mq_rpc_server_shutdown finished */
  struct rpc_stream streams; /* list head of live streams */
  struct rpc_tag shutdown_tag;

  /* readiness poller for health watchers */
  pthread_t poller;
  bool poller_started;
  bool poller_stop;
  bool ready;
};

/* Call accounting: every call object does rpc_live_add(s, 1) when created
 * and rpc_live_add(s, -1) when freed. */
void rpc_live_add(struct mq_rpc_server *s, long d);

/* Streams: register sets refs to 1 and links; unref to 0 unlinks, unrefs
 * the grpc_call, calls destroy and drops the live count. tryref fails when
 * the stream is already dying. */
void rpc_stream_register(struct mq_rpc_server *s, struct rpc_stream *st, grpc_call *call);
void rpc_stream_ref(struct rpc_stream *st);
bool rpc_stream_tryref(struct rpc_stream *st);
void rpc_stream_unref(struct rpc_stream *st);

/* ---- helpers (util.c) ---- */

/* A bump allocator that lets one request unpack into memory its call
 * already holds: the message and its strings take no malloc of their own
 * unless they outgrow the buffer, and freeing is then nearly free. */
#define RPC_ARENA_BYTES 512
struct rpc_arena {
  ProtobufCAllocator pa; /* protobuf-c's view; allocator_data is the arena */
  size_t used;
  _Alignas(16) unsigned char buf[RPC_ARENA_BYTES];
};
void rpc_arena_init(struct rpc_arena *a);

/* Unpacks a request message. Returns NULL (with a message in st) when the
 * payload is missing or not a valid message of that type. */
ProtobufCMessage *rpc_unpack(const ProtobufCMessageDescriptor *d, grpc_byte_buffer *bb,
                             struct mq_status *st);
/* The same, allocating from arena a (NULL: malloc); free the message with
 * protobuf_c_message_free_unpacked(m, &a->pa). */
ProtobufCMessage *rpc_unpack_in(const ProtobufCMessageDescriptor *d, grpc_byte_buffer *bb,
                                struct rpc_arena *a, struct mq_status *st);
/* Packs a message into a new byte buffer; NULL when out of memory. */
grpc_byte_buffer *rpc_pack(const ProtobufCMessage *m);
/* Shuts down a queue of one's own and destroys it: its n polling threads
 * see the shutdown and are joined, or, with none, it is drained here. */
void rpc_cq_close(grpc_completion_queue *cq, pthread_t *threads, int n);
/* Fills a SEND_STATUS_FROM_SERVER op; *details must outlive the batch and
 * be released with grpc_slice_unref afterwards. */
void rpc_op_status(grpc_op *op, int grpc_code, const char *msg, grpc_slice *details);
/* The call deadline as CLOCK_MONOTONIC ms for struct mq_req; 0: none. */
int64_t rpc_deadline_ms(gpr_timespec deadline);

/* ---- handlers ---- */
void rpc_unary_start(struct mq_rpc_server *s, const struct rpc_method *m, grpc_call *call,
                     gpr_timespec deadline, grpc_byte_buffer *payload);
void rpc_watch_start(struct mq_rpc_server *s, const struct rpc_method *m, grpc_call *call,
                     gpr_timespec deadline, grpc_byte_buffer *payload);
void rpc_health_watch_start(struct mq_rpc_server *s, const struct rpc_method *m, grpc_call *call,
                            gpr_timespec deadline, grpc_byte_buffer *payload);
void rpc_reflection_start(struct mq_rpc_server *s, const struct rpc_method *m, grpc_call *call,
                          gpr_timespec deadline, grpc_byte_buffer *payload);
/* Answers a call with only a status (no message) and frees it. Takes
 * ownership of call. */
void rpc_reply_status(struct mq_rpc_server *s, grpc_call *call, int grpc_code, const char *msg);
/* Answers a call to a method we do not serve with UNIMPLEMENTED. */
void rpc_unimplemented_start(struct mq_rpc_server *s, grpc_call *call, const char *method);

/* ---- unary method descriptors (convert.c, health.c) ---- */

struct rpc_unary;

/* A unary method: how to validate its request and fill the node request,
 * and how to build its reply. */
struct rpc_unary_method {
  const ProtobufCMessageDescriptor *in;
  /* Validates u->msg and fills u->req. Returns 0 to submit u->req to the
   * node, 1 when the answer is local (u->local set, reply builds from it),
   * or a negative MQ_E* with a message in st. */
  int (*prepare)(struct rpc_unary *u, struct mq_status *st);
  /* Builds the reply once the request succeeded; NULL when out of memory. */
  grpc_byte_buffer *(*reply)(struct rpc_unary *u);
  /* A successful request without a KeyValue answers NOT_FOUND (Get). */
  bool kv_required;
};

struct rpc_unary {
  struct rpc_tag tag;
  struct mq_rpc_server *srv;
  const struct rpc_unary_method *um;
  grpc_call *call;
  int64_t deadline_ms;
  ProtobufCMessage *msg;   /* the unpacked request, in arena; req borrows from it */
  struct mq_req req;
  bool submitted;
  int local;               /* local answer (health): a ServingStatus */
  grpc_byte_buffer *resp;
  grpc_slice details;
  bool has_details;
  int cancelled;
  struct rpc_arena arena;
};

extern const struct rpc_unary_method rpc_um_put, rpc_um_get, rpc_um_delete, rpc_um_scan,
    rpc_um_produce, rpc_um_read, rpc_um_status, rpc_um_recover, rpc_um_health_check;

/* Validators shared by unary methods and Watch (convert.c). They return 0
 * or MQ_EINVAL with a message naming the field. */
int rpc_check_key(const struct mq_rpc_server *s, const char *field, const char *key,
                  struct mq_status *st);
int rpc_check_prefix(const struct mq_rpc_server *s, const char *field, const char *p,
                     struct mq_status *st);
int rpc_check_topic(const struct mq_rpc_server *s, const char *topic, struct mq_status *st);
int rpc_check_shard(const struct mq_rpc_server *s, const char *field, int64_t shard,
                    bool allow_minus_one, struct mq_status *st);

/* NUL-terminated copies of (pointer, length) strings for protobuf-c string
 * fields, freed together once the message is packed. */
struct rpc_strs {
  struct rpc_strs_chunk *head;
  int err; /* MQ_ENOMEM after a failed copy */
};
void rpc_strs_init(struct rpc_strs *a);
char *rpc_strs_dup(struct rpc_strs *a, const char *p, size_t n); /* "" on failure */
void rpc_strs_free(struct rpc_strs *a);

/* Conversions of store types to messages (convert.c). Values are borrowed
 * from the source; strings are copied into a. */
void rpc_kv_to_msg(struct rpc_strs *a, const struct mq_kv *kv, Memquorum__V1__KeyValue *m);
void rpc_entry_to_msg(struct rpc_strs *a, const struct mq_entry *e, Memquorum__V1__Entry *m);

/* ---- reflection database (descdb.c) ---- */

/* Embedded FileDescriptorSets (generated rpc_descs.c). */
struct rpc_desc_blob {
  const char *path;
  const unsigned char *data;
  size_t len;
};
extern const struct rpc_desc_blob rpc_desc_blobs[];
extern const size_t rpc_n_desc_blobs;

/* Parses the embedded descriptors once. Returns 0 or MQ_ECORRUPT/MQ_ENOMEM. */
int rpc_descdb_init(void);
/* Index of the file named `name` or defining symbol `sym`; -1 if none. */
int rpc_descdb_by_filename(const char *name);
int rpc_descdb_by_symbol(const char *sym);
/* The FileDescriptorProto bytes of file i, and its dependencies' indexes. */
void rpc_descdb_file(int i, const unsigned char **data, size_t *len);
size_t rpc_descdb_deps(int i, int *out, size_t cap);
size_t rpc_descdb_count(void);

#endif
