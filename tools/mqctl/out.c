/* mqctl output of the API's messages, for people and as JSON. JSON field
 * names are the proto field names, so scripts can follow the .proto. */
#include <inttypes.h>

#include "json.h"
#include "mqctl.h"
#include "util/utf8.h"

void mqctl_print_value(FILE *f, const uint8_t *p, size_t n) {
  if (mq_utf8_valid(p, n)) {
    fwrite(p, 1, n, f);
  } else {
    fputs("base64:", f);
    mq_base64_write(f, p, n);
  }
}

void mqctl_json_kv(FILE *f, const Memquorum__V1__KeyValue *kv) {
  fputs("{\"key\":", f);
  mq_json_str(f, kv->key);
  fputc(',', f);
  mq_json_bytes_field(f, "value", kv->value.data, kv->value.len);
  fprintf(f,
          ",\"create_revision\":%" PRId64 ",\"mod_revision\":%" PRId64 ",\"version\":%" PRId64
          ",\"expires_at_ms\":%" PRId64 ",\"shard\":%" PRId32 "}",
          kv->create_revision, kv->mod_revision, kv->version, kv->expires_at_ms, kv->shard);
}

void mqctl_json_entry(FILE *f, const Memquorum__V1__Entry *e) {
  fputs("{\"key\":", f);
  mq_json_str(f, e->key);
  fputc(',', f);
  mq_json_bytes_field(f, "value", e->value.data, e->value.len);
  fprintf(f, ",\"timestamp\":%" PRId64 ",\"offset\":%" PRId64 ",\"partition\":%" PRId32 "}",
          e->timestamp, e->offset, e->partition);
}

void mqctl_print_kv_block(FILE *f, const Memquorum__V1__KeyValue *kv) {
  fprintf(f, "key: %s\nvalue: ", kv->key);
  mqctl_print_value(f, kv->value.data, kv->value.len);
  fprintf(f,
          "\nshard: %" PRId32 "\ncreate_revision: %" PRId64 "\nmod_revision: %" PRId64
          "\nversion: %" PRId64 "\nexpires_at_ms: %" PRId64 "\n",
          kv->shard, kv->create_revision, kv->mod_revision, kv->version, kv->expires_at_ms);
}

static const char *event_type_name(Memquorum__V1__WatchEvent__EventType t) {
  switch (t) {
  case MEMQUORUM__V1__WATCH_EVENT__EVENT_TYPE__PUT:
    return "PUT";
  case MEMQUORUM__V1__WATCH_EVENT__EVENT_TYPE__DELETE:
    return "DELETE";
  case MEMQUORUM__V1__WATCH_EVENT__EVENT_TYPE__EXPIRE:
    return "EXPIRE";
  case MEMQUORUM__V1__WATCH_EVENT__EVENT_TYPE__PRODUCE:
    return "PRODUCE";
  default:
    return "UNKNOWN";
  }
}

void mqctl_print_event(const struct mqctl *m, const Memquorum__V1__WatchEvent *ev) {
  FILE *f = stdout;
  const char *type = event_type_name(ev->type);
  if (m->json) {
    fprintf(f, "{\"type\":\"%s\",\"shard\":%" PRId32 ",\"revision\":%" PRId64, type, ev->shard,
            ev->revision);
    if (ev->kv) {
      fputs(",\"kv\":", f);
      mqctl_json_kv(f, ev->kv);
    }
    if (ev->topic && ev->topic[0]) {
      fputs(",\"topic\":", f);
      mq_json_str(f, ev->topic);
    }
    if (ev->entry) {
      fputs(",\"entry\":", f);
      mqctl_json_entry(f, ev->entry);
    }
    fputs("}\n", f);
  } else {
    fprintf(f, "%s shard=%" PRId32 " revision=%" PRId64, type, ev->shard, ev->revision);
    if (ev->type == MEMQUORUM__V1__WATCH_EVENT__EVENT_TYPE__PRODUCE && ev->entry) {
      fprintf(f, " topic=%s partition=%" PRId32 " offset=%" PRId64 " key=%s value=", ev->topic,
              ev->entry->partition, ev->entry->offset, ev->entry->key);
      mqctl_print_value(f, ev->entry->value.data, ev->entry->value.len);
    } else if (ev->kv) {
      fprintf(f, " key=%s", ev->kv->key);
      if (ev->type == MEMQUORUM__V1__WATCH_EVENT__EVENT_TYPE__PUT) {
        fputs(" value=", f);
        mqctl_print_value(f, ev->kv->value.data, ev->kv->value.len);
      }
      if (m->verbose)
        fprintf(f, " mod_revision=%" PRId64 " version=%" PRId64, ev->kv->mod_revision,
                ev->kv->version);
    }
    fputc('\n', f);
  }
  fflush(f);
}
