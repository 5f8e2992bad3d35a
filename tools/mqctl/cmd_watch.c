/* mqctl watch: follows the change stream of memquorum.v1.Watch/Watch and
 * prints one line (or JSON object) per event. */
#include <stdlib.h>
#include <string.h>

#include "mqctl.h"

enum {
  O_PREFIX = 1,
  O_TOPIC,
  O_FROM,
  O_COUNT
};

struct watch_opts {
  const char *prefix;
  const char *topic;
  const char *from;
  int64_t count;
};

static int watch_opt(void *ctx, const struct mqctl_cmd *cmd, int c, const char *arg) {
  struct watch_opts *o = ctx;
  switch (c) {
  case O_PREFIX:
    o->prefix = arg;
    return 0;
  case O_TOPIC:
    o->topic = arg;
    return 0;
  case O_FROM:
    o->from = arg;
    return 0;
  case O_COUNT:
    return mqctl_parse_i64(cmd, "--count", arg, 1, INT64_MAX, &o->count);
  default:
    return -1;
  }
}

/* Parses "SHARD=REV,SHARD=REV" into map entries (entries and the pointer
 * array in one allocation, *out; free it). Returns the number of entries or
 * -1 after a usage message. */
static int parse_from(const struct mqctl_cmd *cmd, const char *spec,
                      Memquorum__V1__WatchRequest__StartRevisionsEntry ***out) {
  size_t n = 1;
  for (const char *p = spec; *p; p++) n += *p == ',';
  void *mem = calloc(n, sizeof(Memquorum__V1__WatchRequest__StartRevisionsEntry *) +
                            sizeof(Memquorum__V1__WatchRequest__StartRevisionsEntry));
  if (!mem) return -1;
  Memquorum__V1__WatchRequest__StartRevisionsEntry **ptrs = mem;
  Memquorum__V1__WatchRequest__StartRevisionsEntry *ents = (void *)(ptrs + n);
  const char *p = spec;
  for (size_t i = 0; i < n; i++) {
    char *end;
    long long shard = strtoll(p, &end, 10);
    if (end == p || *end != '=' || shard < 0 || shard > INT32_MAX) goto bad;
    p = end + 1;
    long long rev = strtoll(p, &end, 10);
    if (end == p || (*end != ',' && *end != '\0') || rev < 0) goto bad;
    p = end + (*end == ',');
    memquorum__v1__watch_request__start_revisions_entry__init(&ents[i]);
    ents[i].key = (int32_t)shard;
    ents[i].value = rev;
    ptrs[i] = &ents[i];
  }
  *out = ptrs;
  return (int)n;
bad:
  free(mem);
  mqctl_usage(cmd, "--from: expected SHARD=REVISION[,SHARD=REVISION...], got '%s'", spec);
  return -1;
}

int mqctl_cmd_watch(struct mqctl *m, int argc, char **argv) {
  const struct mqctl_cmd *cmd = mqctl_find_cmd("watch");
  static const struct option longopts[] = {MQCTL_GLOBAL_OPTIONS,
                                           {"prefix", required_argument, NULL, O_PREFIX},
                                           {"topic", required_argument, NULL, O_TOPIC},
                                           {"from", required_argument, NULL, O_FROM},
                                           {"count", required_argument, NULL, O_COUNT},
                                           {NULL, 0, NULL, 0}};
  struct watch_opts o = {.prefix = "", .topic = ""};
  int rc = mqctl_parse_opts(m, cmd, argc, argv, longopts, watch_opt, &o);
  if (rc < 0) rc = mqctl_check_args(cmd, argc, argv, 0, "");
  if (rc >= 0) return rc;
  if (o.prefix[0] && o.topic[0]) return mqctl_usage(cmd, "give --prefix or --topic, not both");

  Memquorum__V1__WatchRequest req = MEMQUORUM__V1__WATCH_REQUEST__INIT;
  req.prefix = (char *)o.prefix;
  req.topic = (char *)o.topic;
  Memquorum__V1__WatchRequest__StartRevisionsEntry **from = NULL;
  if (o.from) {
    int n = parse_from(cmd, o.from, &from);
    if (n < 0) return MQCTL_USAGE;
    req.n_start_revisions = (size_t)n;
    req.start_revisions = from;
  }
  const char *what = "watch";
  struct mq_client *c = mqctl_client(m);
  if (!c) {
    free(from);
    return MQCTL_FAIL;
  }
  struct mq_stream s;
  struct mq_rpc_status st;
  if (mq_stream_open(&s, c, mq_client_method(c, "/memquorum.v1.Watch/Watch"), &req.base,
                     mqctl_stream_timeout(m), &st) != 0) {
    free(from);
    return mqctl_rpc_error(what, &st);
  }
  free(from);

  int64_t seen = 0;
  rc = MQCTL_OK;
  while (o.count == 0 || seen < o.count) {
    ProtobufCMessage *msg;
    int r = mq_stream_next(&s, &memquorum__v1__watch_event__descriptor, &msg, &st);
    if (r == 0) break; /* the server ended the stream */
    if (r < 0) {
      rc = mqctl_rpc_error(what, &st);
      break;
    }
    mqctl_print_event(m, (Memquorum__V1__WatchEvent *)msg);
    protobuf_c_message_free_unpacked(msg, NULL);
    seen++;
  }
  mq_stream_close(&s);
  return rc;
}
