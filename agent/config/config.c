/* Settings table and loading: flags, environment, properties file, derived
 * defaults and cross-field checks (see config.h for the rules). */
#include "config/config.h"

#include "config/props.h"
#include "config/values.h"
#include "util/log.h"

#include <arpa/inet.h>
#include <assert.h>
#include <ifaddrs.h>
#include <inttypes.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FIELD(f) offsetof(struct mq_config, f), sizeof(((struct mq_config *)0)->f)
#define KiB (INT64_C(1) << 10)
#define MiB (INT64_C(1) << 20)
#define GiB (INT64_C(1) << 30)
#define DAY_MS INT64_C(86400000)

/* Internal row flag: the value may not be empty. */
#define NONEMPTY 0x100u

/* ------------------------------------------------------------------------ */
/* The table: one row per setting. It drives parsing, env and properties    */
/* lookup, --help and mq_config_log.                                        */

static const struct mq_config_setting table[] = {
    /* Node */
    {"Node", "config", "MEMQUORUM_CONFIG", NULL, MQ_CONFIG_PATH, FIELD(config_file), 0, 0, "",
     "none", "Java properties file with more settings", 0},
    {"Node", "node-id", "MEMQUORUM_NODE_ID", "memquorum.node.id", MQ_CONFIG_NODE_ID, FIELD(node_id),
     0, 0, "", "<hostname>-<port>", "unique id of this agent", 0},
    {"Node", "port", "MEMQUORUM_NODE_PORT", "memquorum.node.port", MQ_CONFIG_INT, FIELD(port), 0,
     65535, "8080", NULL, "API gRPC port for the app; 0 picks a free port", 0},
    {"Node", "api-bind", "MEMQUORUM_API_BIND", "memquorum.api.bind", MQ_CONFIG_STRING,
     FIELD(api_bind), 0, 0, "127.0.0.1", NULL, "address the API port binds to", NONEMPTY},
    {"Node", "peer-port", "MEMQUORUM_PEER_PORT", "memquorum.peer.port", MQ_CONFIG_INT,
     FIELD(peer_port), 0, 65535, "7070", NULL,
     "peer gRPC port on all interfaces; 0 picks a free port", 0},
    {"Node", "advertise", "MEMQUORUM_ADVERTISE_ADDR", "memquorum.advertise.addr", MQ_CONFIG_STRING,
     FIELD(advertise_addr), 0, 0, "", "first non-loopback IPv4",
     "address other agents use to reach this one", 0},
    {"Node", "http-port", "MEMQUORUM_HTTP_PORT", "memquorum.http.port", MQ_CONFIG_INT,
     FIELD(http_port), -1, 65535, "9090", NULL,
     "HTTP port: health, metrics, websocket feed; 0 picks a free port, -1 turns it off", 0},
    {"Node", "grpc-threads", "MEMQUORUM_GRPC_THREADS", "memquorum.grpc.threads", MQ_CONFIG_INT,
     FIELD(grpc_threads), 1, 256, "1", NULL,
     "gRPC completion-queue threads; 1: the core loop serves the calls itself (more pay off only "
     "beyond two cores)",
     0},

    /* Cluster */
    {"Cluster", "shards", "MEMQUORUM_SHARDS_TOTAL", "memquorum.shards.total", MQ_CONFIG_INT,
     FIELD(shards_total), 1, 4096, "16", NULL,
     "number of shards; fixed when the cluster is created", 0},
    {"Cluster", "replication-factor", "MEMQUORUM_REPLICATION_FACTOR",
     "memquorum.replication.factor", MQ_CONFIG_INT, FIELD(replication_factor), 1, 7, "3", NULL,
     "replicas per shard; a lone agent (no peers, Nacos or DNS) runs with 1", 0},
    {"Cluster", "bootstrap-expect", "MEMQUORUM_BOOTSTRAP_EXPECT", "memquorum.bootstrap.expect",
     MQ_CONFIG_INT, FIELD(bootstrap_expect), 1, 10000, "1", NULL,
     "agents to wait for before creating the cluster (with --nacos or --dns-name, unset: the "
     "replication factor)",
     0},
    {"Cluster", "replace-dead-after", "MEMQUORUM_REPLACE_DEAD_AFTER",
     "memquorum.replace-dead.after", MQ_CONFIG_DURATION, FIELD(replace_dead_ms), 0, 86400000, "1m",
     NULL,
     "a member down this long has its replicas moved to live agents, when there are enough "
     "(0: never)",
     MQ_CONFIG_LIVE},
    {"Cluster", "drain-timeout", "MEMQUORUM_DRAIN_TIMEOUT", "memquorum.drain.timeout",
     MQ_CONFIG_DURATION, FIELD(drain_timeout_ms), 0, 3600000, "30s", NULL,
     "on SIGTERM, wait at most this long for leaving to be safe for every shard (keep it "
     "below the pod's terminationGracePeriodSeconds)",
     0},

    /* Discovery */
    {"Discovery", "peers", "MEMQUORUM_PEERS", "memquorum.peers", MQ_CONFIG_PEERS, FIELD(peers), 0,
     0, "", "none", "static peers id=host:port,... (IPv6 as [::1]:7070)", 0},
    {"Discovery", "nacos", "NACOS_SERVER_ADDR", "nacos.server.addr", MQ_CONFIG_STRING,
     FIELD(nacos_addr), 0, 0, "", "none", "Nacos server address host:port; unset: no Nacos", 0},
    {"Discovery", "nacos-namespace", "NACOS_NAMESPACE", "nacos.namespace", MQ_CONFIG_STRING,
     FIELD(nacos_namespace), 0, 0, "", "public", "Nacos namespace id", 0},
    {"Discovery", "nacos-group", "NACOS_GROUP", "nacos.group", MQ_CONFIG_STRING, FIELD(nacos_group),
     0, 0, "DEFAULT_GROUP", NULL, "Nacos group", NONEMPTY},
    {"Discovery", "nacos-username", "NACOS_USERNAME", "nacos.username", MQ_CONFIG_STRING,
     FIELD(nacos_username), 0, 0, "", "none", "Nacos user when auth is on", 0},
    {"Discovery", "nacos-password", "NACOS_PASSWORD", "nacos.password", MQ_CONFIG_STRING,
     FIELD(nacos_password), 0, 0, "", "none", "Nacos password when auth is on", MQ_CONFIG_SECRET},
    {"Discovery", "dns-name", "MEMQUORUM_DNS_NAME", "memquorum.dns.name", MQ_CONFIG_STRING,
     FIELD(dns_name), 0, 0, "", "none",
     "headless Service DNS name to find peers (A/AAAA records on --peer-port, or SRV "
     "_peer._tcp.<name> for the ports)",
     0},
    {"Discovery", "dns-refresh", "MEMQUORUM_DNS_REFRESH", "memquorum.dns.refresh",
     MQ_CONFIG_DURATION, FIELD(dns_refresh_ms), 100, 3600000, "5s", NULL,
     "how often the --dns-name is resolved again", 0},

    /* Security */
    {"Security", "peer-tls-cert", "MEMQUORUM_PEER_TLS_CERT", "memquorum.peer.tls.cert",
     MQ_CONFIG_PATH, FIELD(peer_tls_cert), 0, 0, "", "none",
     "PEM certificate of this agent for mutual TLS on the peer port; it must carry the DNS "
     "subjectAltName " MQ_PEER_TLS_NAME " (peers verify that name, not their address); "
     "with --peer-tls-key and --peer-tls-ca, or none of them: plaintext; files are read again "
     "when they change",
     0},
    {"Security", "peer-tls-key", "MEMQUORUM_PEER_TLS_KEY", "memquorum.peer.tls.key", MQ_CONFIG_PATH,
     FIELD(peer_tls_key), 0, 0, "", "none", "PEM private key of --peer-tls-cert", 0},
    {"Security", "peer-tls-ca", "MEMQUORUM_PEER_TLS_CA", "memquorum.peer.tls.ca", MQ_CONFIG_PATH,
     FIELD(peer_tls_ca), 0, 0, "", "none",
     "PEM CA certificates: a peer is accepted only with a certificate they sign", 0},

    {"Security", "api-tls-cert", "MEMQUORUM_API_TLS_CERT", "memquorum.api.tls.cert", MQ_CONFIG_PATH,
     FIELD(api_tls_cert), 0, 0, "", "none",
     "PEM certificate for TLS on the API port (with --api-tls-key; for an API bound beyond "
     "loopback); files are read again when they change",
     0},
    {"Security", "api-tls-key", "MEMQUORUM_API_TLS_KEY", "memquorum.api.tls.key", MQ_CONFIG_PATH,
     FIELD(api_tls_key), 0, 0, "", "none", "PEM private key of --api-tls-cert", 0},
    {"Security", "api-tls-ca", "MEMQUORUM_API_TLS_CA", "memquorum.api.tls.ca", MQ_CONFIG_PATH,
     FIELD(api_tls_ca), 0, 0, "", "none",
     "PEM CA certificates: with it, API clients must present a certificate they sign", 0},

    /* Kafka */
    {"Kafka", "kafka-enabled", "MEMQUORUM_KAFKA_ENABLED", "memquorum.kafka.enabled", MQ_CONFIG_BOOL,
     FIELD(kafka_enabled), 0, 0, "false", NULL, "consume records from Kafka", 0},
    {"Kafka", "kafka-bootstrap-servers", "KAFKA_BOOTSTRAP_SERVERS",
     "memquorum.kafka.bootstrap-servers", MQ_CONFIG_STRING, FIELD(kafka_bootstrap), 0, 0,
     "localhost:9092", NULL, "Kafka brokers host:port,...", NONEMPTY},
    {"Kafka", "kafka-topic", "MEMQUORUM_KAFKA_TOPIC", "memquorum.kafka.topic", MQ_CONFIG_STRING,
     FIELD(kafka_topic), 0, 0, "memquorum-input", NULL, "Kafka topic to consume", NONEMPTY},
    {"Kafka", "kafka-group", "MEMQUORUM_KAFKA_GROUP", "memquorum.kafka.group", MQ_CONFIG_STRING,
     FIELD(kafka_group), 0, 0, "", "memquorum-<kafka topic>",
     "Kafka consumer group, shared by every agent of the cluster so that each Kafka partition "
     "is consumed by one agent at a time; set it when two clusters consume one topic",
     0},
    {"Kafka", "kafka-target", "MEMQUORUM_KAFKA_TARGET", "memquorum.kafka.target", MQ_CONFIG_STRING,
     FIELD(kafka_target), 0, 0, "log", NULL,
     "log: append each record to the MemQuorum topic of the same name; kv: put key -> value, "
     "a null value deletes",
     NONEMPTY},
    {"Kafka", "kafka-dlq-topic", "MEMQUORUM_KAFKA_DLQ_TOPIC", "memquorum.kafka.dlq-topic",
     MQ_CONFIG_STRING, FIELD(kafka_dlq_topic), 0, 0, "", "none",
     "Kafka topic that records MemQuorum cannot take (bad key, value too big) are copied to", 0},
    {"Kafka", "kafka-max-in-flight", "MEMQUORUM_KAFKA_MAX_IN_FLIGHT",
     "memquorum.kafka.max-in-flight", MQ_CONFIG_INT, FIELD(kafka_max_in_flight), 1, 1000000,
     "20000", NULL,
     "records held (proposed, or done but after one that is not) before the partitions are "
     "paused; about 1 KB each plus key and value",
     0},
    {"Kafka", "kafka-max-poll-records", "MEMQUORUM_KAFKA_MAX_POLL_RECORDS",
     "memquorum.kafka.max-poll-records", MQ_CONFIG_INT, FIELD(kafka_max_poll_records), 1, 1000000,
     "500", NULL, "records taken per poll", 0},
    {"Kafka", "kafka-session-timeout", "MEMQUORUM_KAFKA_SESSION_TIMEOUT",
     "memquorum.kafka.session-timeout", MQ_CONFIG_DURATION, FIELD(kafka_session_timeout_ms), 1,
     3600000, "30s", NULL, "consumer group session timeout", 0},

    /* Raft */
    {"Raft", "heartbeat-ms", "MEMQUORUM_RAFT_HEARTBEAT_MS", "memquorum.raft.heartbeat-ms",
     MQ_CONFIG_DURATION, FIELD(heartbeat_ms), 1, 60000, "100ms", NULL, "leader heartbeat interval",
     0},
    {"Raft", "election-timeout-ms", "MEMQUORUM_RAFT_ELECTION_TIMEOUT_MS",
     "memquorum.raft.election-timeout-ms", MQ_CONFIG_DURATION, FIELD(election_timeout_ms), 1,
     600000, "1s", NULL, "election timeout, randomized between 1x and 2x", 0},
    {"Raft", "snapshot-entries", "MEMQUORUM_RAFT_SNAPSHOT_ENTRIES",
     "memquorum.raft.snapshot-entries", MQ_CONFIG_COUNT, FIELD(snapshot_entries), 1,
     INT64_C(1000000000), "10000", NULL,
     "keep at most N log entries per shard (compaction drops the oldest eighth; a replica further "
     "behind catches up by snapshot)",
     0},
    {"Raft", "raft-log-bytes", "MEMQUORUM_RAFT_LOG_BYTES", "memquorum.raft.log-bytes",
     MQ_CONFIG_SIZE, FIELD(raft_log_bytes), KiB, INT64_C(1) << 40, "1MiB", NULL,
     "keep at most this many bytes of log entries per shard, whichever of this and "
     "--snapshot-entries comes first",
     0},
    {"Raft", "snapshot-fork", "MEMQUORUM_RAFT_SNAPSHOT_FORK", "memquorum.raft.snapshot-fork",
     MQ_CONFIG_BOOL, FIELD(snapshot_fork), 0, 0, "true", NULL,
     "a follower's snapshot is written by a forked child from a copy-on-write image of the "
     "agent, and one from a leader is decoded on a thread (false: both in the loop, which "
     "stalls every shard about 0.6 s per million keys)",
     0},
    {"Raft", "leader-follow-window", "MEMQUORUM_RAFT_LEADER_FOLLOW_WINDOW",
     "memquorum.raft.leader-follow-window", MQ_CONFIG_DURATION, FIELD(leader_follow_ms), 0, 3600000,
     "10s", NULL,
     "a shard leader hands leadership to the replica that sent it three quarters of the "
     "requests it ran over this window (0: never)",
     MQ_CONFIG_LIVE},

    /* Limits */
    {"Limits", "max-key-bytes", "MEMQUORUM_LIMITS_MAX_KEY_BYTES", "memquorum.limits.max-key-bytes",
     MQ_CONFIG_SIZE, FIELD(max_key_bytes), 1, MiB, "4KiB", NULL, "largest key", MQ_CONFIG_LIVE},
    {"Limits", "max-value-bytes", "MEMQUORUM_LIMITS_MAX_VALUE_BYTES",
     "memquorum.limits.max-value-bytes", MQ_CONFIG_SIZE, FIELD(max_value_bytes), 1, GiB, "1MiB",
     NULL, "largest value or topic entry", MQ_CONFIG_LIVE},
    {"Limits", "max-request-bytes", "MEMQUORUM_LIMITS_MAX_REQUEST_BYTES",
     "memquorum.limits.max-request-bytes", MQ_CONFIG_SIZE, FIELD(max_request_bytes), KiB, INT32_MAX,
     "4MiB", NULL, "largest gRPC request", 0},
    {"Limits", "max-calls", "MEMQUORUM_LIMITS_MAX_CALLS", "memquorum.limits.max-calls",
     MQ_CONFIG_INT, FIELD(max_calls), 1, 1000000, "10000", NULL,
     "gRPC calls served at once, Watch streams included; more get RESOURCE_EXHAUSTED "
     "(health checks are always answered)",
     0},
    {"Limits", "memory-budget", "MEMQUORUM_LIMITS_MEMORY_BUDGET", "memquorum.limits.memory-budget",
     MQ_CONFIG_SIZE, FIELD(memory_budget_bytes), MiB, INT64_MAX, "1GiB", NULL,
     "memory for data; writes past it get RESOURCE_EXHAUSTED", MQ_CONFIG_LIVE},
    {"Limits", "retention-entries", "MEMQUORUM_RETENTION_ENTRIES", "memquorum.retention.entries",
     MQ_CONFIG_COUNT, FIELD(retention_entries), 1, INT64_MAX, "1000000", NULL,
     "entries kept per topic partition", 0},
    {"Limits", "retention-bytes", "MEMQUORUM_RETENTION_BYTES", "memquorum.retention.bytes",
     MQ_CONFIG_SIZE, FIELD(retention_bytes), KiB, INT64_MAX, "64MiB", NULL,
     "bytes kept per topic partition", 0},
    {"Limits", "retention-ms", "MEMQUORUM_RETENTION_MS", "memquorum.retention.ms",
     MQ_CONFIG_DURATION, FIELD(retention_ms), 1, 3650 * DAY_MS, "7d", NULL,
     "age of the oldest topic entry kept", 0},
    {"Limits", "watch-history", "MEMQUORUM_WATCH_HISTORY", "memquorum.watch.history",
     MQ_CONFIG_COUNT, FIELD(watch_history_events), 1, INT64_C(100000000), "10000", NULL,
     "change events kept per shard for watchers to resume from", 0},
    {"Limits", "watch-history-bytes", "MEMQUORUM_WATCH_HISTORY_BYTES",
     "memquorum.watch.history-bytes", MQ_CONFIG_SIZE, FIELD(watch_history_bytes), KiB,
     INT64_C(1) << 40, "512KiB", NULL,
     "bytes of change events kept per shard for watchers to resume from, whichever of this and "
     "--watch-history comes first",
     0},

    /* Logging */
    {"Logging", "log-level", "MEMQUORUM_LOG_LEVEL", "memquorum.log.level", MQ_CONFIG_LOG_LEVEL,
     FIELD(log_level), 0, 0, "info", NULL, "debug, info, warn or error", MQ_CONFIG_LIVE},
    {"Logging", "log-format", "MEMQUORUM_LOG_FORMAT", "memquorum.log.format", MQ_CONFIG_LOG_FORMAT,
     FIELD(log_format), 0, 0, "text", NULL, "text or json lines", MQ_CONFIG_LIVE},

    /* Feed */
    {"Feed", "feed-token", "MEMQUORUM_FEED_TOKEN", "memquorum.feed.token", MQ_CONFIG_STRING,
     FIELD(feed_token), 0, 0, "", "none", "bearer token websocket subscribers must send",
     MQ_CONFIG_SECRET},
    {"Feed", "feed-allowed-origins", "MEMQUORUM_FEED_ALLOWED_ORIGINS",
     "memquorum.feed.allowed-origins", MQ_CONFIG_STRING, FIELD(feed_allowed_origins), 0, 0, "",
     "any", "comma-separated Origins allowed on the websocket feed", 0},
};

