/* mqctl KV commands: put, get, del, scan (service memquorum.v1.KV). */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "mqctl.h"

/* ---- preconditions shared by put and del ---- */

enum {
  O_IF_ABSENT = 1,
  O_IF_VERSION,
  O_IF_MODREV,
  O_IF_VALUE,
  O_FIRST_FREE
};
#define PRECOND_OPTIONS                                                                            \
  {"if-absent", no_argument, NULL, O_IF_ABSENT},                                                   \
      {"if-version", required_argument, NULL, O_IF_VERSION},                                       \
      {"if-mod-revision", required_argument, NULL, O_IF_MODREV}, {                                 \
    "if-value", required_argument, NULL, O_IF_VALUE                                                \
  }

struct precond {
  int set;
  Memquorum__V1__Precondition pb;
  uint8_t *value; /* owned, for --if-value */
};

/* Returns 1 when c was a precondition option, 0 if not, -1 on error. */
static int precond_opt(const struct mqctl_cmd *cmd, struct precond *p, int c, const char *arg) {
  if (c < O_IF_ABSENT || c > O_IF_VALUE) return 0;
  if (p->set) {
    mqctl_usage(cmd,
                "give at most one of --if-absent, --if-version, --if-mod-revision, --if-value");
    return -1;
  }
  p->set = 1;
  memquorum__v1__precondition__init(&p->pb);
  int64_t v;
  switch (c) {
  case O_IF_ABSENT:
    p->pb.condition_case = MEMQUORUM__V1__PRECONDITION__CONDITION_ABSENT;
    p->pb.absent = 1;
    break;
  case O_IF_VERSION:
    if (mqctl_parse_i64(cmd, "--if-version", arg, 0, INT64_MAX, &v)) return -1;
    p->pb.condition_case = MEMQUORUM__V1__PRECONDITION__CONDITION_VERSION;
    p->pb.version = v;
    break;
  case O_IF_MODREV:
    if (mqctl_parse_i64(cmd, "--if-mod-revision", arg, 0, INT64_MAX, &v)) return -1;
    p->pb.condition_case = MEMQUORUM__V1__PRECONDITION__CONDITION_MOD_REVISION;
    p->pb.mod_revision = v;
    break;
  case O_IF_VALUE: {
    size_t n;
    if (mqctl_load_value(arg, &p->value, &n)) return -1;
    p->pb.condition_case = MEMQUORUM__V1__PRECONDITION__CONDITION_VALUE;
    p->pb.value.data = p->value;
    p->pb.value.len = n;
    break;
  }
  }
  return 1;
}

/* ---- put ---- */

struct put_opts {
  int64_t ttl;
  int prev;
  struct precond pc;
};
enum {
  O_TTL = O_FIRST_FREE,
  O_PREV,
  O_SERIAL,
  O_LIMIT,
  O_START_AFTER,
  O_KEYS_ONLY,
  O_ALL
};

static int put_opt(void *ctx, const struct mqctl_cmd *cmd, int c, const char *arg) {
  struct put_opts *o = ctx;
  int r = precond_opt(cmd, &o->pc, c, arg);
  if (r != 0) return r > 0 ? 0 : -1;
  if (c == O_TTL) return mqctl_parse_i64(cmd, "--ttl", arg, 0, INT64_MAX, &o->ttl);
  if (c == O_PREV) return o->prev = 1, 0;
  return -1;
}

int mqctl_cmd_put(struct mqctl *m, int argc, char **argv) {
  const struct mqctl_cmd *cmd = mqctl_find_cmd("put");
  static const struct option longopts[] = {MQCTL_GLOBAL_OPTIONS,
                                           PRECOND_OPTIONS,
                                           {"ttl", required_argument, NULL, O_TTL},
                                           {"prev", no_argument, NULL, O_PREV},
                                           {NULL, 0, NULL, 0}};
  struct put_opts o = {0};
  struct precond *pc = &o.pc;
  uint8_t *value = NULL;
  int rc = mqctl_parse_opts(m, cmd, argc, argv, longopts, put_opt, &o);
  if (rc < 0) rc = mqctl_check_args(cmd, argc, argv, 2, "KEY and VALUE");
  if (rc >= 0) goto free_precond;
  const char *key = argv[optind];
  size_t vlen;
  rc = MQCTL_USAGE;
  if (mqctl_load_value(argv[optind + 1], &value, &vlen)) goto free_precond;

  Memquorum__V1__PutRequest req = MEMQUORUM__V1__PUT_REQUEST__INIT;
  req.key = (char *)key;
  req.value.data = value;
  req.value.len = vlen;
  req.ttl_ms = o.ttl;
  req.return_previous = o.prev;
  if (pc->set) req.precondition = &pc->pb;

  char what[300];
  snprintf(what, sizeof(what), "put %s", key);
  Memquorum__V1__PutResponse *resp;
  rc = mqctl_unary(m, "/memquorum.v1.KV/Put", &req.base, &memquorum__v1__put_response__descriptor,
                   (ProtobufCMessage **)&resp, what);
  if (rc) goto free_value;
  if (m->json) {
    printf("{\"revision\":%" PRId64 ",\"shard\":%" PRId32, resp->revision, resp->shard);
    if (o.prev) {
      fputs(",\"previous\":", stdout);
      if (resp->previous)
        mqctl_json_kv(stdout, resp->previous);
      else
        fputs("null", stdout);
    }
    fputs("}\n", stdout);
  } else {
    printf("OK revision=%" PRId64 " shard=%" PRId32 "\n", resp->revision, resp->shard);
    if (o.prev) {
      if (!resp->previous) {
        printf("previous: (none)\n");
      } else if (m->verbose) {
        printf("previous:\n");
        mqctl_print_kv_block(stdout, resp->previous);
      } else {
        printf("previous: ");
        mqctl_print_value(stdout, resp->previous->value.data, resp->previous->value.len);
        printf("\n");
      }
    }
  }
  protobuf_c_message_free_unpacked(&resp->base, NULL);
  rc = MQCTL_OK;

free_value:
  free(value);
free_precond:
  free(pc->value);
  return rc;
}

