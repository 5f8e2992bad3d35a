/* mqctl cluster commands: status and recover (memquorum.v1.Cluster) and
 * health (grpc.health.v1.Health). */
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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
    printf(",\"shards_total\":%" PRId32 ",\"replication_factor\":%" PRId32 ",\"cluster_id\":",
           r->shards_total, r->replication_factor);
    mq_json_str(stdout, r->cluster_id);
    fputs(",\"discovery\":", stdout);
    mq_json_str(stdout, r->discovery);
    fputs(",\"discovery_sources\":[", stdout);
    for (size_t i = 0; i < r->n_discovery_sources; i++) {
      const Memquorum__V1__DiscoverySource *d = r->discovery_sources[i];
      fputs(i ? ",{\"name\":" : "{\"name\":", stdout);
      mq_json_str(stdout, d->name);
      printf(",\"configured\":%s,\"answering\":%s,\"last_success_unix_ms\":%" PRId64
             ",\"errors\":%" PRId64 ",\"found\":%" PRId32 ",\"last_error\":",
             d->configured ? "true" : "false", d->answering ? "true" : "false",
             d->last_success_unix_ms, d->errors, d->found);
      mq_json_str(stdout, d->last_error);
      fputc('}', stdout);
    }
    printf("],\"moves_in_progress\":%" PRId32 ",\"members\":[", r->moves_in_progress);
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
      fputs("],\"placement\":[", stdout);
      for (size_t k = 0; k < sh->n_placement; k++) {
        if (k) fputc(',', stdout);
        mq_json_str(stdout, sh->placement[k]);
      }
      fputs("],\"role\":", stdout);
      mq_json_str(stdout, sh->role);
      printf(",\"term\":%" PRId64 ",\"commit_index\":%" PRId64 ",\"applied_index\":%" PRId64
             ",\"keys\":%" PRId64 ",\"bytes\":%" PRId64 ",\"revision\":%" PRId64 ",\"digest\":",
             sh->term, sh->commit_index, sh->applied_index, sh->keys, sh->bytes, sh->revision);
      mq_json_str(stdout, sh->digest);
      printf(",\"healthy\":%s,\"health\":", sh->healthy ? "true" : "false");
      mq_json_str(stdout, sh->health);
      fputc('}', stdout);
    }
    fputs("]}\n", stdout);
  } else {
    printf("node: %s  version: %s  shards_total: %" PRId32 "  replication_factor: %" PRId32 "\n",
           r->node_id, r->version[0] ? r->version : "-", r->shards_total, r->replication_factor);
    printf("cluster: %s  discovery: %s  moves in progress: %" PRId32 "\n",
           r->cluster_id[0] ? r->cluster_id : "-", r->discovery[0] ? r->discovery : "-",
           r->moves_in_progress);
    for (size_t i = 0; i < r->n_discovery_sources; i++) {
      const Memquorum__V1__DiscoverySource *d = r->discovery_sources[i];
      if (!d->configured) continue;
      printf("  %-7s %s, %" PRId32 " found, %" PRId64 " failed rounds%s%s\n", d->name,
             d->answering ? "answering" : "not answering", d->found, d->errors,
             d->last_error[0] ? ", last error: " : "", d->last_error);
    }
    if (r->n_members) {
      printf("\n%-24s %-24s %s\n", "member", "address", "state");
      for (size_t i = 0; i < r->n_members; i++)
        printf("%-24s %-24s %s\n", r->members[i]->node_id, r->members[i]->address,
               r->members[i]->state);
    }
    printf("\n%5s %-20s %-9s %6s %10s %10s %10s", "shard", "leader", "role", "term", "commit",
           "applied", "keys");
    if (m->verbose) printf(" %10s %10s %-24s %-24s", "bytes", "revision", "replicas", "placement");
    printf(" %s\n", "health");
    int unhealthy = 0;
    for (size_t i = 0; i < r->n_shards; i++) {
      const Memquorum__V1__ShardStatus *sh = r->shards[i];
      printf("%5" PRId32 " %-20s %-9s %6" PRId64 " %10" PRId64 " %10" PRId64 " %10" PRId64,
             sh->shard, sh->leader[0] ? sh->leader : "-", sh->role[0] ? sh->role : "-", sh->term,
             sh->commit_index, sh->applied_index, sh->keys);
      if (m->verbose) {
        printf(" %10" PRId64 " %10" PRId64 " ", sh->bytes, sh->revision);
        int w = 0;
        for (size_t k = 0; k < sh->n_replicas; k++)
          w += printf("%s%s", k ? "," : "", sh->replicas[k]);
        printf("%*s ", w < 24 ? 24 - w : 0, "");
        w = 0;
        for (size_t k = 0; k < sh->n_placement; k++)
          w += printf("%s%s", k ? "," : "", sh->placement[k]);
        printf("%*s", w < 24 ? 24 - w : 0, "");
      }
      /* Only a holder of a replica can tell; the others say so. */
      bool held = strcmp(sh->role, "none") != 0;
      unhealthy += held && !sh->healthy;
      printf(" %s\n", !held ? "-" : sh->healthy ? "ok" : sh->health);
    }
    if (unhealthy)
      printf("\n%d shard%s held here %s not healthy (see health above)\n", unhealthy,
             unhealthy == 1 ? "" : "s", unhealthy == 1 ? "is" : "are");
  }
  protobuf_c_message_free_unpacked(&r->base, NULL);
  return MQCTL_OK;
}

enum {
  O_SERVICE = 1
};

static int health_opt(void *ctx, const struct mqctl_cmd *cmd, int c, const char *arg) {
  if (c != O_SERVICE) return -1;
  *(const char **)ctx = arg;
  return 0;
}