#define N_ROWS (sizeof table / sizeof table[0])
_Static_assert(N_ROWS <= MQ_CONFIG_MAX_SETTINGS, "raise MQ_CONFIG_MAX_SETTINGS");

const struct mq_config_setting *mq_config_settings(size_t *n) {
  *n = N_ROWS;
  return table;
}

static int row_by_flag(const char *flag, size_t len) {
  for (size_t i = 0; i < N_ROWS; i++)
    if (strlen(table[i].flag) == len && memcmp(table[i].flag, flag, len) == 0)
      return (int)i;
  return -1;
}

static int row_by_prop(const char *key) {
  for (size_t i = 0; i < N_ROWS; i++)
    if (table[i].prop && strcmp(table[i].prop, key) == 0)
      return (int)i;
  return -1;
}

int mq_config_origin_of(const struct mq_config *cfg, const char *flag) {
  int r = row_by_flag(flag, strlen(flag));
  return r < 0 ? -1 : cfg->origin[r];
}

/* ------------------------------------------------------------------------ */
/* Sources and messages                                                     */

struct source {
  enum mq_config_origin origin;
  const char *file; /* MQ_ORIGIN_FILE, MQ_ORIGIN_NACOS */
  int line;
};

/* "--port", "MEMQUORUM_NODE_PORT (from environment)",
 * "memquorum.node.port (from /etc/mq.properties line 3)". */