/* ---- get ---- */

static int serial_opt(void *ctx, const struct mqctl_cmd *cmd, int c, const char *arg) {
  if (c != O_SERIAL) return -1;
  *(int *)ctx = 1;
  return 0;
}

int mqctl_cmd_get(struct mqctl *m, int argc, char **argv) {
  const struct mqctl_cmd *cmd = mqctl_find_cmd("get");
  static const struct option longopts[] = {
      MQCTL_GLOBAL_OPTIONS, {"serializable", no_argument, NULL, O_SERIAL}, {NULL, 0, NULL, 0}};
  int serial = 0;
  int rc = mqctl_parse_opts(m, cmd, argc, argv, longopts, serial_opt, &serial);
  if (rc < 0) rc = mqctl_check_args(cmd, argc, argv, 1, "KEY");
  if (rc >= 0) return rc;

  const char *key = argv[optind];
  Memquorum__V1__GetRequest req = MEMQUORUM__V1__GET_REQUEST__INIT;
  req.key = (char *)key;
  req.consistency =
      serial ? MEMQUORUM__V1__CONSISTENCY__SERIALIZABLE : MEMQUORUM__V1__CONSISTENCY__LINEARIZABLE;
  char what[300];
  snprintf(what, sizeof(what), "get %s", key);
  Memquorum__V1__GetResponse *resp;
  rc = mqctl_unary(m, "/memquorum.v1.KV/Get", &req.base, &memquorum__v1__get_response__descriptor,
                   (ProtobufCMessage **)&resp, what);
  if (rc) return rc;
  if (!resp->kv) {
    fprintf(stderr, "mqctl: %s: server replied OK without a key-value\n", what);
    rc = MQCTL_FAIL;
  } else if (m->json) {
    mqctl_json_kv(stdout, resp->kv);
    fputc('\n', stdout);
  } else if (m->verbose) {
    mqctl_print_kv_block(stdout, resp->kv);
  } else {
    /* The bytes exactly as stored, so `mqctl get k > file` round-trips
     * (plus the newline a terminal needs). */
    fwrite(resp->kv->value.data, 1, resp->kv->value.len, stdout);
    fputc('\n', stdout);
  }
  protobuf_c_message_free_unpacked(&resp->base, NULL);
  return rc;
}

/* ---- del ---- */

static int del_opt(void *ctx, const struct mqctl_cmd *cmd, int c, const char *arg) {
  return precond_opt(cmd, ctx, c, arg) > 0 ? 0 : -1;
}

int mqctl_cmd_del(struct mqctl *m, int argc, char **argv) {
  const struct mqctl_cmd *cmd = mqctl_find_cmd("del");
  static const struct option longopts[] = {
      MQCTL_GLOBAL_OPTIONS, PRECOND_OPTIONS, {NULL, 0, NULL, 0}};
  struct precond pc = {0};
  int rc = mqctl_parse_opts(m, cmd, argc, argv, longopts, del_opt, &pc);
  if (rc < 0) rc = mqctl_check_args(cmd, argc, argv, 1, "KEY");
  if (rc >= 0) goto free_precond;

  const char *key = argv[optind];
  Memquorum__V1__DeleteRequest req = MEMQUORUM__V1__DELETE_REQUEST__INIT;
  req.key = (char *)key;
  if (pc.set) req.precondition = &pc.pb;
  char what[300];
  snprintf(what, sizeof(what), "del %s", key);
  Memquorum__V1__DeleteResponse *resp;
  rc = mqctl_unary(m, "/memquorum.v1.KV/Delete", &req.base,
                   &memquorum__v1__delete_response__descriptor, (ProtobufCMessage **)&resp, what);
  if (rc) goto free_precond;
  if (m->json)
    printf("{\"revision\":%" PRId64 ",\"shard\":%" PRId32 ",\"deleted\":%s}\n", resp->revision,
           resp->shard, resp->deleted ? "true" : "false");
  else
    printf("OK revision=%" PRId64 " shard=%" PRId32 " deleted=%s\n", resp->revision, resp->shard,
           resp->deleted ? "true" : "false");
  protobuf_c_message_free_unpacked(&resp->base, NULL);

free_precond:
  free(pc.value);
  return rc;
}

