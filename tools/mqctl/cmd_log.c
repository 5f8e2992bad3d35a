/* mqctl topic log commands: produce, read (memquorum.v1.PartitionService). */
#include <inttypes.h>
#include <stdlib.h>

#include "mqctl.h"

enum {
  O_PARTITION = 1,
  O_TIMESTAMP,
  O_OFFSET,
  O_COUNT,
  O_KEY,
  O_SERIAL
};

struct log_opts {
  int64_t partition;
  int64_t timestamp;
  int64_t offset;
  int64_t count;
  const char *key;
  int serial;
};

static int log_opt(void *ctx, const struct mqctl_cmd *cmd, int c, const char *arg) {
  struct log_opts *o = ctx;
  switch (c) {
  case O_PARTITION:
    return mqctl_parse_i64(cmd, "--partition", arg, -1, INT32_MAX, &o->partition);
  case O_TIMESTAMP:
    return mqctl_parse_i64(cmd, "--timestamp", arg, 0, INT64_MAX, &o->timestamp);
  case O_OFFSET:
    return mqctl_parse_i64(cmd, "--offset", arg, 0, INT64_MAX, &o->offset);
  case O_COUNT:
    return mqctl_parse_i64(cmd, "--count", arg, 1, INT32_MAX, &o->count);
  case O_KEY:
    o->key = arg;
    return 0;
  case O_SERIAL:
    o->serial = 1;
    return 0;
  default:
    return -1;
  }
}

int mqctl_cmd_produce(struct mqctl *m, int argc, char **argv) {
  const struct mqctl_cmd *cmd = mqctl_find_cmd("produce");
  static const struct option longopts[] = {MQCTL_GLOBAL_OPTIONS,
                                           {"partition", required_argument, NULL, O_PARTITION},
                                           {"timestamp", required_argument, NULL, O_TIMESTAMP},
                                           {NULL, 0, NULL, 0}};
  struct log_opts o = {.partition = -1};
  int rc = mqctl_parse_opts(m, cmd, argc, argv, longopts, log_opt, &o);
  if (rc < 0) rc = mqctl_check_args(cmd, argc, argv, 3, "TOPIC, KEY and VALUE");
  if (rc >= 0) return rc;

  const char *topic = argv[optind], *key = argv[optind + 1];
  uint8_t *value;
  size_t vlen;
  if (mqctl_load_value(argv[optind + 2], &value, &vlen)) return MQCTL_USAGE;

  Memquorum__V1__Entry entry = MEMQUORUM__V1__ENTRY__INIT;
  entry.key = (char *)key;
  entry.value.data = value;
  entry.value.len = vlen;
  entry.timestamp = o.timestamp;
  Memquorum__V1__ProduceRequest req = MEMQUORUM__V1__PRODUCE_REQUEST__INIT;
  req.topic = (char *)topic;
  req.partition = (int32_t)o.partition;
  req.entry = &entry;

  char what[300];
  snprintf(what, sizeof(what), "produce %s %s", topic, key);
  Memquorum__V1__ProduceResponse *resp;
  rc = mqctl_unary(m, "/memquorum.v1.PartitionService/Produce", &req.base,
                   &memquorum__v1__produce_response__descriptor, (ProtobufCMessage **)&resp, what);
  free(value);
  if (rc) return rc;
  if (m->json)
    printf("{\"offset\":%" PRId64 ",\"partition\":%" PRId32 ",\"revision\":%" PRId64 "}\n",
           resp->offset, resp->partition, resp->revision);
  else
    printf("OK offset=%" PRId64 " partition=%" PRId32 " revision=%" PRId64 "\n", resp->offset,
           resp->partition, resp->revision);
  protobuf_c_message_free_unpacked(&resp->base, NULL);
  return MQCTL_OK;
}

int mqctl_cmd_read(struct mqctl *m, int argc, char **argv) {
  const struct mqctl_cmd *cmd = mqctl_find_cmd("read");
  static const struct option longopts[] = {MQCTL_GLOBAL_OPTIONS,
                                           {"partition", required_argument, NULL, O_PARTITION},
                                           {"offset", required_argument, NULL, O_OFFSET},
                                           {"count", required_argument, NULL, O_COUNT},
                                           {"key", required_argument, NULL, O_KEY},
                                           {"serializable", no_argument, NULL, O_SERIAL},
                                           {NULL, 0, NULL, 0}};
  struct log_opts o = {.partition = -1, .key = ""};
  int rc = mqctl_parse_opts(m, cmd, argc, argv, longopts, log_opt, &o);
  if (rc < 0) rc = mqctl_check_args(cmd, argc, argv, 1, "TOPIC");
  if (rc >= 0) return rc;

  const char *topic = argv[optind];
  Memquorum__V1__ReadRequest req = MEMQUORUM__V1__READ_REQUEST__INIT;
  req.topic = (char *)topic;
  req.partition = (int32_t)o.partition;
  req.offset = o.offset;
  req.count = (int32_t)o.count;
  req.key = (char *)o.key;
  req.consistency = o.serial ? MEMQUORUM__V1__CONSISTENCY__SERIALIZABLE
                             : MEMQUORUM__V1__CONSISTENCY__LINEARIZABLE;
  char what[300];
  snprintf(what, sizeof(what), "read %s", topic);
  Memquorum__V1__ReadResponse *resp;
  rc = mqctl_unary(m, "/memquorum.v1.PartitionService/Read", &req.base,
                   &memquorum__v1__read_response__descriptor, (ProtobufCMessage **)&resp, what);
  if (rc) return rc;
  if (m->json) {
    fputs("{\"entries\":[", stdout);
    for (size_t i = 0; i < resp->n_entries; i++) {
      if (i) fputc(',', stdout);
      mqctl_json_entry(stdout, resp->entries[i]);
    }
    printf("],\"next_offset\":%" PRId64 ",\"high_watermark\":%" PRId64
           ",\"log_start_offset\":%" PRId64 "}\n",
           resp->next_offset, resp->high_watermark, resp->log_start_offset);
  } else {
    for (size_t i = 0; i < resp->n_entries; i++) {
      const Memquorum__V1__Entry *e = resp->entries[i];
      printf("%" PRId32 "\t%" PRId64 "\t%" PRId64 "\t%s\t", e->partition, e->offset, e->timestamp,
             e->key);
      mqctl_print_value(stdout, e->value.data, e->value.len);
      fputc('\n', stdout);
    }
    if (m->verbose)
      printf("next_offset=%" PRId64 " high_watermark=%" PRId64 " log_start_offset=%" PRId64 "\n",
             resp->next_offset, resp->high_watermark, resp->log_start_offset);
  }
  protobuf_c_message_free_unpacked(&resp->base, NULL);
  return MQCTL_OK;
}
