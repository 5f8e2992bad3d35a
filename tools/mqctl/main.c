/* mqctl: command-line client of the MemQuorum public gRPC API.
 *
 *   mqctl [--endpoint HOST:PORT] [--json] [--timeout MS] [-v] COMMAND ARGS...
 *
 * This file holds the command table, the global options and help; each
 * command lives in a cmd_*.c file. */
#include <stdio.h>
#include <string.h>

#include <grpc/grpc.h>

#include "mqctl.h"

static const struct mqctl_cmd commands[] = {
    {"put", mqctl_cmd_put,
     "KEY VALUE [--ttl MS] [--if-absent | --if-version N | --if-mod-revision N | --if-value V] "
     "[--prev]",
     "Writes VALUE under KEY (KV.Put) and prints the new revision and the shard.\n"
     "  --ttl MS             the key expires MS milliseconds after this write\n"
     "  --if-absent          only if KEY does not exist\n"
     "  --if-version N       only if KEY exists with version N\n"
     "  --if-mod-revision N  only if KEY was last modified at revision N\n"
     "  --if-value V         only if KEY holds exactly V (compare-and-set)\n"
     "  --prev               also print the value KEY held before\n"
     "A failed condition exits 1 with FAILED_PRECONDITION."},
    {"get", mqctl_cmd_get, "KEY [--serializable]",
     "Prints the value of KEY (KV.Get); with -v also its revisions, version,\n"
     "expiry and shard. A missing key exits 1 with NOT_FOUND.\n"
     "  --serializable       may be served stale by a local replica (faster)"},
    {"del", mqctl_cmd_del,
     "KEY [--if-absent | --if-version N | --if-mod-revision N | --if-value V]",
     "Deletes KEY (KV.Delete); prints the revision, the shard and whether a key\n"
     "was deleted. The conditions are those of put."},
    {"scan", mqctl_cmd_scan,
     "PREFIX [--limit N] [--start-after K] [--keys-only] [--all] [--serializable]",
     "Lists keys starting with PREFIX in key order (KV.Scan), one per line as\n"
     "KEY<TAB>VALUE.\n"
     "  --limit N            at most N keys per page (server default 100)\n"
     "  --start-after K      only keys after K (the next page's cursor)\n"
     "  --keys-only          keys without values\n"
     "  --all                follow pagination to the last key\n"
     "  --serializable       may be served stale by local replicas\n"
     "Without --all, a note on stderr says when more keys follow.\n"
     "With --json, one object per page: {\"kvs\":[...],\"more\":BOOL}."},
    {"produce", mqctl_cmd_produce, "TOPIC KEY VALUE [--partition N] [--timestamp MS]",
     "Appends an entry to TOPIC (PartitionService.Produce); prints its offset,\n"
     "partition and revision.\n"
     "  --partition N        shard to append to; -1 (default) routes by KEY\n"
     "  --timestamp MS       entry time in ms since the epoch; 0 (default): now"},
    {"read", mqctl_cmd_read,
     "TOPIC [--partition N] [--offset N] [--count N] [--key K] [--serializable]",
     "Reads entries of TOPIC (PartitionService.Read), one per line as\n"
     "PARTITION<TAB>OFFSET<TAB>TIMESTAMP<TAB>KEY<TAB>VALUE.\n"
     "  --partition N        shard to read; -1 (default): KEY's partition, or all\n"
     "  --offset N           first offset (default 0)\n"
     "  --count N            at most N entries (server default 100)\n"
     "  --key K              route by this key (with --partition -1)\n"
     "  --serializable       may be served stale by a local replica\n"
     "With -v, a last line gives next_offset, high_watermark and log_start_offset."},
    {"watch", mqctl_cmd_watch, "[--prefix P | --topic T] [--from SHARD=REV,...] [--count N]",
     "Streams changes (Watch.Watch), one line per event, until interrupted.\n"
     "  --prefix P           KV changes of keys starting with P (default: all keys)\n"
     "  --topic T            entries produced to topic T instead\n"
     "  --from SHARD=REV,..  resume after revision REV of each SHARD named\n"
     "  --count N            exit after N events\n"
     "No deadline applies unless --timeout is given."},
    {"status", mqctl_cmd_status, "",
     "Prints this agent's view of the cluster (Cluster.Status): members, and a\n"
     "table of shards with leader, role, term, commit and applied index, keys,\n"
     "and health: \"ok\", or why not (no leader, learner catching up, an old\n"
     "incarnation still a voter, voter down, too few voters, replica behind);\n"
     "\"-\" for shards not held by this agent. -v adds bytes, revision, replicas."},
    {"recover", mqctl_cmd_recover, "--shard N [--yes]",
     "Rebuilds shard N's Raft group from its live members when no majority of\n"
     "its voters can form again (members that restarted with empty memory were\n"
     "voters). Send it to an agent holding a replica. It first prints what the\n"
     "group depends on and what may be lost, and asks to confirm (type the\n"
     "shard number); then every member that is not live counts as lost, and\n"
     "this agent's replica takes over if every live member grants it (one with\n"
     "a more recent log refuses: mqctl then says to run it there). The agents\n"
     "do this by themselves when nothing can be lost.\n"
     "  --yes                do not ask (scripts)"},
    {"kafka", mqctl_cmd_kafka, "[--http HOST:PORT]",
     "Prints this agent's Kafka ingestion: whether the brokers answer, records\n"
     "ingested and refused as bad, and per partition assigned to this agent the\n"
     "offset below which every record is committed in Raft and the lag behind\n"
     "the broker. Read from the agent's /metrics on its HTTP port.\n"
     "  --http HOST:PORT     the agent's HTTP port (default 127.0.0.1:9090)"},
    {"health", mqctl_cmd_health, "[--service NAME]",
     "Asks grpc.health.v1.Health/Check; prints the serving status and exits 0\n"
     "only when it is SERVING.\n"
     "  --service NAME       service to check (default: the whole server)"},
};
#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