/* ---- scan ---- */

struct scan_opts {
  int64_t limit;
  const char *start_after;
  int keys_only, all, serial;
};

static int scan_opt(void *ctx, const struct mqctl_cmd *cmd, int c, const char *arg) {
  struct scan_opts *o = ctx;
  switch (c) {
  case O_LIMIT:
    return mqctl_parse_i64(cmd, "--limit", arg, 1, INT32_MAX, &o->limit);
  case O_START_AFTER:
    o->start_after = arg;
    return 0;
  case O_KEYS_ONLY:
    o->keys_only = 1;
    return 0;
  case O_ALL:
    o->all = 1;
    return 0;
  case O_SERIAL:
    o->serial = 1;
    return 0;
  default:
    return -1;
  }
}

static void print_scan_page(const struct mqctl *m, const struct scan_opts *o,
                            const Memquorum__V1__ScanResponse *resp) {
  if (m->json) {
    fputs("{\"kvs\":[", stdout);
    for (size_t i = 0; i < resp->n_kvs; i++) {
      if (i) fputc(',', stdout);
      mqctl_json_kv(stdout, resp->kvs[i]);
    }
    printf("],\"more\":%s}\n", resp->more ? "true" : "false");
    return;
  }
  for (size_t i = 0; i < resp->n_kvs; i++) {
    const Memquorum__V1__KeyValue *kv = resp->kvs[i];
    fputs(kv->key, stdout);
    if (!o->keys_only) {
      fputc('\t', stdout);
      mqctl_print_value(stdout, kv->value.data, kv->value.len);
    }
    if (m->verbose)
      printf("\tshard=%" PRId32 " mod_revision=%" PRId64 " version=%" PRId64, kv->shard,
             kv->mod_revision, kv->version);
    fputc('\n', stdout);
  }
}

int mqctl_cmd_scan(struct mqctl *m, int argc, char **argv) {
  const struct mqctl_cmd *cmd = mqctl_find_cmd("scan");
  static const struct option longopts[] = {MQCTL_GLOBAL_OPTIONS,
                                           {"limit", required_argument, NULL, O_LIMIT},
                                           {"start-after", required_argument, NULL, O_START_AFTER},
                                           {"keys-only", no_argument, NULL, O_KEYS_ONLY},
                                           {"all", no_argument, NULL, O_ALL},
                                           {"serializable", no_argument, NULL, O_SERIAL},
                                           {NULL, 0, NULL, 0}};
  struct scan_opts o = {.start_after = ""};
  int rc = mqctl_parse_opts(m, cmd, argc, argv, longopts, scan_opt, &o);
  if (rc < 0) rc = mqctl_check_args(cmd, argc, argv, 1, "PREFIX");
  if (rc >= 0) return rc;

  const char *prefix = argv[optind];
  char what[300];
  snprintf(what, sizeof(what), "scan %s", prefix);
  char *cursor = strdup(o.start_after);
  if (!cursor) return MQCTL_FAIL;
  for (;;) {
    Memquorum__V1__ScanRequest req = MEMQUORUM__V1__SCAN_REQUEST__INIT;
    req.prefix = (char *)prefix;
    req.start_after = cursor;
    req.limit = (int32_t)o.limit;
    req.keys_only = o.keys_only;
    req.consistency = o.serial ? MEMQUORUM__V1__CONSISTENCY__SERIALIZABLE
                               : MEMQUORUM__V1__CONSISTENCY__LINEARIZABLE;
    Memquorum__V1__ScanResponse *resp;
    rc = mqctl_unary(m, "/memquorum.v1.KV/Scan", &req.base,
                     &memquorum__v1__scan_response__descriptor, (ProtobufCMessage **)&resp, what);
    if (rc) break;
    print_scan_page(m, &o, resp);
    int more = resp->more && resp->n_kvs > 0;
    if (more) {
      free(cursor);
      cursor = strdup(resp->kvs[resp->n_kvs - 1]->key);
    }
    if (resp->more && resp->n_kvs == 0) {
      /* A server that says "more" but returns nothing would loop forever. */
      fprintf(stderr, "mqctl: %s: server reported more keys but returned none\n", what);
      rc = MQCTL_FAIL;
    }
    protobuf_c_message_free_unpacked(&resp->base, NULL);
    if (rc || !more) break;
    if (!cursor) {
      rc = MQCTL_FAIL;
      break;
    }
    if (!o.all) {
      if (!m->json) {
        fprintf(stderr, "mqctl: more keys follow; next page: --start-after ");
        mq_json_str(stderr, cursor);
        fputs(" (or --all)\n", stderr);
      }
      break;
    }
    fflush(stdout);
  }
  free(cursor);
  return rc;
}
