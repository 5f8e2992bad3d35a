/* Internals shared by the files of the public gRPC API server (agent/api).
 *
 * Completion-queue model: one grpc_completion_queue, polled either by the
 * core loop (grpc/cq.h; one gRPC thread, the default) or by
 * cfg->grpc_threads threads of the server's own. Every tag handed to the C
 * core is a pointer to a struct mq_grpc_tag embedded in a per-call (or
 * per-slot) heap object; the polling thread calls tag->fn(tag, ok) through
 * mq_grpc_tag_run(). There is no per-call state outside
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
 * Only agent/api and agent/peer include generated protobuf code (STYLE.md
 * rule 10). */
#ifndef MQ_API_INTERNAL_H
#define MQ_API_INTERNAL_H

#include "api/server.h"
#include "cluster/node.h"
#include "config/config.h"
#include "grpc/pack.h"
#include "grpc/tag.h"
#include "grpc/tls.h"
#include "store/sm.h"
#include "util/err.h"
#include "util/ratelimit.h"

#include "memquorum/v1/memquorum.pb-c.h"

#include <grpc/byte_buffer.h>
#include <grpc/grpc.h>
#include <protobuf-c/protobuf-c.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

struct mq_api_server;
struct api_method;

/* Starts serving one accepted call. Takes ownership of call and payload
 * (payload may be NULL). */
typedef void (*api_start_fn)(struct mq_api_server *s, const struct api_method *m, grpc_call *call,
                             gpr_timespec deadline, grpc_byte_buffer *payload);

enum api_kind {
  API_UNARY,
  API_SERVER_STREAM,
  API_BIDI
};

/* One method this server answers. impl is the handler's own descriptor. */
struct api_method {
  const char *path; /* "/memquorum.v1.KV/Put" */
  enum api_kind kind;
  api_start_fn start;
  const void *impl;
};

/* methods.c: every method, and the distinct service names in order. */
extern const struct api_method api_methods[];
extern const size_t api_n_methods;
/* Writes the service name of api_methods[i] ("memquorum.v1.KV") into buf. */
void api_method_service(const struct api_method *m, char *buf, size_t cap);
/* True if name is one of our services. */
bool api_is_service(const char *name);

/* A streaming call that the server can reach from outside its CQ events:
 * on shutdown (cancelled with UNAVAILABLE) and on readiness changes. */
struct api_stream {
  struct mq_api_server *srv;
  grpc_call *call;
  atomic_int refs;
  struct api_stream *prev, *next;
  void (*poke)(struct api_stream *st);    /* readiness changed; under srv->mu; may be NULL */
  void (*destroy)(struct api_stream *st); /* frees the containing object */
};

struct mq_api_server {
  struct mq_node *node;
  const struct mq_config *cfg;
  grpc_server *server;
  grpc_completion_queue *cq;
  bool shared_cq; /* the core loop's (grpc/cq.h): no completion-queue threads of ours */
  void **handles; /* registered-method handle per api_methods[i] */
  pthread_t *threads;
  int n_threads;
  int port;

  pthread_mutex_t mu;
  pthread_cond_t cv;      /* calls and slots drained, the server shut down */
  pthread_cond_t poll_cv; /* the poller's sleep: woken only to stop, not on
                             every call's end as cv is */
  long live;              /* call objects alive (unary, stream, unimplemented) */
  long slots;             /* request slots posted and not yet returned */
  bool tls_on;
  struct mq_tls tls;            /* valid while tls_on; outlives the server */
  struct mq_ratelimit refusals; /* log lines of calls refused by --max-calls */
  bool shutting_down;           /* no new slots are posted */
  bool shutdown_notified;       /* the server's shutdown tag fired */
  bool cq_down;
  bool shut;                 /* mq_api_server_shutdown finished */
  struct api_stream streams; /* list head of live streams */
  struct mq_grpc_tag shutdown_tag;

  /* readiness poller for health watchers */
  pthread_t poller;
  bool poller_started;
  bool poller_stop;
  bool ready;
};

/* Call accounting: every call object does api_live_add(s, 1) when created
 * and api_live_add(s, -1) when freed. */
void api_live_add(struct mq_api_server *s, long d);

/* Streams: register sets refs to 1 and links; unref to 0 unlinks, unrefs
 * the grpc_call, calls destroy and drops the live count. tryref fails when
 * the stream is already dying. */