static void label(const struct mq_config_setting *r, const struct source *src, char *out,
                  size_t cap) {
  switch (src->origin) {
  case MQ_ORIGIN_FLAG:
    snprintf(out, cap, "--%s", r->flag);
    break;
  case MQ_ORIGIN_ENV:
    snprintf(out, cap, "%s (from environment)", r->env);
    break;
  case MQ_ORIGIN_FILE:
  case MQ_ORIGIN_NACOS:
    if (src->line)
      snprintf(out, cap, "%s (from %s line %d)", r->prop, src->file, src->line);
    else
      snprintf(out, cap, "%s (from %s)", r->prop, src->file);
    break;
  default:
    snprintf(out, cap, "%s (default)", r->prop ? r->prop : r->flag);
    break;
  }
}

/* Edit distance with '.', '-' and '_' counted as the same character. */
static size_t distance(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  if (la > 64 || lb > 64)
    return SIZE_MAX;
  size_t row[65];
  for (size_t j = 0; j <= lb; j++)
    row[j] = j;
  for (size_t i = 1; i <= la; i++) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= lb; j++) {
      char x = a[i - 1], y = b[j - 1];
      bool same = x == y || (strchr(".-_", x) && strchr(".-_", y));
      size_t best = diag + (same ? 0 : 1);
      if (row[j] + 1 < best)
        best = row[j] + 1;
      if (row[j - 1] + 1 < best)
        best = row[j - 1] + 1;
      diag = row[j];
      row[j] = best;
    }
  }
  return row[lb];
}