const struct mqctl_cmd *mqctl_find_cmd(const char *name) {
  for (size_t i = 0; i < NCOMMANDS; i++)
    if (strcmp(commands[i].name, name) == 0) return &commands[i];
  return NULL;
}

static void usage(FILE *f) {
  fprintf(f,
          "usage: mqctl [--endpoint HOST:PORT] [--json] [--timeout MS] [-v] COMMAND [ARGS]\n"
          "\n"
          "Command-line client of the MemQuorum agent's gRPC API.\n"
          "\n"
          "Options (also accepted after the command):\n"
          "  --endpoint HOST:PORT  agent to talk to (default %s)\n"
          "  --json                print one JSON object per result or event\n"
          "  --timeout MS          deadline per request (default %d)\n"
          "  --tls-ca FILE         speak TLS, trusting the CA in FILE (an agent with\n"
          "                        --api-tls-cert)\n"
          "  --tls-cert FILE, --tls-key FILE\n"
          "                        a client certificate (an agent with --api-tls-ca)\n"
          "  -v, --verbose         print metadata too\n"
          "  -h, --help            this help; 'mqctl COMMAND --help' for a command\n"
          "\n"
          "Commands:\n",
          MQCTL_DEFAULT_ENDPOINT, MQCTL_DEFAULT_TIMEOUT_MS);
  for (size_t i = 0; i < NCOMMANDS; i++)
    fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].synopsis);
  fputs("\n"
        "VALUE arguments may be '-' (read stdin) or '@FILE' (read FILE); '@@x' is the\n"
        "literal '@x'. In JSON output, bytes are a UTF-8 string when they are valid\n"
        "UTF-8, else base64 with a flag, e.g. \"value\":\"AAE=\",\"value_base64\":true.\n"
        "\n"
        "Exit status: 0 success, 1 the request failed, 2 usage error.\n",
        f);
}

int main(int argc, char **argv) {
  struct mqctl m = {.endpoint = MQCTL_DEFAULT_ENDPOINT, .timeout_ms = MQCTL_DEFAULT_TIMEOUT_MS};
  static const struct option longopts[] = {MQCTL_GLOBAL_OPTIONS, {NULL, 0, NULL, 0}};
  int c, code;
  opterr = 1;
  while ((c = getopt_long(argc, argv, "+vh", longopts, NULL)) != -1) {
    if (c == MQCTL_OPT_HELP || c == 'h') {
      usage(stdout);
      return MQCTL_OK;
    }
    int r = mqctl_global_opt(&m, NULL, c, optarg, &code);
    if (r < 0) return code;
    if (r == 0) {
      usage(stderr);
      return MQCTL_USAGE;
    }
  }
  if (optind >= argc) {
    usage(stderr);
    return MQCTL_USAGE;
  }
  const char *name = argv[optind];
  if (strcmp(name, "help") == 0) {
    const struct mqctl_cmd *cmd = optind + 1 < argc ? mqctl_find_cmd(argv[optind + 1]) : NULL;
    if (cmd)
      mqctl_print_help(stdout, cmd);
    else
      usage(stdout);
    return MQCTL_OK;
  }
  const struct mqctl_cmd *cmd = mqctl_find_cmd(name);
  if (!cmd) {
    fprintf(stderr, "mqctl: unknown command '%s' (see mqctl --help)\n", name);
    return MQCTL_USAGE;
  }

  int first = optind;
  /* getopt prefixes its own messages with argv[0]: make that "mqctl CMD". */
  char prog[64];
  snprintf(prog, sizeof(prog), "mqctl %s", cmd->name);
  argv[first] = prog;
  grpc_init();
  /* Commands parse their own options with getopt from a fresh start
   * (optind = 0 makes glibc's getopt reinitialize). */
  optind = 0;
  int rc = cmd->run(&m, argc - first, argv + first);
  fflush(stdout);
  if (m.client_open) mq_client_close(&m.client);
  grpc_shutdown();
  return rc;
}
