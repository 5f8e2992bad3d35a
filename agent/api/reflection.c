/* gRPC server reflection, grpc.reflection.v1 and v1alpha
 * ServerReflectionInfo: a bidi stream on which the client sends requests
 * and reads one response to each, until it half-closes.
 *
 * Both versions have the same messages and field numbers, so one handler
 * serves both with the v1 message types. Answers come from the embedded
 * descriptors (descdb.c): list_services, file_by_filename and
 * file_containing_symbol (the file and everything it imports, transitively);
 * all_extension_numbers_of_type answers an empty list for our messages (we
 * define no extensions); anything else gets an error_response NOT_FOUND.
 *
 * One batch is in flight per call at a time: SEND_MESSAGE of the previous
 * answer together with RECV_MESSAGE of the next request. */
#include "api/internal.h"

#include "grpc/reflection/v1/reflection.pb-c.h"

#include <stdlib.h>
#include <string.h>

struct refl_call {
  struct api_stream st;
  struct mq_grpc_tag tag;
  grpc_byte_buffer *in, *out;
  grpc_slice details;
  bool has_details;
  int cancelled;
};

static void refl_destroy(struct api_stream *st) {
  struct refl_call *rc = MQ_GRPC_CONTAINER(st, struct refl_call, st);
  if (rc->in)
    grpc_byte_buffer_destroy(rc->in);
  if (rc->out)
    grpc_byte_buffer_destroy(rc->out);
  if (rc->has_details)
    grpc_slice_unref(rc->details);
  free(rc);
}

static void done_fn(struct mq_grpc_tag *t, bool ok) {
  api_stream_unref(&MQ_GRPC_CONTAINER(t, struct refl_call, tag)->st);
}

static void finish(struct refl_call *rc, int grpc_code, const char *msg) {
  grpc_op ops[2];
  memset(ops, 0, sizeof ops);
  mq_grpc_op_status(&ops[0], grpc_code, msg, &rc->details);
  rc->has_details = true;
  ops[1].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
  ops[1].data.recv_close_on_server.cancelled = &rc->cancelled;
  rc->tag.fn = done_fn;
  if (grpc_call_start_batch(rc->st.call, ops, 2, &rc->tag, NULL) != GRPC_CALL_OK)
    api_stream_unref(&rc->st);
}

/* Adds file i and its imports (depth first, each once) to list. */
static void add_file(int i, int *list, size_t *n, size_t cap) {
  for (size_t k = 0; k < *n; k++)
    if (list[k] == i)
      return;
  if (*n == cap)
    return;
  list[(*n)++] = i;
  int deps[32];
  size_t nd = api_descdb_deps(i, deps, 32);
  for (size_t k = 0; k < nd; k++)
    add_file(deps[k], list, n, cap);
}