/* Writes " (did you mean X?)" into out when a setting name is close to
 * name, else "". by_prop picks property keys, else flags. */
static void suggest(const char *name, bool by_prop, char *out, size_t cap) {
  size_t best = SIZE_MAX;
  int which = -1;
  char with_ns[160];
  snprintf(with_ns, sizeof with_ns, "memquorum.%s", name);
  for (size_t i = 0; i < N_ROWS; i++) {
    const char *cand = by_prop ? table[i].prop : table[i].flag;
    if (!cand)
      continue;
    size_t d = distance(name, cand);
    if (by_prop) {
      size_t d2 = distance(with_ns, cand);
      if (d2 < d)
        d = d2;
    }
    if (d < best) {
      best = d;
      which = (int)i;
    }
  }
  out[0] = '\0';
  if (which >= 0 && best <= 3 && best < strlen(name))
    snprintf(out, cap, " (did you mean %s%s?)", by_prop ? "" : "--",
             by_prop ? table[which].prop : table[which].flag);
}

/* ------------------------------------------------------------------------ */
/* Storing one value                                                        */

static void store_num(void *p, size_t size, int64_t v) {
  if (size == sizeof(int32_t)) {
    int32_t x = (int32_t)v;
    memcpy(p, &x, sizeof x);
  } else {
    assert(size == sizeof(int64_t));
    memcpy(p, &v, sizeof v);
  }
}

static void range_text(const struct mq_config_setting *r, char *out, size_t cap) {
  char lo[32], hi[32];
  if (r->type == MQ_CONFIG_SIZE) {
    mq_config_format_size((uint64_t)r->min, lo, sizeof lo);
    mq_config_format_size((uint64_t)r->max, hi, sizeof hi);
  } else if (r->type == MQ_CONFIG_DURATION) {
    mq_config_format_duration_ms(r->min, lo, sizeof lo);
    mq_config_format_duration_ms(r->max, hi, sizeof hi);
  } else {
    snprintf(lo, sizeof lo, "%" PRId64, r->min);
    snprintf(hi, sizeof hi, "%" PRId64, r->max);
  }
  if (r->max == INT64_MAX)
    snprintf(out, cap, "%s or more", lo);
  else
    snprintf(out, cap, "%s-%s", lo, hi);
}

/* Parses text as the value of row ri and stores it in cfg. On error st names
 * the key and source. */
