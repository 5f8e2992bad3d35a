/* Blocking unary and server-streaming calls over the gRPC C core, for the
 * command-line tools. See client.h for the contract. */
#include "client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

#include "codec.h"
#include "util/err.h"

/* A PEM file as a NUL-terminated string (caller frees), or NULL with c->err
 * set. */
static char *read_pem(struct mq_client *c, const char *flag, const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    snprintf(c->err, sizeof c->err, "%s %s: %s", flag, path, strerror(errno));
    return NULL;
  }
  size_t cap = 1 << 20;
  char *buf = malloc(cap + 1);
  size_t n = buf ? fread(buf, 1, cap + 1, f) : 0;
  fclose(f);
  if (!buf || n == 0 || n > cap) {
    snprintf(c->err, sizeof c->err, "%s %s: %s", flag, path,
             !buf ? "out of memory"
             : n  ? "larger than 1 MiB"
                  : "empty or unreadable");
    free(buf);
    return NULL;
  }
  buf[n] = '\0';
  return buf;
}

static int tls_creds(struct mq_client *c, const struct mq_client_opts *o,
                     grpc_channel_credentials **out) {
  if (!o->tls_cert != !o->tls_key) {
    snprintf(c->err, sizeof c->err, "--tls-cert and --tls-key go together");
    return MQ_EINVAL;
  }
  char *ca = read_pem(c, "--tls-ca", o->tls_ca);
  char *cert = ca && o->tls_cert ? read_pem(c, "--tls-cert", o->tls_cert) : NULL;
  char *key = cert ? read_pem(c, "--tls-key", o->tls_key) : NULL;
  int rc = MQ_EIO;
  if (ca && (!o->tls_cert || key)) {
    grpc_ssl_pem_key_cert_pair pair = {key, cert};
    *out = grpc_ssl_credentials_create_ex(ca, key ? &pair : NULL, NULL, NULL); /* copies */
    rc = 0;
  }
  free(key);
  free(cert);
  free(ca);
  return rc;
}

int mq_client_open(struct mq_client *c, const char *target, const struct mq_client_opts *opts) {
  memset(c, 0, sizeof(*c));
  if (!target || !*target || strlen(target) >= sizeof(c->target)) return MQ_EINVAL;
  strcpy(c->target, target);

  grpc_arg args[3];
  size_t nargs = 0;
  if (opts && opts->max_recv_bytes) {
    args[nargs].type = GRPC_ARG_INTEGER;
    args[nargs].key = (char *)GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
    args[nargs].value.integer =
        opts->max_recv_bytes > 0x7fffffff ? 0x7fffffff : (int)opts->max_recv_bytes;
    nargs++;
  }
  if (opts && opts->own_connection) {
    args[nargs].type = GRPC_ARG_INTEGER;
    args[nargs].key = (char *)GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL;
    args[nargs].value.integer = 1;
    nargs++;
  }
  if (opts && opts->user_agent) {
    args[nargs].type = GRPC_ARG_STRING;
    args[nargs].key = (char *)GRPC_ARG_PRIMARY_USER_AGENT_STRING;
    args[nargs].value.string = (char *)opts->user_agent;
    nargs++;
  }
  grpc_channel_args chargs = {nargs, args};

  grpc_channel_credentials *creds;
  if (opts && opts->tls_ca) {
    int rc = tls_creds(c, opts, &creds);
    if (rc) return rc;
  } else {
    creds = grpc_insecure_credentials_create();
  }
  if (!creds) return MQ_ENOMEM;
  c->channel = grpc_channel_create(target, creds, &chargs);
  grpc_channel_credentials_release(creds);
  if (!c->channel) return MQ_EINVAL;
  c->cq = grpc_completion_queue_create_for_pluck(NULL);
  if (!c->cq) {
    grpc_channel_destroy(c->channel);
    c->channel = NULL;
    return MQ_ENOMEM;
  }
  return 0;
}

