/* A blocking gRPC client over the C core, for the command-line tools.
 *
 * struct mq_client owns one channel and one pluck completion queue. Unary
 * calls and server-streaming calls block the calling thread until the
 * reply, the next message or the deadline. One thread at a time may use a
 * client's blocking calls; the channel itself (mq_client.channel) may also
 * carry calls on other completion queues, which is how mqbench drives it.
 *
 * Errors: functions return 0 or a negative MQ_E* code (util/err.h). Calls
 * also fill a struct mq_rpc_status with the gRPC status code and the
 * server's message, which is what a person needs to see. */
#ifndef MQ_TOOLS_CLIENT_H
#define MQ_TOOLS_CLIENT_H

#include <stddef.h>

#include <grpc/grpc.h>
#include <protobuf-c/protobuf-c.h>

struct mq_client_opts {
  size_t max_recv_bytes;  /* 0: the gRPC default (4 MiB) */
  int own_connection;     /* 1: never share a TCP connection with other
                             channels of this process */
  const char *user_agent; /* NULL: none; copied */
  /* TLS: tls_ca (PEM file of the CA that signed the agent's certificate)
   * turns it on; tls_cert and tls_key (PEM files) present a client
   * certificate, for an agent started with --api-tls-ca. */
  const char *tls_ca, *tls_cert, *tls_key;
};

struct mq_client {
  grpc_channel *channel;
  grpc_completion_queue *cq; /* pluck queue of the blocking calls */
  char target[256];
  char err[512]; /* why mq_client_open failed, when it says */
};

#define MQ_RPC_MSG_MAX 512
struct mq_rpc_status {
  grpc_status_code code;
  char msg[MQ_RPC_MSG_MAX];
};

/* Creates a channel to target ("host:port", or any gRPC target URI),
 * insecure or TLS (opts->tls_ca). Connecting is lazy: errors show up on the
 * first call. opts may be NULL. Returns 0 or MQ_EINVAL / MQ_ENOMEM / MQ_EIO
 * (a TLS file: c->err says which). */
int mq_client_open(struct mq_client *c, const char *target, const struct mq_client_opts *opts);
void mq_client_close(struct mq_client *c);

/* Registers a method path such as "/memquorum.v1.KV/Put" on the channel and
 * returns the handle calls take. path is borrowed for the client's life (pass
 * a string literal). */
void *mq_client_method(struct mq_client *c, const char *path);

/* Waits until the channel is connected, at most timeout_ms. Returns 0 or
 * MQ_ETIMEDOUT. */
int mq_client_wait_ready(struct mq_client *c, int timeout_ms);

/* Deadline timeout_ms from now; timeout_ms <= 0 means none. */
gpr_timespec mq_client_deadline(int timeout_ms);

/* One unary call: sends req, waits for the reply and unpacks it as resp_desc
 * into *resp (the caller frees it with protobuf_c_message_free_unpacked).
 * Returns 0 when the status is OK and the reply parses; otherwise *resp is
 * NULL, st says what happened, and the return is the MQ_E* code nearest to
 * the gRPC status (MQ_ECORRUPT when an OK reply does not parse). */
int mq_client_unary(struct mq_client *c, void *method, const ProtobufCMessage *req,
                    const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp,
                    int timeout_ms, struct mq_rpc_status *st);

/* A server-streaming call in progress. Caller-allocated; all state of the
 * call lives here, and the tags of its batches point into it. */
struct mq_stream {
  struct mq_client *client;
  grpc_call *call;
  grpc_metadata_array initial_md;
  grpc_metadata_array trailing_md;
  grpc_status_code status;
  grpc_slice details;
  int status_done;                     /* the RECV_STATUS batch has completed */
  char tag_send, tag_recv, tag_status; /* distinct addresses used as tags */
};

/* Starts a server-streaming call with one request message. Returns 0 or an
 * MQ_E* code with st filled; on failure nothing needs closing. */
int mq_stream_open(struct mq_stream *s, struct mq_client *c, void *method,
                   const ProtobufCMessage *req, int timeout_ms, struct mq_rpc_status *st);

/* Waits for the next message. Returns 1 with *out set (free it with
 * protobuf_c_message_free_unpacked), 0 when the server ended the stream with
 * OK, or a negative MQ_E* code with st filled. */
int mq_stream_next(struct mq_stream *s, const ProtobufCMessageDescriptor *desc,
                   ProtobufCMessage **out, struct mq_rpc_status *st);

/* Cancels the call if it is still running and releases it. */
void mq_stream_close(struct mq_stream *s);

#endif
