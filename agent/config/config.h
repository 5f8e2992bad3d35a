/* Agent configuration: every setting of DESIGN.md section 4 and the limits,
 * timings and options of later sections, loaded from flags, environment
 * variables and a Java-style properties file with the precedence
 * flag > env > properties file > default (and the Nacos config between env
 * and the file: mq_config_apply_props_text).
 *
 * Unknown keys and bad values stop the agent at start: mq_config_load()
 * returns MQ_EINVAL with a message that names the key and its source
 * ("--port: 70000 is out of range (0-65535)", "memquorum.shards.total (from
 * /etc/mq.properties line 3): \"abc\" is not an integer").
 *
 * Sources and keys. Every setting is one row of a table (config.c) with its
 * flag, env var and properties key; mq_config_settings() exposes it. Env var
 * names are the properties key upper-cased with '.' and '-' as '_'
 * (memquorum.node.port -> MEMQUORUM_NODE_PORT), except the names the
 * product documented before: KAFKA_BOOTSTRAP_SERVERS and NACOS_*.
 *
 * Unknown names. An unknown flag is an error. In the properties file an
 * unknown key in our namespaces (memquorum.*, nacos.*, kafka.*) is an error
 * naming the key and line; other keys are ignored, so one Spring-style
 * application.properties can be shared with the app. Environment variables
 * are shared with the whole container (Kubernetes adds MEMQUORUM_SERVICE_HOST
 * and friends for a Service named memquorum), so an unknown MEMQUORUM_* var
 * is only logged as a warning.
 *
 * Values. Integers are decimal; booleans are true/false, 1/0, yes/no, on/off;
 * sizes take binary units (512MiB, 1g, 1048576); durations take ms, s, m, h, d
 * ("7d", "1h30m"; a bare number is milliseconds). Empty strings mean "unset"
 * for string settings and select the derived default where there is one.
 *
 * Replication factor of a lone agent. When no static peers, no Nacos address
 * and no DNS name are configured, the agent can never have company, so
 * mq_config_load() sets replication_factor to 1 (keeping the configured value
 * in replication_factor_configured), sets rf_clamped and logs it at INFO.
 * Everything downstream reads replication_factor and sees the effective
 * value; reports can show both fields. With discovery configured,
 * an RF larger than the known static agents is only a warning, since
 * discovery may add more. */
#ifndef MQ_CONFIG_CONFIG_H
#define MQ_CONFIG_CONFIG_H

#include "util/err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define MQ_MAX_PEERS 64
/* The DNS subjectAltName every peer certificate carries: agents dial each
 * other by IP or host name, so TLS verifies this fixed name instead. */
#define MQ_PEER_TLS_NAME "memquorum-peer"
/* Upper bound on the number of rows in the settings table. */
#define MQ_CONFIG_MAX_SETTINGS 64

/* One static peer. host is a name or an IP address; an IPv6 address is
 * stored without brackets ("::1"), add them when formatting host:port. The
 * list may contain this agent itself (one list for every agent). */
struct mq_peer_addr {
  char node_id[128];
  char host[256];
  int port;
};

/* Where a setting's value came from, lowest precedence first. */
enum mq_config_origin {
  MQ_ORIGIN_DEFAULT = 0,
  MQ_ORIGIN_DERIVED, /* computed from the host or other settings */
  MQ_ORIGIN_FILE,
  MQ_ORIGIN_NACOS, /* the Nacos config (mq_config_apply_props_text) */
  MQ_ORIGIN_ENV,
  MQ_ORIGIN_FLAG,
};

struct mq_config {
  /* identity and ports */
  char node_id[128];        /* default: hostname-port (hostname-pid<pid> when port is 0) */
  int port;                 /* API gRPC port, default 8080; 0 = pick a free one */
  char api_bind[256];       /* default 127.0.0.1 */
  int peer_port;            /* default 7070; 0 = pick a free one */
  char advertise_addr[256]; /* default: first non-loopback IPv4, else 127.0.0.1 */
  int http_port;            /* HTTP + websocket, default 9090; 0 = pick a free one; -1 = off */