static int apply(struct mq_config *cfg, int ri, const char *text, const struct source *src,
                 struct mq_status *st) {
  const struct mq_config_setting *r = &table[ri];
  char *field = (char *)cfg + r->offset;
  char who[1200], range[80];
  int64_t v = 0;
  int rc = 0;
  const char *kind = NULL;

  label(r, src, who, sizeof who);
  switch (r->type) {
  case MQ_CONFIG_STRING:
  case MQ_CONFIG_NODE_ID:
  case MQ_CONFIG_PATH:
    if (strlen(text) >= r->size)
      return mq_status_set(st, MQ_EINVAL, "%s: value is too long (at most %zu bytes)", who,
                           r->size - 1);
    if ((r->flags & NONEMPTY) && !*text)
      return mq_status_set(st, MQ_EINVAL, "%s: must not be empty", who);
    if (r->type == MQ_CONFIG_NODE_ID && *text && !mq_config_valid_node_id(text))
      return mq_status_set(
          st, MQ_EINVAL, "%s: \"%s\" is not a node id (letters, digits, '.', '_', '-')", who, text);
    memcpy(field, text, strlen(text) + 1);
    break;
  case MQ_CONFIG_BOOL: {
    bool b;
    if (mq_config_parse_bool(text, &b))
      return mq_status_set(st, MQ_EINVAL,
                           "%s: \"%s\" is not a boolean (true/false, yes/no, on/off, 1/0)", who,
                           text);
    *(bool *)field = b;
    break;
  }
  case MQ_CONFIG_INT:
  case MQ_CONFIG_COUNT:
    rc = mq_config_parse_int(text, &v);
    kind = "an integer";
    break;
  case MQ_CONFIG_SIZE: {
    uint64_t u = 0;
    rc = mq_config_parse_size(text, &u);
    if (rc == 0 && u > INT64_MAX)
      rc = MQ_ERANGE;
    v = (int64_t)u;
    kind = "a size (e.g. 4096, 512KiB, 1GiB)";
    break;
  }
  case MQ_CONFIG_DURATION:
    rc = mq_config_parse_duration_ms(text, &v);
    kind = "a duration (e.g. 500ms, 30s, 1h, 7d; plain numbers are ms)";
    break;
  case MQ_CONFIG_PEERS: {
    char why[400];
    int n = 0;
    if (mq_config_parse_peers(text, cfg->peers, MQ_MAX_PEERS, &n, why, sizeof why))
      return mq_status_set(st, MQ_EINVAL, "%s: %s", who, why);
    cfg->n_peers = n;
    break;
  }
  case MQ_CONFIG_LOG_LEVEL: {
    enum mq_log_level lv;
    if (mq_log_parse_level(text, &lv))
      return mq_status_set(st, MQ_EINVAL,
                           "%s: \"%s\" is not a log level (debug, info, warn, error)", who, text);
    *(int *)field = (int)lv;
    break;
  }
  case MQ_CONFIG_LOG_FORMAT:
    if (strcmp(text, "text") == 0)
      *(int *)field = MQ_LOG_TEXT;
    else if (strcmp(text, "json") == 0)
      *(int *)field = MQ_LOG_JSON;
    else
      return mq_status_set(st, MQ_EINVAL, "%s: \"%s\" is not a log format (text or json)", who,
                           text);
    break;
  }

  if (kind) {
    if (rc == MQ_EINVAL) {
      /* A Service named like one of our env vars makes Kubernetes inject
       * e.g. MEMQUORUM_PEER_PORT=tcp://10.0.0.7:7070 into the pod. */
      bool link = src->origin == MQ_ORIGIN_ENV && strstr(text, "://");
      return mq_status_set(st, MQ_EINVAL, "%s: \"%s\" is not %s%s", who, text, kind,
                           link ? "; it looks like a Kubernetes service link variable: rename "
                                  "the Service or set enableServiceLinks: false"
                                : "");
    }
    range_text(r, range, sizeof range);
    if (rc == MQ_ERANGE || v < r->min || v > r->max)
      return mq_status_set(st, MQ_EINVAL, "%s: %s is out of range (%s)", who, text, range);
    store_num(field, r->size, v);
  }
  cfg->origin[ri] = (unsigned char)src->origin;
  return 0;
}

void mq_config_defaults(struct mq_config *cfg) {
  static const struct source def = {.origin = MQ_ORIGIN_DEFAULT};
  memset(cfg, 0, sizeof *cfg);
  for (size_t i = 0; i < N_ROWS; i++) {
    int rc = apply(cfg, (int)i, table[i].def, &def, NULL);
    assert(rc == 0 && "every default in the table parses");
    (void)rc;
  }
  cfg->replication_factor_configured = cfg->replication_factor;
}

/* ------------------------------------------------------------------------ */
/* Derived defaults                                                         */

static void derive_node_id(struct mq_config *cfg) {
  char host[128] = "";
  if (gethostname(host, sizeof host - 1) != 0 || !host[0])
    snprintf(host, sizeof host, "memquorum");
  /* Keep the id within the node id alphabet whatever the hostname holds. */
  for (char *p = host; *p; p++)
    if (!mq_config_valid_node_id((char[]){*p, '\0'}))
      *p = '-';
  /* With port 0 (pick a free one) several agents on one host would share
   * "<host>-0"; the pid keeps their ids apart. */
  char port[24];
  int n = cfg->port ? snprintf(port, sizeof port, "-%d", cfg->port)
                    : snprintf(port, sizeof port, "-pid%ld", (long)getpid());
  size_t keep = sizeof cfg->node_id - 1 - (size_t)n;
  if (strlen(host) > keep)
    host[keep] = '\0';
  snprintf(cfg->node_id, sizeof cfg->node_id, "%s%s", host, port);
}

static void derive_advertise(struct mq_config *cfg) {
  struct ifaddrs *ifs = NULL;
  snprintf(cfg->advertise_addr, sizeof cfg->advertise_addr, "127.0.0.1");
  if (getifaddrs(&ifs) != 0)
    return;
  for (struct ifaddrs *i = ifs; i; i = i->ifa_next) {
    if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET || !(i->ifa_flags & IFF_UP) ||
        (i->ifa_flags & IFF_LOOPBACK))
      continue;
    const struct sockaddr_in *sin = (const struct sockaddr_in *)(const void *)i->ifa_addr;
    if ((ntohl(sin->sin_addr.s_addr) >> 24) == 127)
      continue;
    inet_ntop(AF_INET, &sin->sin_addr, cfg->advertise_addr, sizeof cfg->advertise_addr);
    break;
  }
  freeifaddrs(ifs);
}

static int row_index(size_t offset) {
  for (size_t i = 0; i < N_ROWS; i++)
    if (table[i].offset == offset)
      return (int)i;
  assert(!"no row for field");
  return -1;
}
#define ROW_OF(field) row_index(offsetof(struct mq_config, field))

