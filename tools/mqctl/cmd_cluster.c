/* mqctl cluster commands: status (memquorum.v1.Cluster) and health
 * (grpc.health.v1.Health). */
#include <inttypes.h>
#include <string.h>

#include "grpc/health/v1/health.pb-c.h"
#include "json.h"
#include "mqctl.h"

int mqctl_cmd_status(struct mqctl *m, int argc, char **argv) {
  const struct mqctl_cmd *cmd = mqctl_find_cmd("status");
  static const struct option longopts[] = {MQCTL_GLOBAL_OPTIONS, {NULL, 0, NULL, 0}};
  int rc = mqctl_parse_opts(m, cmd, argc, argv, longopts, NULL, NULL);
  if (rc < 0) rc = mqctl_check_args(cmd, argc, argv, 0, "");
  if (rc >= 0) return rc;

  Memquorum__V1__StatusRequest req = MEMQUORUM__V1__STATUS_REQUEST__INIT;
  Memquorum__V1__StatusResponse *r;
  rc = mqctl_unary(m, "/memquorum.v1.Cluster/Status", &req.base,
                   &memquorum__v1__status_response__descriptor, (ProtobufCMessage **)&r, "status");
  if (rc) return rc;

  if (m->json) {
    fputs("{\"node_id\":", stdout);
    mq_json_str(stdout, r->node_id);
    fputs(",\"version\":", stdout);
    mq_json_str(stdout, r->version);
    printf(",\"shards_total\":%" PRId32 ",\"replication_factor\":%" PRId32 ",\"members\":[",
           r->shards_total, r->replication_factor);
    for (size_t i = 0; i < r->n_members; i++) {
      const Memquorum__V1__Member *mb = r->members[i];
      fputs(i ? ",{\"node_id\":" : "{\"node_id\":", stdout);
      mq_json_str(stdout, mb->node_id);
      fputs(",\"address\":", stdout);
      mq_json_str(stdout, mb->address);
      fputs(",\"state\":", stdout);
      mq_json_str(stdout, mb->state);
      fputc('}', stdout);
    }
    fputs("],\"shards\":[", stdout);
    for (size_t i = 0; i < r->n_shards; i++) {
      const Memquorum__V1__ShardStatus *sh = r->shards[i];
      printf("%s{\"shard\":%" PRId32 ",\"leader\":", i ? "," : "", sh->shard);
      mq_json_str(stdout, sh->leader);
      fputs(",\"replicas\":[", stdout);
      for (size_t k = 0; k < sh->n_replicas; k++) {
        if (k) fputc(',', stdout);
        mq_json_str(stdout, sh->replicas[k]);
      }
      fputs("],\"role\":", stdout);
      mq_json_str(stdout, sh->role);
      printf(",\"term\":%" PRId64 ",\"commit_index\":%" PRId64 ",\"applied_index\":%" PRId64
             ",\"keys\":%" PRId64 ",\"bytes\":%" PRId64 ",\"revision\":%" PRId64 ",\"digest\":",
             sh->term, sh->commit_index, sh->applied_index, sh->keys, sh->bytes, sh->revision);
      mq_json_str(stdout, sh->digest);
      fputc('}', stdout);
    }
    fputs("]}\n", stdout);
  } else {
    printf("node: %s  version: %s  shards_total: %" PRId32 "  replication_factor: %" PRId32 "\n",
           r->node_id, r->version[0] ? r->version : "-", r->shards_total, r->replication_factor);
    if (r->n_members) {
      printf("\n%-24s %-24s %s\n", "member", "address", "state");
      for (size_t i = 0; i < r->n_members; i++)
        printf("%-24s %-24s %s\n", r->members[i]->node_id, r->members[i]->address,
               r->members[i]->state);
    }
    printf("\n%5s %-20s %-9s %6s %10s %10s %10s", "shard", "leader", "role", "term", "commit",
           "applied", "keys");
    if (m->verbose) printf(" %10s %10s %s", "bytes", "revision", "replicas");
    fputc('\n', stdout);
    for (size_t i = 0; i < r->n_shards; i++) {
      const Memquorum__V1__ShardStatus *sh = r->shards[i];
      printf("%5" PRId32 " %-20s %-9s %6" PRId64 " %10" PRId64 " %10" PRId64 " %10" PRId64,
             sh->shard, sh->leader[0] ? sh->leader : "-", sh->role[0] ? sh->role : "-", sh->term,
             sh->commit_index, sh->applied_index, sh->keys);
      if (m->verbose) {
        printf(" %10" PRId64 " %10" PRId64 " ", sh->bytes, sh->revision);
        for (size_t k = 0; k < sh->n_replicas; k++)
          printf("%s%s", k ? "," : "", sh->replicas[k]);
      }
      fputc('\n', stdout);
    }
  }
  protobuf_c_message_free_unpacked(&r->base, NULL);
  return MQCTL_OK;
}

enum { O_SERVICE = 1 };

static int health_opt(void *ctx, const struct mqctl_cmd *cmd, int c, const char *arg) {
  if (c != O_SERVICE) return -1;
  *(const char **)ctx = arg;
  return 0;
}

static const char *serving_name(Grpc__Health__V1__HealthCheckResponse__ServingStatus s) {
  switch (s) {
  case GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING: return "SERVING";
  case GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING: return "NOT_SERVING";
  case GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVICE_UNKNOWN:
    return "SERVICE_UNKNOWN";
  default: return "UNKNOWN";
  }
}

int mqctl_cmd_health(struct mqctl *m, int argc, char **argv) {
  const struct mqctl_cmd *cmd = mqctl_find_cmd("health");
  static const struct option longopts[] = {
      MQCTL_GLOBAL_OPTIONS, {"service", required_argument, NULL, O_SERVICE}, {NULL, 0, NULL, 0}};
  const char *service = "";
  int rc = mqctl_parse_opts(m, cmd, argc, argv, longopts, health_opt, &service);
  if (rc < 0) rc = mqctl_check_args(cmd, argc, argv, 0, "");
  if (rc >= 0) return rc;

  Grpc__Health__V1__HealthCheckRequest req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
  req.service = (char *)service;
  Grpc__Health__V1__HealthCheckResponse *r;
  rc = mqctl_unary(m, "/grpc.health.v1.Health/Check", &req.base,
                   &grpc__health__v1__health_check_response__descriptor, (ProtobufCMessage **)&r,
                   "health");
  if (rc) return rc;
  const char *name = serving_name(r->status);
  if (m->json) printf("{\"status\":\"%s\"}\n", name);
  else printf("%s\n", name);
  rc = r->status == GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING ? MQCTL_OK
                                                                                      : MQCTL_FAIL;
  protobuf_c_message_free_unpacked(&r->base, NULL);
  return rc;
}