  /* cluster */
  int shards_total;                  /* default 16, 1..4096 */
  int replication_factor;            /* default 3, 1..7; effective value: 1 on a lone agent */
  int replication_factor_configured; /* as given, before the lone-agent rule */
  bool rf_clamped;                   /* lone-agent rule lowered replication_factor */
  int bootstrap_expect;              /* default 1 */
  int replace_dead_ms;               /* a member down this long loses its replicas; 0 = never */
  int drain_timeout_ms;              /* SIGTERM waits this long at most for a safe departure */
  struct mq_peer_addr peers[MQ_MAX_PEERS];
  int n_peers;
  char nacos_addr[512]; /* empty: Nacos not used */
  char nacos_namespace[128];
  char nacos_group[128]; /* default DEFAULT_GROUP */
  char nacos_username[128];
  char nacos_password[128];
  char dns_name[256]; /* empty: DNS discovery not used */
  int dns_refresh_ms; /* how often the DNS name is resolved again, default 5000 */

  /* peer TLS: all three files or none (plaintext peer links) */
  char peer_tls_cert[1024]; /* PEM certificate chain of this agent */
  char peer_tls_key[1024];  /* PEM private key of that certificate */
  char peer_tls_ca[1024];   /* PEM CA certificates that sign every agent */
  /* API TLS: certificate and key, or neither (plaintext); the CA optional */
  char api_tls_cert[1024]; /* PEM certificate of the API port */
  char api_tls_key[1024];  /* its PEM private key */
  char api_tls_ca[1024];   /* "": API clients need no certificate */

  /* Kafka */
  bool kafka_enabled;           /* default false */
  char kafka_bootstrap[512];    /* default localhost:9092 */
  char kafka_topic[256];        /* default memquorum-input */
  char kafka_group[256];        /* default memquorum-<kafka_topic> */
  int kafka_max_poll_records;   /* default 500 */
  int kafka_session_timeout_ms; /* default 30000 */
  char kafka_target[8];         /* log (default) or kv */
  char kafka_dlq_topic[256];    /* default none */
  int kafka_max_in_flight;      /* default 20000 */

  /* Raft timings */
  int heartbeat_ms;          /* default 100 */
  int election_timeout_ms;   /* default 1000 (randomized 1x-2x) */
  uint64_t snapshot_entries; /* log entries kept per shard, default 10000 */
  bool snapshot_fork;        /* followers' snapshots built by a child, default true */
  uint64_t raft_log_bytes;   /* log entry bytes kept per shard, default 1 MiB */
  int leader_follow_ms;      /* leadership follows the requests, judged
                                over this window; 0 = never; default 10000 */

  /* limits */
  size_t max_key_bytes;         /* default 4096 */
  size_t max_value_bytes;       /* default 1 MiB */
  size_t max_request_bytes;     /* gRPC receive limit, default 4 MiB */
  int max_calls;                /* gRPC calls at once, streams included, default 10000 */
  uint64_t memory_budget_bytes; /* default 1 GiB; writes past it: RESOURCE_EXHAUSTED */
  uint64_t retention_entries;   /* per (topic, partition), default 1,000,000 */
  uint64_t retention_bytes;     /* per (topic, partition), default 64 MiB */
  int64_t retention_ms;         /* default 7 days */
  size_t watch_history_events;  /* per shard, default 10000 */
  uint64_t watch_history_bytes; /* per shard, default 512 KiB */

  /* process */
  int grpc_threads;                /* completion-queue threads, default 1 */
  int log_level;                   /* enum mq_log_level, default INFO */
  int log_format;                  /* enum mq_log_format, default TEXT */
  char config_file[1024];          /* the properties file read, if any */
  char feed_token[256];            /* empty: websocket feed needs no token */
  char feed_allowed_origins[1024]; /* comma-separated; empty: any Origin */

  /* enum mq_config_origin of each setting, indexed like mq_config_settings() */
  unsigned char origin[MQ_CONFIG_MAX_SETTINGS];
};