static void derive(struct mq_config *cfg) {
  if (!cfg->node_id[0]) {
    derive_node_id(cfg);
    cfg->origin[ROW_OF(node_id)] = MQ_ORIGIN_DERIVED;
  }
  if (!cfg->advertise_addr[0]) {
    derive_advertise(cfg);
    cfg->origin[ROW_OF(advertise_addr)] = MQ_ORIGIN_DERIVED;
  }
  if (!cfg->kafka_group[0]) {
    /* One group for the whole cluster: every agent derives the same name. */
    snprintf(cfg->kafka_group, sizeof cfg->kafka_group, "memquorum-%.240s", cfg->kafka_topic);
    cfg->origin[ROW_OF(kafka_group)] = MQ_ORIGIN_DERIVED;
  }
}

/* ------------------------------------------------------------------------ */
/* Cross-field checks and the lone-agent rule                               */

/* Of settings a, b and c (-1: none), the one whose value came from the
 * highest-precedence source: the one the user most likely just changed. */
static int blame(const struct source *srcs, int a, int b, int c) {
  int best = a;
  if (srcs[b].origin > srcs[best].origin)
    best = b;
  if (c >= 0 && srcs[c].origin > srcs[best].origin)
    best = c;
  return best;
}

static int check(struct mq_config *cfg, const struct source *srcs, struct mq_status *st) {
  char who[1200];
  int ri;

  /* Ports: peer and HTTP ports bind all interfaces, which covers the API
   * address too, so any two equal non-zero ports collide. */
  struct {
    int ri;
    const char *what;
  } ports[] = {{ROW_OF(port), "API port"},
               {ROW_OF(peer_port), "peer port"},
               {ROW_OF(http_port), "HTTP port"}};
  for (int a = 0; a < 3; a++) {
    for (int b = a + 1; b < 3; b++) {
      int pa = *(int *)((char *)cfg + table[ports[a].ri].offset);
      int pb = *(int *)((char *)cfg + table[ports[b].ri].offset);
      if (pa > 0 && pa == pb) {
        int later = srcs[ports[b].ri].origin >= srcs[ports[a].ri].origin ? b : a;
        int other = later == b ? a : b;
        label(&table[ports[later].ri], &srcs[ports[later].ri], who, sizeof who);
        return mq_status_set(st, MQ_EINVAL, "%s: %d is also the %s (--%s)", who, pa,
                             ports[other].what, table[ports[other].ri].flag);
      }
    }
  }

  if (strcmp(cfg->kafka_target, "log") != 0 && strcmp(cfg->kafka_target, "kv") != 0) {
    label(&table[ROW_OF(kafka_target)], &srcs[ROW_OF(kafka_target)], who, sizeof who);
    return mq_status_set(st, MQ_EINVAL, "%s: \"%.60s\" is neither log nor kv", who,
                         cfg->kafka_target);
  }

  /* Peer TLS: a partial set would silently fall back to plaintext. */
  int tls_rows[] = {ROW_OF(peer_tls_cert), ROW_OF(peer_tls_key), ROW_OF(peer_tls_ca)};
  int tls_set = 0;
  for (int i = 0; i < 3; i++)
    tls_set += ((char *)cfg + table[tls_rows[i]].offset)[0] != '\0';
  if (tls_set > 0 && tls_set < 3) {
    char missing[128] = "";
    for (int i = 0; i < 3; i++)
      if (((char *)cfg + table[tls_rows[i]].offset)[0] == '\0')
        snprintf(missing + strlen(missing), sizeof missing - strlen(missing), "%s--%s",
                 missing[0] ? " and " : "", table[tls_rows[i]].flag);
    return mq_status_set(st, MQ_EINVAL,
                         "peer TLS needs --peer-tls-cert, --peer-tls-key and --peer-tls-ca "
                         "together: %s %s missing",
                         missing, strchr(missing, ' ') ? "are" : "is");
  }

  /* API TLS: a certificate and its key, and a CA only with them. */
  bool api_cert = cfg->api_tls_cert[0], api_key = cfg->api_tls_key[0];
  if (api_cert != api_key || (cfg->api_tls_ca[0] && !api_cert))
    return mq_status_set(st, MQ_EINVAL,
                         "API TLS needs --api-tls-cert and --api-tls-key together (and "
                         "--api-tls-ca only with them): %s is missing",
                         !api_cert ? "--api-tls-cert" : "--api-tls-key");

  if (cfg->election_timeout_ms <= cfg->heartbeat_ms) {
    ri = blame(srcs, ROW_OF(election_timeout_ms), ROW_OF(heartbeat_ms), -1);
    label(&table[ri], &srcs[ri], who, sizeof who);
    return mq_status_set(st, MQ_EINVAL,
                         "%s: election timeout (%d ms) must be larger than the heartbeat (%d ms)",
                         who, cfg->election_timeout_ms, cfg->heartbeat_ms);
  }
  if (cfg->election_timeout_ms < 5 * cfg->heartbeat_ms)
    mq_warn("config",
            "election timeout %d ms is less than 5 heartbeats (%d ms): expect "
            "spurious elections",
            cfg->election_timeout_ms, cfg->heartbeat_ms);

  if ((uint64_t)cfg->max_key_bytes + cfg->max_value_bytes > cfg->max_request_bytes) {
    ri = blame(srcs, ROW_OF(max_request_bytes), ROW_OF(max_value_bytes), ROW_OF(max_key_bytes));
    label(&table[ri], &srcs[ri], who, sizeof who);
    return mq_status_set(st, MQ_EINVAL,
                         "%s: the largest key (%zu) plus the largest value (%zu) exceed the "
                         "request limit (%zu bytes)",
                         who, cfg->max_key_bytes, cfg->max_value_bytes, cfg->max_request_bytes);
  }

  /* How many agents can this one ever know of? */
  bool dynamic = cfg->nacos_addr[0] || cfg->dns_name[0];
  bool lone = !dynamic && cfg->n_peers == 0;
  int known = cfg->n_peers + 1;
  for (int i = 0; i < cfg->n_peers; i++)
    if (strcmp(cfg->peers[i].node_id, cfg->node_id) == 0)
      known = cfg->n_peers;

  ri = ROW_OF(bootstrap_expect);
  /* With discovery there is no shared seed list: the founder waits for
   * this many agents. Unset, as many as hold a shard's replicas. */
  if (dynamic && srcs[ri].origin == MQ_ORIGIN_DEFAULT)
    cfg->bootstrap_expect = cfg->replication_factor;
  if (!dynamic && cfg->bootstrap_expect > known) {
    label(&table[ri], &srcs[ri], who, sizeof who);
    if (lone)
      return mq_status_set(st, MQ_EINVAL,
                           "%s: waiting for %d agents, but no --peers, --nacos or --dns-name is "
                           "configured to find them",
                           who, cfg->bootstrap_expect);
    return mq_status_set(st, MQ_EINVAL,
                         "%s: waiting for %d agents, but --peers and this agent make only %d", who,
                         cfg->bootstrap_expect, known);
  }

  cfg->replication_factor_configured = cfg->replication_factor;
  cfg->rf_clamped = false;
  if (lone && cfg->replication_factor > 1) {
    mq_info("config",
            "no peers, Nacos or DNS name configured: running as a single agent with "
            "replication factor 1 (configured %d)",
            cfg->replication_factor);
    cfg->replication_factor = 1;
    cfg->rf_clamped = true;
  } else if (!dynamic && cfg->replication_factor > known) {
    mq_warn("config",
            "replication factor %d is more than the %d agents known from --peers; "
            "shards stay under-replicated until more agents join",
            cfg->replication_factor, known);
  }
  return 0;
}