void api_stream_register(struct mq_api_server *s, struct api_stream *st, grpc_call *call);
void api_stream_ref(struct api_stream *st);
bool api_stream_tryref(struct api_stream *st);
void api_stream_unref(struct api_stream *st);

/* ---- handlers ---- */
void api_unary_start(struct mq_api_server *s, const struct api_method *m, grpc_call *call,
                     gpr_timespec deadline, grpc_byte_buffer *payload);
void api_watch_start(struct mq_api_server *s, const struct api_method *m, grpc_call *call,
                     gpr_timespec deadline, grpc_byte_buffer *payload);
void api_health_watch_start(struct mq_api_server *s, const struct api_method *m, grpc_call *call,
                            gpr_timespec deadline, grpc_byte_buffer *payload);
void api_reflection_start(struct mq_api_server *s, const struct api_method *m, grpc_call *call,
                          gpr_timespec deadline, grpc_byte_buffer *payload);
/* Answers a call with only a status (no message) and frees it. Takes
 * ownership of call. */
void api_reply_status(struct mq_api_server *s, grpc_call *call, int grpc_code, const char *msg);
/* Answers a call to a method we do not serve with UNIMPLEMENTED. */
void api_unimplemented_start(struct mq_api_server *s, grpc_call *call, const char *method);

/* ---- unary method descriptors (convert.c, health.c) ---- */

struct api_unary;

/* A unary method: how to validate its request and fill the node request,
 * and how to build its reply. */
struct api_unary_method {
  const ProtobufCMessageDescriptor *in;
  /* Validates u->msg and fills u->req. Returns 0 to submit u->req to the
   * node, 1 when the answer is local (u->local set, reply builds from it),
   * or a negative MQ_E* with a message in st. */
  int (*prepare)(struct api_unary *u, struct mq_status *st);
  /* Builds the reply once the request succeeded; NULL when out of memory. */
  grpc_byte_buffer *(*reply)(struct api_unary *u);
  /* A successful request without a KeyValue answers NOT_FOUND (Get). */
  bool kv_required;
};

struct api_unary {
  struct mq_grpc_tag tag;
  struct mq_api_server *srv;
  const struct api_unary_method *um;
  grpc_call *call;
  int64_t deadline_ms;
  ProtobufCMessage *msg; /* the unpacked request, in arena; req borrows from it */
  struct mq_req req;
  bool submitted;
  int local; /* local answer (health): a ServingStatus */
  grpc_byte_buffer *resp;
  grpc_slice details;
  bool has_details;
  int cancelled;
  struct mq_grpc_arena arena;
};

extern const struct api_unary_method api_um_put, api_um_get, api_um_delete, api_um_scan,
    api_um_produce, api_um_read, api_um_status, api_um_recover, api_um_health_check;

/* NUL-terminated copies of (pointer, length) strings for protobuf-c string
 * fields, freed together once the message is packed. */
struct api_strs {
  struct api_strs_chunk *head;
  int err; /* MQ_ENOMEM after a failed copy */
};
void api_strs_init(struct api_strs *a);
char *api_strs_dup(struct api_strs *a, const char *p, size_t n); /* "" on failure */
void api_strs_free(struct api_strs *a);

/* Conversions of store types to messages (convert.c). Values are borrowed
 * from the source; strings are copied into a. */
void api_kv_to_msg(struct api_strs *a, const struct mq_kv *kv, Memquorum__V1__KeyValue *m);
void api_entry_to_msg(struct api_strs *a, const struct mq_entry *e, Memquorum__V1__Entry *m);

/* ---- reflection database (descdb.c) ---- */

/* Embedded FileDescriptorSets (generated api_descs.c). */
struct api_desc_blob {
  const char *path;
  const unsigned char *data;
  size_t len;
};
extern const struct api_desc_blob api_desc_blobs[];
extern const size_t api_n_desc_blobs;

/* Parses the embedded descriptors once. Returns 0 or MQ_ECORRUPT/MQ_ENOMEM. */
int api_descdb_init(void);
/* Index of the file named `name` or defining symbol `sym`; -1 if none. */
int api_descdb_by_filename(const char *name);
int api_descdb_by_symbol(const char *sym);
/* The FileDescriptorProto bytes of file i, and its dependencies' indexes. */
void api_descdb_file(int i, const unsigned char **data, size_t *len);
size_t api_descdb_deps(int i, int *out, size_t cap);
size_t api_descdb_count(void);

#endif