void mq_client_close(struct mq_client *c) {
  if (c->cq) {
    grpc_completion_queue_shutdown(c->cq);
    /* Nothing is pending when the caller closes; drain to the shutdown
     * event as the API requires before destroy. */
    for (;;) {
      grpc_event ev =
          grpc_completion_queue_pluck(c->cq, NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
      if (ev.type == GRPC_QUEUE_SHUTDOWN) break;
    }
    grpc_completion_queue_destroy(c->cq);
    c->cq = NULL;
  }
  if (c->channel) {
    grpc_channel_destroy(c->channel);
    c->channel = NULL;
  }
}

void *mq_client_method(struct mq_client *c, const char *path) {
  return grpc_channel_register_call(c->channel, path, NULL, NULL);
}

gpr_timespec mq_client_deadline(int timeout_ms) {
  if (timeout_ms <= 0) return gpr_inf_future(GPR_CLOCK_MONOTONIC);
  return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(timeout_ms, GPR_TIMESPAN));
}

int mq_client_wait_ready(struct mq_client *c, int timeout_ms) {
  gpr_timespec deadline = mq_client_deadline(timeout_ms);
  char tag;
  for (;;) {
    grpc_connectivity_state st = grpc_channel_check_connectivity_state(c->channel, 1);
    if (st == GRPC_CHANNEL_READY) return 0;
    if (gpr_time_cmp(gpr_now(GPR_CLOCK_MONOTONIC), deadline) >= 0) return MQ_ETIMEDOUT;
    grpc_channel_watch_connectivity_state(c->channel, st, deadline, c->cq, &tag);
    grpc_event ev =
        grpc_completion_queue_pluck(c->cq, &tag, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    if (ev.type != GRPC_OP_COMPLETE) return MQ_EINTERNAL;
    if (!ev.success) return MQ_ETIMEDOUT; /* deadline passed first */
  }
}

/* Fills st from a finished call's status and details. */
static int set_status(struct mq_rpc_status *st, grpc_status_code code, grpc_slice details,
                      const char *error_string) {
  st->code = code;
  size_t n = GRPC_SLICE_LENGTH(details);
  if (n == 0 && error_string && code != GRPC_STATUS_OK) {
    snprintf(st->msg, sizeof(st->msg), "%s", error_string);
  } else {
    if (n >= sizeof(st->msg)) n = sizeof(st->msg) - 1;
    memcpy(st->msg, GRPC_SLICE_START_PTR(details), n);
    st->msg[n] = '\0';
  }
  return mq_err_from_grpc(code);
}

static int local_error(struct mq_rpc_status *st, grpc_status_code code, int err, const char *msg) {
  st->code = code;
  snprintf(st->msg, sizeof(st->msg), "%s", msg);
  return err;
}

int mq_client_unary(struct mq_client *c, void *method, const ProtobufCMessage *req,
                    const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp,
                    int timeout_ms, struct mq_rpc_status *st) {
  *resp = NULL;
  grpc_byte_buffer *send = mq_codec_pack(req);
  if (!send) return local_error(st, GRPC_STATUS_RESOURCE_EXHAUSTED, MQ_ENOMEM, "out of memory");
  grpc_call *call =
      grpc_channel_create_registered_call(c->channel, NULL, GRPC_PROPAGATE_DEFAULTS, c->cq, method,
                                          mq_client_deadline(timeout_ms), NULL);
  if (!call) {
    grpc_byte_buffer_destroy(send);
    return local_error(st, GRPC_STATUS_INTERNAL, MQ_EINTERNAL, "cannot create call");
  }

  grpc_metadata_array initial_md, trailing_md;
  grpc_metadata_array_init(&initial_md);
  grpc_metadata_array_init(&trailing_md);
  grpc_byte_buffer *recv = NULL;
  grpc_status_code code = GRPC_STATUS_UNKNOWN;
  grpc_slice details = grpc_empty_slice();
  const char *error_string = NULL;

  grpc_op ops[6];
  memset(ops, 0, sizeof(ops));
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[1].op = GRPC_OP_SEND_MESSAGE;
  ops[1].data.send_message.send_message = send;
  ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
  ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
  ops[3].data.recv_initial_metadata.recv_initial_metadata = &initial_md;
  ops[4].op = GRPC_OP_RECV_MESSAGE;
  ops[4].data.recv_message.recv_message = &recv;
  ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  ops[5].data.recv_status_on_client.trailing_metadata = &trailing_md;
  ops[5].data.recv_status_on_client.status = &code;
  ops[5].data.recv_status_on_client.status_details = &details;
  ops[5].data.recv_status_on_client.error_string = &error_string;

  int rc;
  char tag; /* the batch's tag: any address unique to this call */
  grpc_call_error ce = grpc_call_start_batch(call, ops, 6, &tag, NULL);
  if (ce != GRPC_CALL_OK) {
    rc = local_error(st, GRPC_STATUS_INTERNAL, MQ_EINTERNAL, "cannot start call");
    goto unref_call;
  }
  grpc_event ev =
      grpc_completion_queue_pluck(c->cq, &tag, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
  if (ev.type != GRPC_OP_COMPLETE) {
    rc = local_error(st, GRPC_STATUS_INTERNAL, MQ_EINTERNAL, "completion queue shut down");
    goto unref_call;
  }
  rc = set_status(st, code, details, error_string);
  if (rc == 0) {
    if (!recv) {
      rc = local_error(st, GRPC_STATUS_INTERNAL, MQ_ECORRUPT,
                       "server sent OK without a reply message");
    } else if (mq_codec_unpack(recv, resp_desc, resp) != 0) {
      char msg[160];
      snprintf(msg, sizeof(msg), "reply is not a valid %s", resp_desc->name);
      rc = local_error(st, GRPC_STATUS_INTERNAL, MQ_ECORRUPT, msg);
    }
  }

unref_call:
  if (error_string) gpr_free((void *)error_string);
  if (recv) grpc_byte_buffer_destroy(recv);
  grpc_slice_unref(details);
  grpc_metadata_array_destroy(&initial_md);
  grpc_metadata_array_destroy(&trailing_md);
  grpc_byte_buffer_destroy(send);
  grpc_call_unref(call);
  return rc;
}

/* ------------------------------------------------------------------------ */
/* Server streaming */

static grpc_event pluck(struct mq_stream *s, void *tag) {
  return grpc_completion_queue_pluck(s->client->cq, tag, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
}

int mq_stream_open(struct mq_stream *s, struct mq_client *c, void *method,
                   const ProtobufCMessage *req, int timeout_ms, struct mq_rpc_status *st) {
  memset(s, 0, sizeof(*s));
  s->client = c;
  s->details = grpc_empty_slice();
  grpc_metadata_array_init(&s->initial_md);
  grpc_metadata_array_init(&s->trailing_md);

  grpc_byte_buffer *send = mq_codec_pack(req);
  if (!send) {
    grpc_metadata_array_destroy(&s->initial_md);
    grpc_metadata_array_destroy(&s->trailing_md);
    return local_error(st, GRPC_STATUS_RESOURCE_EXHAUSTED, MQ_ENOMEM, "out of memory");
  }
  s->call = grpc_channel_create_registered_call(c->channel, NULL, GRPC_PROPAGATE_DEFAULTS, c->cq,
                                                method, mq_client_deadline(timeout_ms), NULL);
  int rc;
  if (!s->call) {
    rc = local_error(st, GRPC_STATUS_INTERNAL, MQ_EINTERNAL, "cannot create call");
    goto destroy_send;
  }

  /* The status batch runs for the whole call; it completes when the server
   * ends the stream, the deadline passes, or we cancel. */
  grpc_op sop;
  memset(&sop, 0, sizeof(sop));
  sop.op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  sop.data.recv_status_on_client.trailing_metadata = &s->trailing_md;
  sop.data.recv_status_on_client.status = &s->status;
  sop.data.recv_status_on_client.status_details = &s->details;
  if (grpc_call_start_batch(s->call, &sop, 1, &s->tag_status, NULL) != GRPC_CALL_OK) {
    rc = local_error(st, GRPC_STATUS_INTERNAL, MQ_EINTERNAL, "cannot start call");
    goto unref_call;
  }

  grpc_op ops[4];
  memset(ops, 0, sizeof(ops));
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[1].op = GRPC_OP_SEND_MESSAGE;
  ops[1].data.send_message.send_message = send;
  ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
  ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
  ops[3].data.recv_initial_metadata.recv_initial_metadata = &s->initial_md;
  if (grpc_call_start_batch(s->call, ops, 4, &s->tag_send, NULL) != GRPC_CALL_OK) {
    grpc_call_cancel(s->call, NULL);
    pluck(s, &s->tag_status);
    rc = local_error(st, GRPC_STATUS_INTERNAL, MQ_EINTERNAL, "cannot start call");
    goto unref_call;
  }
  grpc_event ev = pluck(s, &s->tag_send);
  grpc_byte_buffer_destroy(send);
  if (ev.type == GRPC_OP_COMPLETE && ev.success) return 0;

  /* The call failed before the server answered: the status says why. */
  pluck(s, &s->tag_status);
  s->status_done = 1;
  rc = set_status(st, s->status, s->details, NULL);
  if (rc == 0) rc = local_error(st, GRPC_STATUS_INTERNAL, MQ_EINTERNAL, "call failed");
  mq_stream_close(s);
  return rc;

unref_call:
  grpc_call_unref(s->call);
  s->call = NULL;
destroy_send:
  grpc_byte_buffer_destroy(send);
  grpc_slice_unref(s->details);
  grpc_metadata_array_destroy(&s->initial_md);
  grpc_metadata_array_destroy(&s->trailing_md);
  return rc;
}

int mq_stream_next(struct mq_stream *s, const ProtobufCMessageDescriptor *desc,
                   ProtobufCMessage **out, struct mq_rpc_status *st) {
  *out = NULL;
  grpc_byte_buffer *recv = NULL;
  if (!s->status_done) {
    grpc_op op;
    memset(&op, 0, sizeof(op));
    op.op = GRPC_OP_RECV_MESSAGE;
    op.data.recv_message.recv_message = &recv;
    if (grpc_call_start_batch(s->call, &op, 1, &s->tag_recv, NULL) != GRPC_CALL_OK)
      return local_error(st, GRPC_STATUS_INTERNAL, MQ_EINTERNAL, "cannot read from stream");
    pluck(s, &s->tag_recv);
  }
  if (recv) {
    int rc = mq_codec_unpack(recv, desc, out);
    grpc_byte_buffer_destroy(recv);
    if (rc == 0) return 1;
    char msg[160];
    snprintf(msg, sizeof(msg), "stream message is not a valid %s", desc->name);
    return local_error(st, GRPC_STATUS_INTERNAL, MQ_ECORRUPT, msg);
  }
  /* No message: the stream is over; its status says how it ended. */
  if (!s->status_done) {
    pluck(s, &s->tag_status);
    s->status_done = 1;
  }
  int rc = set_status(st, s->status, s->details, NULL);
  return rc;
}

void mq_stream_close(struct mq_stream *s) {
  if (!s->call) return;
  if (!s->status_done) {
    grpc_call_cancel(s->call, NULL);
    pluck(s, &s->tag_status);
    s->status_done = 1;
  }
  grpc_call_unref(s->call);
  s->call = NULL;
  grpc_slice_unref(s->details);
  grpc_metadata_array_destroy(&s->initial_md);
  grpc_metadata_array_destroy(&s->trailing_md);
}