/* ------------------------------------------------------------------------ */
/* Loading                                                                  */

struct assign {
  int row;
  const char *value;
  struct source src;
};

static const char *env_lookup(char **envp, const char *name) {
  size_t n = strlen(name);
  for (char **e = envp; e && *e; e++)
    if (strncmp(*e, name, n) == 0 && (*e)[n] == '=')
      return *e + n + 1;
  return NULL;
}

/* Kubernetes service links: <SVC>_SERVICE_HOST, <SVC>_SERVICE_PORT[_NAME],
 * <SVC>_PORT=tcp://..., <SVC>_PORT_<n>_<PROTO>[_ADDR|_PORT|_PROTO]. */
static bool service_link(const char *name, size_t len, const char *value) {
  char n[256];
  if (len >= sizeof n)
    return false;
  memcpy(n, name, len);
  n[len] = '\0';
  if (strstr(n, "_SERVICE_HOST") || strstr(n, "_SERVICE_PORT"))
    return true;
  if (strstr(value, "tcp://") == value || strstr(value, "udp://") == value ||
      strstr(value, "sctp://") == value)
    return true;
  const char *p = strstr(n, "_PORT_");
  return p && p[6] >= '0' && p[6] <= '9';
}

static void warn_unknown_env(char **envp) {
  for (char **e = envp; e && *e; e++) {
    if (strncmp(*e, "MEMQUORUM_", 10) != 0)
      continue;
    const char *eq = strchr(*e, '=');
    size_t len = eq ? (size_t)(eq - *e) : strlen(*e);
    bool ours = false;
    for (size_t i = 0; i < N_ROWS && !ours; i++)
      ours = table[i].env && strlen(table[i].env) == len && memcmp(table[i].env, *e, len) == 0;
    if (!ours && !service_link(*e, len, eq ? eq + 1 : ""))
      mq_warn("config", "ignoring unknown environment variable %.*s", (int)len, *e);
  }
}

/* Splits argv into assignments. Sets *help and *version; returns the first error
 * (after scanning everything, so that --help still wins). */
static int scan_flags(int argc, char **argv, struct assign *out, int *n, bool *help, bool *version,
                      struct mq_status *st) {
  int err = 0;
  *n = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      *help = true;
      continue;
    }
    if (strcmp(a, "--version") == 0) {
      *version = true;
      continue;
    }
    if (err)
      continue;
    if (strncmp(a, "--", 2) != 0 || a[2] == '\0') {
      err = mq_status_set(st, MQ_EINVAL, "unexpected argument \"%s\" (flags look like --port 8080)",
                          a);
      continue;
    }
    const char *name = a + 2, *eq = strchr(name, '=');
    size_t len = eq ? (size_t)(eq - name) : strlen(name);
    int ri = row_by_flag(name, len);
    if (ri < 0) {
      char hint[128], nm[128];
      snprintf(nm, sizeof nm, "%.*s", (int)len, name);
      suggest(nm, false, hint, sizeof hint);
      err = mq_status_set(st, MQ_EINVAL, "unknown flag --%s%s", nm, hint);
      continue;
    }
    const char *value;
    bool b;
    if (eq) {
      value = eq + 1;
    } else if (table[ri].type == MQ_CONFIG_BOOL) {
      value = (i + 1 < argc && mq_config_parse_bool(argv[i + 1], &b) == 0) ? argv[++i] : "true";
    } else if (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0) {
      value = argv[++i];
    } else {
      err = mq_status_set(st, MQ_EINVAL, "--%s: missing value", table[ri].flag);
      continue;
    }
    out[(*n)++] = (struct assign){.row = ri, .value = value, .src = {.origin = MQ_ORIGIN_FLAG}};
  }
  return err;
}

/* Resolves the properties file: the last --config flag, else the env var. */
static const struct assign *config_source(const struct assign *flags, int nflags,
                                          const struct assign *envs, int nenvs) {
  int ri = ROW_OF(config_file);
  for (int i = nflags; i > 0; i--)
    if (flags[i - 1].row == ri)
      return &flags[i - 1];
  for (int i = 0; i < nenvs; i++)
    if (envs[i].row == ri)
      return &envs[i];
  return NULL;
}

static bool our_namespace(const char *key) {
  return strncmp(key, "memquorum.", 10) == 0 || strncmp(key, "nacos.", 6) == 0 ||
         strncmp(key, "kafka.", 6) == 0;
}

/* Applies the file's entries in order, so the last of a repeated key wins. */
static int apply_file(struct mq_config *cfg, const struct mq_props *props, const char *path,
                      struct source *srcs, struct mq_status *st) {
  for (size_t i = 0; i < props->n; i++) {
    const struct mq_prop *p = &props->items[i];
    int ri = row_by_prop(p->key);
    if (ri < 0) {
      if (!our_namespace(p->key)) {
        mq_debug("config", "%s line %d: ignoring %s, not a MemQuorum setting", path, p->line,
                 p->key);
        continue;
      }
      char hint[160];
      suggest(p->key, true, hint, sizeof hint);
      return mq_status_set(st, MQ_EINVAL, "unknown key %s (from %s line %d)%s", p->key, path,
                           p->line, hint);
    }
    const struct mq_prop *last = mq_props_find(props, p->key);
    if (last != p)
      mq_warn("config", "%s: %s is given on line %d and again on line %d; line %d wins", path,
              p->key, p->line, last->line, last->line);
    struct source src = {.origin = MQ_ORIGIN_FILE, .file = path, .line = p->line};
    int rc = apply(cfg, ri, p->value, &src, st);
    if (rc)
      return rc;
    srcs[ri] = src;
  }
  return 0;
}