enum mq_config_type {
  MQ_CONFIG_STRING,
  MQ_CONFIG_NODE_ID, /* string of [A-Za-z0-9._-] */
  MQ_CONFIG_PATH,  /* a file name (--config must exist; TLS files are read by the peer transport) */
  MQ_CONFIG_INT,   /* int field */
  MQ_CONFIG_BOOL,  /* bool field */
  MQ_CONFIG_COUNT, /* uint64_t or size_t field, plain number */
  MQ_CONFIG_SIZE,  /* uint64_t or size_t field, bytes with units */
  MQ_CONFIG_DURATION,   /* int or int64_t field, milliseconds with units */
  MQ_CONFIG_PEERS,      /* peers[] and n_peers */
  MQ_CONFIG_LOG_LEVEL,  /* int field, enum mq_log_level */
  MQ_CONFIG_LOG_FORMAT, /* int field, enum mq_log_format */
};

#define MQ_CONFIG_SECRET 1u /* masked in logs */
/* Changes while the agent runs (a Nacos config change, mq_node_reconfigure);
 * every other setting needs a restart. */
#define MQ_CONFIG_LIVE 2u

/* One row of the settings table. */
struct mq_config_setting {
  const char *group; /* "Node", "Cluster", ... as in --help */
  const char *flag;  /* without the leading "--" */
  const char *env;   /* NULL: no env var */
  const char *prop;  /* NULL: not settable from the file (--config) */
  enum mq_config_type type;
  size_t offset;        /* of the field in struct mq_config */
  size_t size;          /* of the field */
  int64_t min, max;     /* for numeric types, in the field's unit */
  const char *def;      /* default as text; "" for derived or none */
  const char *def_help; /* shown in --help instead of def when set */
  const char *help;
  unsigned flags; /* MQ_CONFIG_SECRET, MQ_CONFIG_LIVE */
};

/* The settings table, *n rows. Static storage. */
const struct mq_config_setting *mq_config_settings(size_t *n);

/* The origin of the setting with the given flag name ("port"), or -1 when
 * there is no such setting. */
int mq_config_origin_of(const struct mq_config *cfg, const char *flag);

/* Fills cfg with every default. node_id and advertise_addr defaults that
 * depend on the host are resolved by mq_config_load(). */
void mq_config_defaults(struct mq_config *cfg);

/* Loads the configuration from argv (flags), envp (environment, NULL-
 * terminated "K=V" strings; getenv() is never used) and the properties file
 * named by --config or MEMQUORUM_CONFIG. Flags are `--name value` or
 * `--name=value`; a boolean flag alone means true. Then fills the derived
 * defaults (node_id, advertise_addr, kafka_group), applies the lone-agent
 * rule above and runs the cross-field checks (distinct ports, bootstrap
 * expectations that can be met, limits that fit in a request, election
 * timeout above the heartbeat). Returns 0, MQ_EINVAL (or MQ_ENOTFOUND for a
 * missing --config file) with st->msg naming the key, its source and the
 * problem, or 1 when --help/-h or --version was given (text already printed
 * to stdout). cfg is fully written in every case. */
int mq_config_load(struct mq_config *cfg, int argc, char **argv, char **envp, struct mq_status *st);

/* Applies a properties text from a remote source (the Nacos config
 * dataId memquorum.properties, labelled name in messages) on top of cfg,
 * with the precedence flag > env > this text > properties file > default:
 * a setting whose origin in cfg is a flag or the environment keeps its
 * value. Unknown keys of our namespaces, bad values and failed cross-field
 * checks are errors naming the key; cfg is then partly written, so callers
 * apply to a copy. Returns 0, MQ_EINVAL or MQ_ENOMEM. */
int mq_config_apply_props_text(struct mq_config *cfg, const char *text, size_t len,
                               const char *name, struct mq_status *st);

/* The rows (indexes into mq_config_settings()) whose values differ between
 * a and b, at most cap of them; returns how many differ. */
size_t mq_config_diff(const struct mq_config *a, const struct mq_config *b, int *rows, size_t cap);

/* Prints the --help text: every flag with its env var, properties key and
 * default. */
void mq_config_usage(FILE *out);

/* Logs every effective setting (passwords and tokens masked) at INFO. */
void mq_config_log(const struct mq_config *cfg);

#endif