static grpc_byte_buffer *answer(Grpc__Reflection__V1__ServerReflectionRequest *req) {
  Grpc__Reflection__V1__ServerReflectionResponse resp =
      GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__INIT;
  Grpc__Reflection__V1__ErrorResponse err = GRPC__REFLECTION__V1__ERROR_RESPONSE__INIT;
  Grpc__Reflection__V1__ListServiceResponse list =
      GRPC__REFLECTION__V1__LIST_SERVICE_RESPONSE__INIT;
  Grpc__Reflection__V1__FileDescriptorResponse fdr =
      GRPC__REFLECTION__V1__FILE_DESCRIPTOR_RESPONSE__INIT;
  Grpc__Reflection__V1__ExtensionNumberResponse ext =
      GRPC__REFLECTION__V1__EXTENSION_NUMBER_RESPONSE__INIT;
  Grpc__Reflection__V1__ServiceResponse svcs[64];
  Grpc__Reflection__V1__ServiceResponse *svcp[64];
  char names[64][128];
  size_t nfiles = api_descdb_count();
  int *fl = calloc(nfiles ? nfiles : 1, sizeof *fl);
  ProtobufCBinaryData *blobs = calloc(nfiles ? nfiles : 1, sizeof *blobs);
  char errmsg[300];
  grpc_byte_buffer *bb = NULL;
  int file = -1;

  if (!fl || !blobs)
    goto out;
  resp.valid_host = req->host;
  resp.original_request = req;

  switch (req->message_request_case) {
  case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_LIST_SERVICES: {
    size_t n = 0;
    for (size_t i = 0; i < api_n_methods && n < 64; i++) {
      api_method_service(&api_methods[i], names[n], sizeof names[n]);
      bool seen = false;
      for (size_t k = 0; k < n; k++)
        seen = seen || strcmp(names[k], names[n]) == 0;
      if (seen)
        continue;
      grpc__reflection__v1__service_response__init(&svcs[n]);
      svcs[n].name = names[n];
      svcp[n] = &svcs[n];
      n++;
    }
    list.n_service = n;
    list.service = svcp;
    resp.message_response_case =
        GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_LIST_SERVICES_RESPONSE;
    resp.list_services_response = &list;
    break;
  }
  case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_BY_FILENAME:
    file = api_descdb_by_filename(req->file_by_filename);
    snprintf(errmsg, sizeof errmsg, "file \"%.200s\" not found", req->file_by_filename);
    break;
  case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL:
    file = api_descdb_by_symbol(req->file_containing_symbol);
    snprintf(errmsg, sizeof errmsg, "symbol \"%.200s\" not found", req->file_containing_symbol);
    break;
  case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_ALL_EXTENSION_NUMBERS_OF_TYPE:
    if (api_descdb_by_symbol(req->all_extension_numbers_of_type) >= 0) {
      ext.base_type_name = req->all_extension_numbers_of_type;
      resp.message_response_case =
          GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ALL_EXTENSION_NUMBERS_RESPONSE;
      resp.all_extension_numbers_response = &ext;
    } else {
      snprintf(errmsg, sizeof errmsg, "type \"%.200s\" not found",
               req->all_extension_numbers_of_type);
    }
    break;
  case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_EXTENSION:
    snprintf(errmsg, sizeof errmsg, "extension not found (this server defines none)");
    break;
  default:
    snprintf(errmsg, sizeof errmsg, "request names no question");
    break;
  }

  if (file >= 0) {
    size_t n = 0;
    add_file(file, fl, &n, nfiles);
    for (size_t k = 0; k < n; k++) {
      const unsigned char *d;
      api_descdb_file(fl[k], &d, &blobs[k].len);
      blobs[k].data = (uint8_t *)d;
    }
    fdr.n_file_descriptor_proto = n;
    fdr.file_descriptor_proto = blobs;
    resp.message_response_case =
        GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_FILE_DESCRIPTOR_RESPONSE;
    resp.file_descriptor_response = &fdr;
  } else if (resp.message_response_case ==
             GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE__NOT_SET) {
    err.error_code = GRPC_STATUS_NOT_FOUND;
    err.error_message = errmsg;
    resp.message_response_case =
        GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ERROR_RESPONSE;
    resp.error_response = &err;
  }
  bb = mq_grpc_pack(&resp.base);
out:
  free(blobs);
  free(fl);
  return bb;
}

/* A request arrived (or the client half-closed / went away). */
static void recv_fn(struct mq_grpc_tag *t, bool ok) {
  struct refl_call *rc = MQ_GRPC_CONTAINER(t, struct refl_call, tag);
  struct mq_status st;
  Grpc__Reflection__V1__ServerReflectionRequest *req;

  if (rc->out) {
    grpc_byte_buffer_destroy(rc->out);
    rc->out = NULL;
  }
  if (!ok || !rc->in) {
    finish(rc, GRPC_STATUS_OK, "");
    return;
  }
  req = (void *)mq_grpc_unpack(&grpc__reflection__v1__server_reflection_request__descriptor, rc->in,
                               &st);
  grpc_byte_buffer_destroy(rc->in);
  rc->in = NULL;
  if (!req) {
    finish(rc, GRPC_STATUS_INVALID_ARGUMENT, st.msg);
    return;
  }
  rc->out = answer(req);
  protobuf_c_message_free_unpacked(&req->base, NULL);
  if (!rc->out) {
    finish(rc, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  grpc_op ops[2];
  memset(ops, 0, sizeof ops);
  ops[0].op = GRPC_OP_SEND_MESSAGE;
  ops[0].data.send_message.send_message = rc->out;
  ops[1].op = GRPC_OP_RECV_MESSAGE;
  ops[1].data.recv_message.recv_message = &rc->in;
  if (grpc_call_start_batch(rc->st.call, ops, 2, &rc->tag, NULL) != GRPC_CALL_OK)
    finish(rc, GRPC_STATUS_INTERNAL, "cannot continue the stream");
}

void api_reflection_start(struct mq_api_server *s, const struct api_method *m, grpc_call *call,
                          gpr_timespec deadline, grpc_byte_buffer *payload) {
  struct refl_call *rc = calloc(1, sizeof *rc);
  if (payload)
    grpc_byte_buffer_destroy(payload);
  if (!rc) {
    api_reply_status(s, call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  rc->st.destroy = refl_destroy;
  rc->tag.fn = recv_fn;
  /* The one reference is held by whichever batch is in flight. */
  api_stream_register(s, &rc->st, call);
  grpc_op ops[2];
  memset(ops, 0, sizeof ops);
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[1].op = GRPC_OP_RECV_MESSAGE;
  ops[1].data.recv_message.recv_message = &rc->in;
  if (grpc_call_start_batch(call, ops, 2, &rc->tag, NULL) != GRPC_CALL_OK)
    finish(rc, GRPC_STATUS_INTERNAL, "cannot start the stream");
}