static void print_version(void) {
#ifdef MQ_VERSION
  printf("memquorum %s\n", MQ_VERSION);
#else
  printf("memquorum 0.1.0\n");
#endif
}

int mq_config_load(struct mq_config *cfg, int argc, char **argv, char **envp,
                   struct mq_status *st) {
  struct source srcs[N_ROWS];
  struct assign envs[N_ROWS];
  struct mq_props props = {0};
  struct assign *flags = NULL;
  char path[sizeof cfg->config_file] = "";
  bool help = false, version = false;
  int nflags = 0, nenvs = 0, rc;

  if (st)
    mq_status_clear(st);
  mq_config_defaults(cfg);
  for (size_t i = 0; i < N_ROWS; i++)
    srcs[i] = (struct source){.origin = MQ_ORIGIN_DEFAULT};

  flags = calloc(argc > 0 ? (size_t)argc : 1, sizeof *flags);
  if (!flags)
    return mq_status_set(st, MQ_ENOMEM, "out of memory");
  rc = scan_flags(argc, argv, flags, &nflags, &help, &version, st);
  if (help || version) {
    if (st)
      mq_status_clear(st);
    if (help)
      mq_config_usage(stdout);
    else
      print_version();
    fflush(stdout);
    rc = 1;
    goto free_flags;
  }
  if (rc)
    goto free_flags;

  for (size_t i = 0; i < N_ROWS; i++) {
    const char *v = table[i].env ? env_lookup(envp, table[i].env) : NULL;
    if (v)
      envs[nenvs++] = (struct assign){.row = (int)i, .value = v, .src = {.origin = MQ_ORIGIN_ENV}};
  }
  warn_unknown_env(envp);

  /* The file first: it has the lowest precedence of the explicit sources. */
  const struct assign *cs = config_source(flags, nflags, envs, nenvs);
  if (cs && cs->value[0]) {
    char who[256];
    if ((rc = apply(cfg, cs->row, cs->value, &cs->src, st)))
      goto free_props;
    snprintf(path, sizeof path, "%s", cs->value);
    label(&table[cs->row], &cs->src, who, sizeof who);
    rc = mq_props_read_file(&props, path, st);
    if (rc) {
      if (st) {
        char msg[sizeof st->msg];
        snprintf(msg, sizeof msg, "%s", st->msg);
        mq_status_set(st, rc, "%s: %s", who, msg);
      }
      goto free_props;
    }
    if ((rc = apply_file(cfg, &props, path, srcs, st)))
      goto free_props;
  }

  for (int i = 0; i < nenvs; i++) {
    if ((rc = apply(cfg, envs[i].row, envs[i].value, &envs[i].src, st)))
      goto free_props;
    srcs[envs[i].row] = envs[i].src;
  }
  for (int i = 0; i < nflags; i++) {
    if ((rc = apply(cfg, flags[i].row, flags[i].value, &flags[i].src, st)))
      goto free_props;
    srcs[flags[i].row] = flags[i].src;
  }

  derive(cfg);
  rc = check(cfg, srcs, st);

free_props:
  mq_props_free(&props);
free_flags:
  free(flags);
  return rc;
}

/* ------------------------------------------------------------------------ */
/* A remote properties text on top of a loaded configuration                */

int mq_config_apply_props_text(struct mq_config *cfg, const char *text, size_t len,
                               const char *name, struct mq_status *st) {
  struct source srcs[N_ROWS];
  struct mq_props props = {0};
  int rc = mq_props_parse(&props, text, len, name, st);
  if (rc)
    goto out;
  /* What the loaded configuration came from; the file's lines are gone. */
  for (size_t i = 0; i < N_ROWS; i++)
    srcs[i] = (struct source){.origin = cfg->origin[i], .file = cfg->config_file};
  for (size_t i = 0; i < props.n; i++) {
    const struct mq_prop *p = &props.items[i];
    int ri = row_by_prop(p->key);
    if (ri < 0) {
      if (!our_namespace(p->key))
        continue;
      char hint[160];
      suggest(p->key, true, hint, sizeof hint);
      rc = mq_status_set(st, MQ_EINVAL, "unknown key %s (from %s line %d)%s", p->key, name, p->line,
                         hint);
      goto out;
    }
    if (srcs[ri].origin >= MQ_ORIGIN_ENV) {
      mq_debug("config", "%s line %d: %s is set by %s, which wins", name, p->line, p->key,
               srcs[ri].origin == MQ_ORIGIN_FLAG ? "a flag" : "the environment");
      continue;
    }
    struct source src = {.origin = MQ_ORIGIN_NACOS, .file = name, .line = p->line};
    if ((rc = apply(cfg, ri, p->value, &src, st)))
      goto out;
    srcs[ri] = src;
  }
  rc = check(cfg, srcs, st);
out:
  mq_props_free(&props);
  return rc;
}

static bool same_value(const struct mq_config_setting *r, const struct mq_config *a,
                       const struct mq_config *b) {
  const char *x = (const char *)a + r->offset, *y = (const char *)b + r->offset;
  switch (r->type) {
  case MQ_CONFIG_STRING:
  case MQ_CONFIG_NODE_ID:
  case MQ_CONFIG_PATH:
    return strcmp(x, y) == 0;
  case MQ_CONFIG_PEERS:
    return a->n_peers == b->n_peers &&
           memcmp(a->peers, b->peers, (size_t)a->n_peers * sizeof a->peers[0]) == 0;
  default:
    return memcmp(x, y, r->size) == 0;
  }
}

size_t mq_config_diff(const struct mq_config *a, const struct mq_config *b, int *rows, size_t cap) {
  size_t n = 0;
  for (size_t i = 0; i < N_ROWS; i++) {
    if (same_value(&table[i], a, b))
      continue;
    if (n < cap)
      rows[n] = (int)i;
    n++;
  }
  return n;
}