static const char *serving_name(Grpc__Health__V1__HealthCheckResponse__ServingStatus s) {
  switch (s) {
  case GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING:
    return "SERVING";
  case GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING:
    return "NOT_SERVING";
  case GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVICE_UNKNOWN:
    return "SERVICE_UNKNOWN";
  default:
    return "UNKNOWN";
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
  if (m->json)
    printf("{\"status\":\"%s\"}\n", name);
  else
    printf("%s\n", name);
  rc = r->status == GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING ? MQCTL_OK
                                                                                     : MQCTL_FAIL;
  protobuf_c_message_free_unpacked(&r->base, NULL);
  return rc;
}

/* ------------------------------------------------------------------------ */
/* recover */

enum {
  O_SHARD = 1,
  O_YES
};

struct recover_opts {
  const char *shard;
  bool yes;
};

static int recover_opt(void *ctx, const struct mqctl_cmd *cmd, int c, const char *arg) {
  struct recover_opts *o = ctx;
  if (c == O_SHARD)
    o->shard = arg;
  else if (c == O_YES)
    o->yes = true;
  else
    return -1;
  return 0;
}

static int recover_call(struct mqctl *m, int32_t shard, bool confirm,
                        Memquorum__V1__RecoverResponse **out) {
  Memquorum__V1__RecoverRequest req = MEMQUORUM__V1__RECOVER_REQUEST__INIT;
  req.shard = shard;
  req.confirm = confirm;
  return mqctl_unary(m, "/memquorum.v1.Cluster/Recover", &req.base,
                     &memquorum__v1__recover_response__descriptor, (ProtobufCMessage **)out,
                     "recover");
}

/* The leader of shard as the agent reports it ("" while none), or NULL if
 * Status failed. */
static char *leader_now(struct mqctl *m, int32_t shard) {
  Memquorum__V1__StatusRequest req = MEMQUORUM__V1__STATUS_REQUEST__INIT;
  Memquorum__V1__StatusResponse *r;
  if (mqctl_unary(m, "/memquorum.v1.Cluster/Status", &req.base,
                  &memquorum__v1__status_response__descriptor, (ProtobufCMessage **)&r, "status"))
    return NULL;
  char *leader = NULL;
  for (size_t i = 0; i < r->n_shards; i++)
    if (r->shards[i]->shard == shard) leader = strdup(r->shards[i]->leader);
  protobuf_c_message_free_unpacked(&r->base, NULL);
  return leader ? leader : strdup("");
}

int mqctl_cmd_recover(struct mqctl *m, int argc, char **argv) {
  const struct mqctl_cmd *cmd = mqctl_find_cmd("recover");
  static const struct option longopts[] = {MQCTL_GLOBAL_OPTIONS,
                                           {"shard", required_argument, NULL, O_SHARD},
                                           {"yes", no_argument, NULL, O_YES},
                                           {NULL, 0, NULL, 0}};
  struct recover_opts o = {0};
  int rc = mqctl_parse_opts(m, cmd, argc, argv, longopts, recover_opt, &o);
  if (rc < 0) rc = mqctl_check_args(cmd, argc, argv, 0, "");
  if (rc >= 0) return rc;
  if (!o.shard) return mqctl_usage(cmd, "--shard N is required");
  int64_t shard;
  if (mqctl_parse_i64(cmd, "--shard", o.shard, 0, INT32_MAX, &shard)) return MQCTL_USAGE;

  Memquorum__V1__RecoverResponse *r;
  if ((rc = recover_call(m, (int32_t)shard, false, &r))) return rc;
  fputs(r->report, stdout);
  bool lossless = r->lossless;
  protobuf_c_message_free_unpacked(&r->base, NULL);
  if (!o.yes) {
    if (!isatty(STDIN_FILENO)) {
      fprintf(stderr,
              "mqctl recover: not confirmed; rerun with --yes to rebuild shard %" PRId64
              " from its live members\n",
              shard);
      return MQCTL_FAIL;
    }
    printf("\nRebuild shard %" PRId64 " from its live members%s? Type the shard number to "
           "confirm: ",
           shard, lossless ? "" : ", accepting that writes may be lost");
    fflush(stdout);
    char line[64];
    if (!fgets(line, sizeof line, stdin) || strtoll(line, NULL, 10) != shard || line[0] < '0' ||
        line[0] > '9') {
      fprintf(stderr, "mqctl recover: not confirmed; nothing was changed\n");
      return MQCTL_FAIL;
    }
  }
  if ((rc = recover_call(m, (int32_t)shard, true, &r))) return rc;
  bool started = r->started;
  protobuf_c_message_free_unpacked(&r->base, NULL);
  if (!started) {
    fprintf(stderr, "mqctl recover: the agent did not start a recovery\n");
    return MQCTL_FAIL;
  }
  /* The election needs every live member's vote; watch for its leader. */
  struct timespec step = {0, 100 * 1000000L};
  for (int waited = 0; waited < m->timeout_ms; waited += 100) {
    char *leader = leader_now(m, (int32_t)shard);
    if (leader && leader[0]) {
      printf("shard %" PRId64 " recovered: %s leads it\n", shard, leader);
      free(leader);
      return MQCTL_OK;
    }
    free(leader);
    nanosleep(&step, NULL);
  }
  fprintf(stderr,
          "mqctl recover: no leader for shard %" PRId64 " within %d ms; a live member "
          "may hold a more recent log: run the command against it\n",
          shard, m->timeout_ms);
  return MQCTL_FAIL;
}
