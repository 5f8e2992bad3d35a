/* Configuration loading: defaults, each source, precedence, every value
 * type's errors, properties syntax, peers, derived defaults, cross-field
 * checks and --help/--version. Files go to a fresh mkdtemp directory. */
#include "config/config.h"
#include "config/props.h"
#include "config/values.h"
#include "util/log.h"

#include "check.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[64];
static int n_files;

/* Writes text to a new file in tmpdir; returns its path (static storage). */
static const char *write_file(const char *text) {
  static char paths[64][128];
  char *p = paths[n_files % 64];
  snprintf(p, sizeof paths[0], "%s/f%d.properties", tmpdir, n_files++);
  FILE *f = fopen(p, "wb");
  CHECK(f != NULL);
  CHECK_EQ(fwrite(text, 1, strlen(text), f), strlen(text));
  CHECK_EQ(fclose(f), 0);
  return p;
}

/* Runs mq_config_load with argv = {"memquorum", args...}. */
static int load(struct mq_config *cfg, struct mq_status *st, char **env, const char *const *args) {
  char *argv[64] = {"memquorum"};
  int argc = 1;
  for (; args && args[argc - 1]; argc++)
    argv[argc] = (char *)args[argc - 1];
  argv[argc] = NULL;
  return mq_config_load(cfg, argc, argv, env, st);
}
#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})
#define ENV(...) ((char *[]){__VA_ARGS__, NULL})

/* Loads and expects success. */
static void load_ok(struct mq_config *cfg, char **env, const char *const *args) {
  struct mq_status st;
  int rc = load(cfg, &st, env, args);
  if (rc != 0)
    CHECK_FAIL("load failed: %d %s", rc, st.msg);
}

/* Loads and expects an error whose message is exactly want. */
static void load_err(char **env, const char *const *args, const char *want) {
  struct mq_config cfg;
  struct mq_status st;
  int rc = load(&cfg, &st, env, args);
  CHECK_NE(rc, 0);
  CHECK_NE(rc, 1);
  CHECK_EQ(st.code, rc);
  CHECK_STREQ(st.msg, want);
}

/* Loads and expects an error whose message contains want. */
static void load_err_has(char **env, const char *const *args, const char *want) {
  struct mq_config cfg;
  struct mq_status st;
  int rc = load(&cfg, &st, env, args);
  CHECK_LT(rc, 0);
  CHECK_CONTAINS(st.msg, want);
}

/* Runs f with file descriptor fd redirected to a file; returns its text. */
static char *capture(int fd, void (*f)(void *), void *arg) {
  char path[128];
  snprintf(path, sizeof path, "%s/capture%d", tmpdir, n_files++);
  fflush(stdout);
  fflush(stderr);
  int saved = dup(fd);
  int out = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0600);
  CHECK_GE(out, 0);
  CHECK_GE(dup2(out, fd), 0);
  close(out);
  f(arg);
  fflush(stdout);
  fflush(stderr);
  CHECK_GE(dup2(saved, fd), 0);
  close(saved);
  FILE *in = fopen(path, "rb");
  CHECK(in != NULL);
  static char buf[1 << 16];
  size_t n = fread(buf, 1, sizeof buf - 1, in);
  buf[n] = '\0';
  fclose(in);
  return buf;
}

/* ------------------------------------------------------------------------ */

static void test_defaults(void) {
  struct mq_config cfg;
  mq_config_defaults(&cfg);
  CHECK_STREQ(cfg.node_id, "");
  CHECK_EQ(cfg.replication_factor, 3);

  load_ok(&cfg, NULL, NULL);
  char host[128] = "", want[160];
  gethostname(host, sizeof host - 1);
  snprintf(want, sizeof want, "%s-8080", host);
  CHECK_STREQ(cfg.node_id, want);
  CHECK_EQ(cfg.port, 8080);
  CHECK_STREQ(cfg.api_bind, "127.0.0.1");
  CHECK_EQ(cfg.peer_port, 7070);
  struct in_addr a;
  CHECK_EQ(inet_pton(AF_INET, cfg.advertise_addr, &a), 1);
  CHECK_EQ(cfg.http_port, 9090);
  CHECK_EQ(cfg.shards_total, 16);
  CHECK_EQ(cfg.replication_factor, 1); /* lone agent */
  CHECK_EQ(cfg.replication_factor_configured, 3);
  CHECK(cfg.rf_clamped);
  CHECK_EQ(cfg.bootstrap_expect, 1);
  CHECK_EQ(cfg.n_peers, 0);
  CHECK_STREQ(cfg.nacos_addr, "");
  CHECK_STREQ(cfg.nacos_group, "DEFAULT_GROUP");
  CHECK_STREQ(cfg.dns_name, "");
  CHECK_EQ(cfg.dns_refresh_ms, 5000);
  CHECK(!cfg.kafka_enabled);
  CHECK_STREQ(cfg.kafka_bootstrap, "localhost:9092");
  CHECK_STREQ(cfg.kafka_topic, "memquorum-input");
  CHECK_STREQ(cfg.kafka_group, "memquorum-memquorum-input"); /* one group per cluster */
  CHECK_STREQ(cfg.kafka_target, "log");
  CHECK_STREQ(cfg.kafka_dlq_topic, "");
  CHECK_EQ(cfg.kafka_max_in_flight, 20000);
  CHECK_EQ(cfg.kafka_max_poll_records, 500);
  CHECK_EQ(cfg.kafka_session_timeout_ms, 30000);
  CHECK_EQ(cfg.heartbeat_ms, 100);
  CHECK_EQ(cfg.election_timeout_ms, 1000);
  CHECK_UEQ(cfg.snapshot_entries, 10000);
  CHECK_UEQ(cfg.max_key_bytes, 4096);
  CHECK_UEQ(cfg.max_value_bytes, 1 << 20);
  CHECK_UEQ(cfg.max_request_bytes, 4 << 20);
  CHECK_UEQ(cfg.memory_budget_bytes, 1ull << 30);
  CHECK_UEQ(cfg.retention_entries, 1000000);
  CHECK_UEQ(cfg.retention_bytes, 64 << 20);
  CHECK_EQ(cfg.retention_ms, 7 * 86400000LL);
  CHECK_UEQ(cfg.watch_history_events, 10000);
  CHECK_UEQ(cfg.watch_history_bytes, 512 * 1024);
  CHECK_EQ(cfg.grpc_threads, 1);
  CHECK_EQ(cfg.log_level, MQ_LOG_INFO);
  CHECK_EQ(cfg.log_format, MQ_LOG_TEXT);
  CHECK_STREQ(cfg.config_file, "");
  CHECK_EQ(mq_config_origin_of(&cfg, "port"), MQ_ORIGIN_DEFAULT);
  CHECK_EQ(mq_config_origin_of(&cfg, "node-id"), MQ_ORIGIN_DERIVED);
  CHECK_EQ(mq_config_origin_of(&cfg, "kafka-group"), MQ_ORIGIN_DERIVED);
  CHECK_EQ(mq_config_origin_of(&cfg, "no-such"), -1);

  /* The derived node id follows the effective port. */
  load_ok(&cfg, NULL, ARGS("--port", "9001", "--http-port", "0"));
  snprintf(want, sizeof want, "%s-9001", host);
  CHECK_STREQ(cfg.node_id, want);
  load_ok(&cfg, NULL, ARGS("--port", "0"));
  snprintf(want, sizeof want, "%s-pid%ld", host, (long)getpid());
  CHECK_STREQ(cfg.node_id, want);
}

/* Environment comes only from envp, never from the process environment. */
static void test_env_is_hermetic(void) {
  struct mq_config cfg;
  setenv("MEMQUORUM_NODE_PORT", "1234", 1);
  load_ok(&cfg, NULL, NULL);
  CHECK_EQ(cfg.port, 8080);
  load_ok(&cfg, ENV("PATH=/bin"), NULL);
  CHECK_EQ(cfg.port, 8080);
  unsetenv("MEMQUORUM_NODE_PORT");
}

static void test_each_source(void) {
  struct mq_config cfg;
  load_ok(&cfg, NULL, ARGS("--port", "8181"));
  CHECK_EQ(cfg.port, 8181);
  CHECK_EQ(mq_config_origin_of(&cfg, "port"), MQ_ORIGIN_FLAG);
  load_ok(&cfg, NULL, ARGS("--port=8182"));
  CHECK_EQ(cfg.port, 8182);
  load_ok(&cfg, ENV("MEMQUORUM_NODE_PORT=8183"), NULL);
  CHECK_EQ(cfg.port, 8183);
  CHECK_EQ(mq_config_origin_of(&cfg, "port"), MQ_ORIGIN_ENV);
  const char *f = write_file("memquorum.node.port=8184\n");
  load_ok(&cfg, NULL, ARGS("--config", f));
  CHECK_EQ(cfg.port, 8184);
  CHECK_EQ(mq_config_origin_of(&cfg, "port"), MQ_ORIGIN_FILE);
  CHECK_STREQ(cfg.config_file, f);
  load_ok(&cfg, NULL,
          ARGS("--config="
               "/dev/null"));
  CHECK_STREQ(cfg.config_file, "/dev/null");
  /* MEMQUORUM_CONFIG names the file too. */
  char env[200];
  snprintf(env, sizeof env, "MEMQUORUM_CONFIG=%s", f);
  load_ok(&cfg, ENV(env), NULL);
  CHECK_EQ(cfg.port, 8184);

  /* Every documented name of DESIGN.md section 4 and the seed guide. */
  f = write_file("memquorum.node.id=node-1\n"
                 "memquorum.node.port=8080\n"
                 "memquorum.shards.total=64\n"
                 "memquorum.replication.factor=5\n"
                 "memquorum.kafka.enabled=true\n"
                 "memquorum.kafka.bootstrap-servers=kafka:9092\n"
                 "memquorum.kafka.topic=in\n"
                 "memquorum.kafka.max-poll-records=200\n"
                 "memquorum.kafka.session-timeout=45000\n"
                 "nacos.server.addr=localhost:8848\n"
                 "memquorum.api.bind=0.0.0.0\n"
                 "memquorum.peer.port=7171\n"
                 "memquorum.advertise.addr=10.1.2.3\n"
                 "memquorum.http.port=9191\n"
                 "memquorum.bootstrap.expect=3\n"
                 "memquorum.dns.name=mq.default.svc\n"
                 "memquorum.dns.refresh=2s\n");
  load_ok(&cfg, NULL, ARGS("--config", f));
  CHECK_STREQ(cfg.node_id, "node-1");
  CHECK_EQ(cfg.shards_total, 64);
  CHECK_EQ(cfg.replication_factor, 5);
  CHECK(!cfg.rf_clamped);
  CHECK(cfg.kafka_enabled);
  CHECK_STREQ(cfg.kafka_bootstrap, "kafka:9092");
  CHECK_STREQ(cfg.kafka_topic, "in");
  CHECK_STREQ(cfg.kafka_group, "memquorum-in"); /* from the topic: shared by the cluster */
  CHECK_EQ(cfg.kafka_max_poll_records, 200);
  CHECK_EQ(cfg.kafka_session_timeout_ms, 45000);
  CHECK_STREQ(cfg.nacos_addr, "localhost:8848");
  CHECK_STREQ(cfg.api_bind, "0.0.0.0");
  CHECK_EQ(cfg.peer_port, 7171);
  CHECK_STREQ(cfg.advertise_addr, "10.1.2.3");
  CHECK_EQ(cfg.http_port, 9191);
  CHECK_EQ(cfg.bootstrap_expect, 3);
  CHECK_STREQ(cfg.dns_name, "mq.default.svc");
  CHECK_EQ(cfg.dns_refresh_ms, 2000);

  load_ok(&cfg,
          ENV("MEMQUORUM_NODE_ID=node-2", "MEMQUORUM_SHARDS_TOTAL=32",
              "MEMQUORUM_REPLICATION_FACTOR=2", "NACOS_SERVER_ADDR=nacos:8848",
              "MEMQUORUM_KAFKA_ENABLED=yes", "KAFKA_BOOTSTRAP_SERVERS=k1:9092,k2:9092",
              "MEMQUORUM_KAFKA_TOPIC=t", "MEMQUORUM_KAFKA_GROUP=g", "NACOS_NAMESPACE=ns",
              "NACOS_USERNAME=u", "NACOS_PASSWORD=p", "MEMQUORUM_LOG_LEVEL=debug",
              "MEMQUORUM_LOG_FORMAT=json", "MEMQUORUM_FEED_TOKEN=tok",
              "MEMQUORUM_PEERS=a=h1:7070,b=h2:7070"),
          NULL);
  CHECK_STREQ(cfg.node_id, "node-2");
  CHECK_EQ(cfg.shards_total, 32);
  CHECK_EQ(cfg.replication_factor, 2);
  CHECK_STREQ(cfg.nacos_addr, "nacos:8848");
  CHECK(cfg.kafka_enabled);
  CHECK_STREQ(cfg.kafka_bootstrap, "k1:9092,k2:9092");
  CHECK_STREQ(cfg.kafka_group, "g");
  CHECK_STREQ(cfg.nacos_namespace, "ns");
  CHECK_STREQ(cfg.nacos_username, "u");
  CHECK_STREQ(cfg.nacos_password, "p");
  CHECK_EQ(cfg.log_level, MQ_LOG_DEBUG);
  CHECK_EQ(cfg.log_format, MQ_LOG_JSON);
  CHECK_STREQ(cfg.feed_token, "tok");
  CHECK_EQ(cfg.n_peers, 2);

  load_ok(&cfg, NULL,
          ARGS("--node-id", "n3", "--api-bind", "::1", "--advertise", "mq-0.mq", "--shards", "8",
               "--replication-factor", "1", "--nacos", "n:8848", "--nacos-group", "G", "--dns-name",
               "d", "--kafka-enabled", "--kafka-bootstrap-servers", "b:1", "--kafka-topic", "tt",
               "--kafka-group", "gg", "--kafka-max-poll-records", "7", "--kafka-session-timeout",
               "10s", "--heartbeat-ms", "50", "--election-timeout-ms", "500", "--snapshot-entries",
               "99", "--max-key-bytes", "1KiB", "--max-value-bytes", "2MiB", "--max-request-bytes",
               "8MiB", "--memory-budget", "512MiB", "--retention-entries", "5", "--retention-bytes",
               "1g", "--retention-ms", "1h", "--watch-history", "42", "--grpc-threads", "4",
               "--log-level", "WARN", "--log-format", "json", "--feed-token", "s3",
               "--feed-allowed-origins", "https://a.example,https://b.example"));
  CHECK_STREQ(cfg.node_id, "n3");
  CHECK_STREQ(cfg.api_bind, "::1");
  CHECK_STREQ(cfg.advertise_addr, "mq-0.mq");
  CHECK_EQ(cfg.shards_total, 8);
  CHECK_STREQ(cfg.nacos_group, "G");
  CHECK(cfg.kafka_enabled);
  CHECK_EQ(cfg.kafka_session_timeout_ms, 10000);
  CHECK_EQ(cfg.heartbeat_ms, 50);
  CHECK_EQ(cfg.election_timeout_ms, 500);
  CHECK_UEQ(cfg.snapshot_entries, 99);
  CHECK_UEQ(cfg.max_key_bytes, 1024);
  CHECK_UEQ(cfg.max_value_bytes, 2 << 20);
  CHECK_UEQ(cfg.max_request_bytes, 8 << 20);
  CHECK_UEQ(cfg.memory_budget_bytes, 512u << 20);
  CHECK_UEQ(cfg.retention_entries, 5);
  CHECK_UEQ(cfg.retention_bytes, 1u << 30);
  CHECK_EQ(cfg.retention_ms, 3600000);
  CHECK_UEQ(cfg.watch_history_events, 42);
  CHECK_EQ(cfg.grpc_threads, 4);
  CHECK_EQ(cfg.log_level, MQ_LOG_WARN);
  CHECK_STREQ(cfg.feed_allowed_origins, "https://a.example,https://b.example");
}

static void test_precedence(void) {
  struct mq_config cfg;
  const char *f = write_file("memquorum.node.port=1001\n"
                             "memquorum.shards.total=11\n"
                             "memquorum.kafka.topic=from-file\n"
                             "memquorum.log.level=error\n");
  char cfgenv[200];
  snprintf(cfgenv, sizeof cfgenv, "MEMQUORUM_CONFIG=%s", f);

  /* file > default */
  load_ok(&cfg, ENV(cfgenv), NULL);
  CHECK_EQ(cfg.port, 1001);
  CHECK_EQ(cfg.shards_total, 11);
  CHECK_STREQ(cfg.kafka_topic, "from-file");
  CHECK_EQ(cfg.log_level, MQ_LOG_ERROR);
  CHECK_EQ(cfg.peer_port, 7070);

  /* env > file */
  load_ok(&cfg, ENV(cfgenv, "MEMQUORUM_NODE_PORT=2002", "MEMQUORUM_KAFKA_TOPIC=from-env"), NULL);
  CHECK_EQ(cfg.port, 2002);
  CHECK_STREQ(cfg.kafka_topic, "from-env");
  CHECK_EQ(cfg.shards_total, 11);

  /* flag > env > file, key by key */
  load_ok(&cfg, ENV(cfgenv, "MEMQUORUM_NODE_PORT=2002", "MEMQUORUM_LOG_LEVEL=debug"),
          ARGS("--port", "3003", "--shards=13"));
  CHECK_EQ(cfg.port, 3003);
  CHECK_EQ(cfg.shards_total, 13);
  CHECK_EQ(cfg.log_level, MQ_LOG_DEBUG);
  CHECK_STREQ(cfg.kafka_topic, "from-file");
  CHECK_EQ(mq_config_origin_of(&cfg, "port"), MQ_ORIGIN_FLAG);
  CHECK_EQ(mq_config_origin_of(&cfg, "log-level"), MQ_ORIGIN_ENV);
  CHECK_EQ(mq_config_origin_of(&cfg, "kafka-topic"), MQ_ORIGIN_FILE);

  /* --config beats MEMQUORUM_CONFIG; the last repeated flag wins. */
  const char *g = write_file("memquorum.node.port=4004\n");
  load_ok(&cfg, ENV(cfgenv), ARGS("--config", g, "--shards", "2", "--shards", "3"));
  CHECK_EQ(cfg.port, 4004);
  CHECK_EQ(cfg.shards_total, 3);
  CHECK_STREQ(cfg.kafka_topic, "memquorum-input");

  /* A value that a higher source overrides is still validated. */
  load_err(ENV("MEMQUORUM_SHARDS_TOTAL=lots"), ARGS("--shards", "4"),
           "MEMQUORUM_SHARDS_TOTAL (from environment): \"lots\" is not an integer");
}

static void test_bad_values(void) {
  char path_msg[300];
  /* integers */
  load_err(NULL, ARGS("--port", "abc"), "--port: \"abc\" is not an integer");
  load_err(NULL, ARGS("--port", "70000"), "--port: 70000 is out of range (0-65535)");
  load_err(NULL, ARGS("--port=-1"), "--port: -1 is out of range (0-65535)");
  load_err(NULL, ARGS("--port", "80x"), "--port: \"80x\" is not an integer");
  load_err(NULL, ARGS("--port", " 80"), "--port: \" 80\" is not an integer");
  load_err(NULL, ARGS("--port="), "--port: \"\" is not an integer");
  load_err(NULL, ARGS("--peer-port", "99999999999999999999"),
           "--peer-port: 99999999999999999999 is out of range (0-65535)");
  load_err(NULL, ARGS("--http-port", "-2"), "--http-port: -2 is out of range (-1-65535)");
  load_err(NULL, ARGS("--shards", "0"), "--shards: 0 is out of range (1-4096)");
  load_err(NULL, ARGS("--shards", "4097"), "--shards: 4097 is out of range (1-4096)");
  load_err(ENV("MEMQUORUM_REPLICATION_FACTOR=8"), NULL,
           "MEMQUORUM_REPLICATION_FACTOR (from environment): 8 is out of range (1-7)");
  load_err(NULL, ARGS("--replication-factor", "0"),
           "--replication-factor: 0 is out of range (1-7)");
  load_err(NULL, ARGS("--bootstrap-expect", "0"),
           "--bootstrap-expect: 0 is out of range (1-10000)");
  load_err(NULL, ARGS("--kafka-max-poll-records", "0"),
           "--kafka-max-poll-records: 0 is out of range (1-1000000)");
  load_err(NULL, ARGS("--snapshot-entries", "1k"), "--snapshot-entries: \"1k\" is not an integer");
  const char *f = write_file("# comment\n\nmemquorum.shards.total=abc\n");
  snprintf(path_msg, sizeof path_msg,
           "memquorum.shards.total (from %s line 3): \"abc\" is not an integer", f);
  load_err(NULL, ARGS("--config", f), path_msg);

  /* booleans */
  load_err(NULL, ARGS("--kafka-enabled=maybe"),
           "--kafka-enabled: \"maybe\" is not a boolean (true/false, yes/no, on/off, 1/0)");
  load_err(ENV("MEMQUORUM_KAFKA_ENABLED=2"), NULL,
           "MEMQUORUM_KAFKA_ENABLED (from environment): \"2\" is not a boolean (true/false, "
           "yes/no, on/off, 1/0)");
  const char *yes[] = {"true", "TRUE", "1", "yes", "on", "On"};
  const char *no[] = {"false", "False", "0", "no", "off", "OFF"};
  for (int i = 0; i < 6; i++) {
    struct mq_config cfg;
    char e[64];
    snprintf(e, sizeof e, "MEMQUORUM_KAFKA_ENABLED=%s", yes[i]);
    load_ok(&cfg, ENV(e), NULL);
    CHECK(cfg.kafka_enabled);
    snprintf(e, sizeof e, "MEMQUORUM_KAFKA_ENABLED=%s", no[i]);
    load_ok(&cfg, ENV("MEMQUORUM_KAFKA_ENABLED=on", e), NULL); /* first match, like getenv */
    CHECK(cfg.kafka_enabled);
    load_ok(&cfg, ENV(e), NULL);
    CHECK(!cfg.kafka_enabled);
  }
  /* A boolean flag alone means true and takes a following boolean word. */
  struct mq_config cfg;
  load_ok(&cfg, NULL, ARGS("--kafka-enabled", "false"));
  CHECK(!cfg.kafka_enabled);
  load_ok(&cfg, NULL, ARGS("--kafka-enabled", "--port", "1"));
  CHECK(cfg.kafka_enabled);
  CHECK_EQ(cfg.port, 1);

  /* sizes */
  load_err(NULL, ARGS("--memory-budget", "12XB"),
           "--memory-budget: \"12XB\" is not a size (e.g. 4096, 512KiB, 1GiB)");
  load_err(NULL, ARGS("--memory-budget", "1.5GiB"),
           "--memory-budget: \"1.5GiB\" is not a size (e.g. 4096, 512KiB, 1GiB)");
  load_err(NULL, ARGS("--max-key-bytes", "2MiB"),
           "--max-key-bytes: 2MiB is out of range (1B-1MiB)");
  load_err(NULL, ARGS("--memory-budget", "1k"),
           "--memory-budget: 1k is out of range (1MiB or more)");
  load_err(NULL, ARGS("--retention-bytes", "99999999999999999999"),
           "--retention-bytes: 99999999999999999999 is out of range (1KiB or more)");
  load_err(NULL, ARGS("--retention-bytes", "17179869184TiB"),
           "--retention-bytes: 17179869184TiB is out of range (1KiB or more)");

  /* durations */
  load_err(NULL, ARGS("--retention-ms", "7x"),
           "--retention-ms: \"7x\" is not a duration (e.g. 500ms, 30s, 1h, 7d; plain numbers are "
           "ms)");
  load_err(NULL, ARGS("--heartbeat-ms", "0"), "--heartbeat-ms: 0 is out of range (1ms-1m)");
  load_err(ENV("MEMQUORUM_DNS_REFRESH=50ms"), NULL,
           "MEMQUORUM_DNS_REFRESH (from environment): 50ms is out of range (100ms-1h)");
  load_err(NULL, ARGS("--retention-ms", "3651d"),
           "--retention-ms: 3651d is out of range (1ms-3650d)");

  /* strings */
  char longid[200];
  memset(longid, 'a', sizeof longid - 1);
  longid[sizeof longid - 1] = '\0';
  load_err(NULL, ARGS("--node-id", longid), "--node-id: value is too long (at most 127 bytes)");
  load_err(NULL, ARGS("--node-id", "a b"),
           "--node-id: \"a b\" is not a node id (letters, digits, '.', '_', '-')");
  load_err(NULL, ARGS("--api-bind="), "--api-bind: must not be empty");
  load_err(ENV("MEMQUORUM_KAFKA_TOPIC="), NULL,
           "MEMQUORUM_KAFKA_TOPIC (from environment): must not be empty");

  /* enums */
  load_err(NULL, ARGS("--log-level", "loud"),
           "--log-level: \"loud\" is not a log level (debug, info, warn, error)");
  load_err(NULL, ARGS("--log-format", "xml"),
           "--log-format: \"xml\" is not a log format (text or json)");

  /* Kubernetes service links colliding with our names get a hint. */
  load_err_has(ENV("MEMQUORUM_PEER_PORT=tcp://10.0.0.7:7070"), NULL,
               "MEMQUORUM_PEER_PORT (from environment): \"tcp://10.0.0.7:7070\" is not an "
               "integer; it looks like a Kubernetes service link");
}

static void test_unknown_names(void) {
  load_err(NULL, ARGS("--prot", "1"), "unknown flag --prot (did you mean --port?)");
  load_err(NULL, ARGS("--frobnicate"), "unknown flag --frobnicate");
  load_err(NULL, ARGS("--replication_factor=3"),
           "unknown flag --replication_factor (did you mean --replication-factor?)");
  load_err(NULL, ARGS("foo"), "unexpected argument \"foo\" (flags look like --port 8080)");
  load_err(NULL, ARGS("-p", "1"), "unexpected argument \"-p\" (flags look like --port 8080)");
  load_err(NULL, ARGS("--port"), "--port: missing value");
  load_err(NULL, ARGS("--node-id", "--port", "1"), "--node-id: missing value");

  char want[300];
  const char *f = write_file("memquorum.node.port=1\nmemquorum.shard.total=3\n");
  snprintf(want, sizeof want,
           "unknown key memquorum.shard.total (from %s line 2) (did you mean "
           "memquorum.shards.total?)",
           f);
  load_err(NULL, ARGS("--config", f), want);
  f = write_file("kafka.bootstrap.servers=k:9092\n");
  snprintf(want, sizeof want,
           "unknown key kafka.bootstrap.servers (from %s line 1) (did you mean "
           "memquorum.kafka.bootstrap-servers?)",
           f);
  load_err(NULL, ARGS("--config", f), want);
  f = write_file("nacos.serveraddr=x\n");
  snprintf(want, sizeof want, "unknown key nacos.serveraddr (from %s line 1)", f);
  load_err_has(NULL, ARGS("--config", f), want);

  /* Keys outside our namespaces belong to someone else: ignored. */
  struct mq_config cfg;
  f = write_file("spring.application.name=app\nserver.port=80\nmemquorum.node.port=5\n");
  load_ok(&cfg, NULL, ARGS("--config", f));
  CHECK_EQ(cfg.port, 5);

  /* Unknown MEMQUORUM_* env vars only warn (Kubernetes adds some). */
  load_ok(&cfg,
          ENV("MEMQUORUM_SERVICE_HOST=10.0.0.1", "MEMQUORUM_PORT=tcp://10.0.0.1:8080",
              "MEMQUORUM_TYPO=1"),
          NULL);
  CHECK_EQ(cfg.port, 8080);

  /* The file named by --config or MEMQUORUM_CONFIG must exist. */
  struct mq_status st;
  CHECK_EQ(load(&cfg, &st, NULL, ARGS("--config", "/nonexistent/mq.properties")), MQ_ENOTFOUND);
  CHECK_STREQ(st.msg,
              "--config: cannot read /nonexistent/mq.properties: No such file or directory");
  CHECK_EQ(load(&cfg, &st, ENV("MEMQUORUM_CONFIG=/nonexistent/x"), NULL), MQ_ENOTFOUND);
  CHECK_STREQ(st.msg,
              "MEMQUORUM_CONFIG (from environment): cannot read /nonexistent/x: No such file or "
              "directory");
  CHECK_LT(load(&cfg, &st, NULL, ARGS("--config", tmpdir)), 0);
  CHECK_CONTAINS(st.msg, "--config: cannot read");
}

static void test_props_syntax(void) {
  struct mq_config cfg;
  const char *f = write_file("\xef\xbb\xbf# a comment\n"
                             "! another comment\n"
                             "   # indented comment \\\n"
                             "\n"
                             "   \t\n"
                             "memquorum.node.port : 1111\n"
                             "  memquorum.peer.port=2222   \n"
                             "memquorum.http.port 3333\n"
                             "memquorum.kafka.topic = my\\\n"
                             "        -topic\n"
                             "memquorum.kafka.bootstrap-servers=a:1,\\\n"
                             "   b:2\r\n"
                             "memquorum.node.id\t=\tn\\u0041\\-1\r\n"
                             "memquorum.feed.token=with\\ space\\ \n"
                             "memquorum.feed.allowed-origins=x=y:z # not a comment\n"
                             "memquorum.shards.total=8\n"
                             "memquorum.shards.total=9\n"
                             "memquorum.dns.name=\n"
                             "nacos.group=last-line-without-newline");
  load_ok(&cfg, NULL, ARGS("--config", f));
  CHECK_EQ(cfg.port, 1111);
  CHECK_EQ(cfg.peer_port, 2222);
  CHECK_EQ(cfg.http_port, 3333);
  CHECK_STREQ(cfg.kafka_topic, "my-topic");
  CHECK_STREQ(cfg.kafka_bootstrap, "a:1,b:2");
  CHECK_STREQ(cfg.node_id, "nA-1");
  CHECK_STREQ(cfg.feed_token, "with space ");
  CHECK_STREQ(cfg.feed_allowed_origins, "x=y:z # not a comment");
  CHECK_EQ(cfg.shards_total, 9); /* last wins */
  CHECK_STREQ(cfg.dns_name, "");
  CHECK_STREQ(cfg.nacos_group, "last-line-without-newline");

  /* The parser alone: escapes, separators, line numbers. */
  struct mq_props p = {0};
  struct mq_status st;
  const char *text = "a\\=b=c\\:d\n"
                     "e\\ f g\n"
                     "h:\\t\\n\\r\\f\\\\\n"
                     "u=\\u00e9\\uD83D\\uDE00\n"
                     "k\n"
                     "\n"
                     "cont=1\\\n"
                     "\\\n"
                     "  2\n"
                     "even=x\\\\\n"
                     "next=y\n"
                     "last=z\\";
  CHECK_EQ(mq_props_parse(&p, text, strlen(text), "t", &st), 0);
  CHECK_EQ(p.n, 9);
  CHECK_STREQ(p.items[0].key, "a=b");
  CHECK_STREQ(p.items[0].value, "c:d");
  CHECK_STREQ(p.items[1].key, "e f");
  CHECK_STREQ(p.items[1].value, "g");
  CHECK_STREQ(p.items[2].value, "\t\n\r\f\\");
  CHECK_STREQ(p.items[3].value, "\xc3\xa9\xf0\x9f\x98\x80");
  CHECK_STREQ(p.items[4].key, "k");
  CHECK_STREQ(p.items[4].value, "");
  CHECK_STREQ(p.items[5].key, "cont");
  CHECK_STREQ(p.items[5].value, "12");
  CHECK_EQ(p.items[5].line, 7);
  CHECK_STREQ(p.items[6].value, "x\\");
  CHECK_EQ(p.items[6].line, 10);
  CHECK_STREQ(mq_props_find(&p, "next")->value, "y");
  CHECK_EQ(mq_props_find(&p, "next")->line, 11);
  CHECK_STREQ(mq_props_find(&p, "last")->value, "z"); /* backslash at end of file */
  CHECK(mq_props_find(&p, "missing") == NULL);
  mq_props_free(&p);
  CHECK_EQ(p.n, 0);

  /* Old Mac line endings count as lines too. */
  text = "a=1\rb=2\r\rc=3";
  CHECK_EQ(mq_props_parse(&p, text, strlen(text), "t", &st), 0);
  CHECK_EQ(p.n, 3);
  CHECK_EQ(p.items[2].line, 4);
  mq_props_free(&p);

  const struct {
    const char *text, *msg;
  } bad[] = {
      {"a=1\nb=\\u12G4\n", "t line 2: malformed \\uXXXX escape"},
      {"a=\\u12", "t line 1: malformed \\uXXXX escape"},
      {"a=1\n\n=oops\n", "t line 3: empty key"},
      {"a=\\uD800x\n", "t line 1: unpaired UTF-16 surrogate \\uD800"},
      {"a=\\uDC00\n", "t line 1: unpaired UTF-16 surrogate \\uDC00"},
      {"a=\\u0000\n", "t line 1: \\u0000 is not allowed"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    CHECK_EQ(mq_props_parse(&p, bad[i].text, strlen(bad[i].text), "t", &st), MQ_EINVAL);
    CHECK_STREQ(st.msg, bad[i].msg);
    mq_props_free(&p);
  }
  CHECK_EQ(mq_props_parse(&p, "a=1\nb\0=2", 8, "t", &st), MQ_EINVAL);
  CHECK_STREQ(st.msg, "t line 2: NUL byte in file");
  mq_props_free(&p);

  /* Through the loader, a syntax error names the file and line. */
  f = write_file("memquorum.node.id=\\uZZZZ\n");
  char want[300];
  snprintf(want, sizeof want, "--config: %s line 1: malformed \\uXXXX escape", f);
  load_err(NULL, ARGS("--config", f), want);
}

static void test_peers(void) {
  struct mq_config cfg;
  load_ok(&cfg, NULL,
          ARGS("--peers", " n1=10.0.0.1:7070, n2=mq-1.mq.default.svc:7071 ,n3=[::1]:7072,"
                          "n4=[fe80::1]:1"));
  CHECK_EQ(cfg.n_peers, 4);
  CHECK_STREQ(cfg.peers[0].node_id, "n1");
  CHECK_STREQ(cfg.peers[0].host, "10.0.0.1");
  CHECK_EQ(cfg.peers[0].port, 7070);
  CHECK_STREQ(cfg.peers[1].host, "mq-1.mq.default.svc");
  CHECK_EQ(cfg.peers[1].port, 7071);
  CHECK_STREQ(cfg.peers[2].node_id, "n3");
  CHECK_STREQ(cfg.peers[2].host, "::1");
  CHECK_EQ(cfg.peers[2].port, 7072);
  CHECK_STREQ(cfg.peers[3].host, "fe80::1");
  CHECK(!cfg.rf_clamped); /* not a lone agent */
  CHECK_EQ(cfg.replication_factor, 3);

  load_ok(&cfg, ENV("MEMQUORUM_PEERS=  "), NULL);
  CHECK_EQ(cfg.n_peers, 0);

  const struct {
    const char *value, *msg;
  } bad[] = {
      {"n1", "--peers: element 1 \"n1\": expected id=host:port"},
      {"n1=h:1,n2=h", "--peers: element 2 \"n2=h\": missing :port"},
      {"n1=h:1,,n2=h:2", "--peers: element 2 is empty"},
      {"n1=h:1,", "--peers: element 2 is empty"},
      {"=h:1", "--peers: element 1 \"=h:1\": node id must be 1-127 characters"},
      {"n 1=h:1",
       "--peers: element 1 \"n 1=h:1\": node id \"n 1\" may only contain letters, digits, '.', "
       "'_' and '-'"},
      {"n1=:1", "--peers: element 1 \"n1=:1\": host must be 1-255 characters"},
      {"n1=h:0", "--peers: element 1 \"n1=h:0\": port \"0\" is not a port number (1-65535)"},
      {"n1=h:65536",
       "--peers: element 1 \"n1=h:65536\": port \"65536\" is not a port number (1-65535)"},
      {"n1=h:x", "--peers: element 1 \"n1=h:x\": port \"x\" is not a port number (1-65535)"},
      {"n1=h:", "--peers: element 1 \"n1=h:\": port \"\" is not a port number (1-65535)"},
      {"n1=::1:7070", "--peers: element 1 \"n1=::1:7070\": IPv6 addresses need brackets, e.g. "
                      "[::1]:7070"},
      {"n1=[::1:7070", "--peers: element 1 \"n1=[::1:7070\": missing ']' after IPv6 address"},
      {"n1=[::1]7070", "--peers: element 1 \"n1=[::1]7070\": expected :port after ']'"},
      {"n1=[nothost]:1", "--peers: element 1 \"n1=[nothost]:1\": \"nothost\" is not an IPv6 "
                         "address"},
      {"n1=h/x:1", "--peers: element 1 \"n1=h/x:1\": \"h/x\" is not a host name or IPv4 "
                   "address"},
      {"n1=a:1,n1=b:1", "--peers: element 2: node id \"n1\" is listed twice"},
      {"n1=a:1,n2=a:1", "--peers: element 2: address of \"n2\" is already used by \"n1\""},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    load_err(NULL, ARGS("--peers", bad[i].value), bad[i].msg);

  char many[8192] = "";
  size_t len = 0;
  for (int i = 0; i <= MQ_MAX_PEERS; i++)
    len += (size_t)snprintf(many + len, sizeof many - len, "%sn%d=h:%d", i ? "," : "", i, i + 1);
  load_err(NULL, ARGS("--peers", many), "--peers: more than 64 peers");
}

static void test_sizes_and_durations(void) {
  const struct {
    const char *s;
    uint64_t v;
  } sizes[] = {{"0", 0},
               {"1048576", 1048576},
               {"512MiB", 512ull << 20},
               {"1GiB", 1ull << 30},
               {"1g", 1ull << 30},
               {"1G", 1ull << 30},
               {"1gb", 1ull << 30},
               {"2Gi", 2ull << 30},
               {"4k", 4096},
               {"4 KiB", 4096},
               {"10b", 10},
               {"1TiB", 1ull << 40},
               {"16777215TiB", 16777215ull << 40}};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    uint64_t v = 1234;
    if (mq_config_parse_size(sizes[i].s, &v) != 0)
      CHECK_FAIL("size \"%s\" rejected", sizes[i].s);
    CHECK_UEQ(v, sizes[i].v);
  }
  const char *bad_sizes[] = {"", "k", "-1", "1.5g", "1 ", "1  k", "1kk", "1 x", "0x10", " 1"};
  for (size_t i = 0; i < sizeof bad_sizes / sizeof bad_sizes[0]; i++) {
    uint64_t v = 7;
    if (mq_config_parse_size(bad_sizes[i], &v) != MQ_EINVAL)
      CHECK_FAIL("size \"%s\" accepted", bad_sizes[i]);
    CHECK_UEQ(v, 7);
  }
  uint64_t u;
  CHECK_EQ(mq_config_parse_size("16777216TiB", &u), MQ_ERANGE);
  CHECK_EQ(mq_config_parse_size("18446744073709551616", &u), MQ_ERANGE);
  CHECK_EQ(mq_config_parse_size("18446744073709551615", &u), 0);
  CHECK_UEQ(u, UINT64_MAX);

  const struct {
    const char *s;
    int64_t ms;
  } durs[] = {{"0", 0},          {"30000", 30000},   {"500ms", 500},
              {"30s", 30000},    {"2m", 120000},     {"1h", 3600000},
              {"7d", 604800000}, {"1h30m", 5400000}, {"1m30s250ms", 90250},
              {"10S", 10000}};
  for (size_t i = 0; i < sizeof durs / sizeof durs[0]; i++) {
    int64_t v = -1;
    if (mq_config_parse_duration_ms(durs[i].s, &v) != 0)
      CHECK_FAIL("duration \"%s\" rejected", durs[i].s);
    CHECK_EQ(v, durs[i].ms);
  }
  const char *bad_durs[] = {"", "ms", "1x", "1 s", "1.5h", "-1s", "1h30", "h1", "1sm"};
  for (size_t i = 0; i < sizeof bad_durs / sizeof bad_durs[0]; i++) {
    int64_t v = -7;
    if (mq_config_parse_duration_ms(bad_durs[i], &v) != MQ_EINVAL)
      CHECK_FAIL("duration \"%s\" accepted", bad_durs[i]);
    CHECK_EQ(v, -7);
  }
  int64_t d;
  CHECK_EQ(mq_config_parse_duration_ms("106751991168d", &d), MQ_ERANGE);
  CHECK_EQ(mq_config_parse_duration_ms("9223372036854775808", &d), MQ_ERANGE);

  int64_t i64;
  CHECK_EQ(mq_config_parse_int("9223372036854775807", &i64), 0);
  CHECK_EQ(i64, INT64_MAX);
  CHECK_EQ(mq_config_parse_int("-9223372036854775808", &i64), 0);
  CHECK_EQ(mq_config_parse_int("9223372036854775808", &i64), MQ_ERANGE);
  CHECK_EQ(mq_config_parse_int("+5", &i64), 0);
  CHECK_EQ(i64, 5);
  CHECK_EQ(mq_config_parse_int("-", &i64), MQ_EINVAL);
  CHECK_EQ(mq_config_parse_int("5 ", &i64), MQ_EINVAL);

  char buf[32];
  mq_config_format_size(1ull << 30, buf, sizeof buf);
  CHECK_STREQ(buf, "1GiB");
  mq_config_format_size(1000, buf, sizeof buf);
  CHECK_STREQ(buf, "1000B");
  mq_config_format_size(0, buf, sizeof buf);
  CHECK_STREQ(buf, "0B");
  mq_config_format_duration_ms(604800000, buf, sizeof buf);
  CHECK_STREQ(buf, "7d");
  mq_config_format_duration_ms(1500, buf, sizeof buf);
  CHECK_STREQ(buf, "1500ms");
  mq_config_format_duration_ms(0, buf, sizeof buf);
  CHECK_STREQ(buf, "0ms");
}

static void test_cross_field(void) {
  struct mq_config cfg;
  load_err(NULL, ARGS("--http-port", "8080"), "--http-port: 8080 is also the API port (--port)");
  load_err(ENV("MEMQUORUM_PEER_PORT=9000"), ARGS("--http-port", "9000"),
           "--http-port: 9000 is also the peer port (--peer-port)");
  load_err(ENV("MEMQUORUM_NODE_PORT=7070"), NULL,
           "MEMQUORUM_NODE_PORT (from environment): 7070 is also the peer port (--peer-port)");
  load_ok(&cfg, NULL, ARGS("--port", "0", "--peer-port", "0", "--http-port", "0"));
  load_ok(&cfg, NULL, ARGS("--http-port", "-1"));
  CHECK_EQ(cfg.http_port, -1);

  /* Peer TLS: all three files or none; the files are read by the peer
   * transport, not here. */
  load_err(NULL, ARGS("--peer-tls-cert", "a.crt"),
           "peer TLS needs --peer-tls-cert, --peer-tls-key and --peer-tls-ca together: "
           "--peer-tls-key and --peer-tls-ca are missing");
  load_err(ENV("MEMQUORUM_PEER_TLS_CERT=a.crt", "MEMQUORUM_PEER_TLS_KEY=a.key"), NULL,
           "peer TLS needs --peer-tls-cert, --peer-tls-key and --peer-tls-ca together: "
           "--peer-tls-ca is missing");
  load_ok(&cfg, NULL,
          ARGS("--peer-tls-cert", "a.crt", "--peer-tls-key", "a.key", "--peer-tls-ca", "ca.crt"));
  CHECK_STREQ(cfg.peer_tls_ca, "ca.crt");

  load_err(
      NULL, ARGS("--heartbeat-ms", "1s"),
      "--heartbeat-ms: election timeout (1000 ms) must be larger than the heartbeat (1000 ms)");
  load_err(ENV("MEMQUORUM_RAFT_HEARTBEAT_MS=100"), ARGS("--election-timeout-ms", "50"),
           "--election-timeout-ms: election timeout (50 ms) must be larger than the heartbeat "
           "(100 ms)");
  load_ok(&cfg, NULL, ARGS("--heartbeat-ms", "300")); /* only a warning */
  load_err(NULL, ARGS("--max-value-bytes", "4MiB"),
           "--max-value-bytes: the largest key (4096) plus the largest value (4194304) exceed the "
           "request limit (4194304 bytes)");
  load_err(ENV("MEMQUORUM_LIMITS_MAX_VALUE_BYTES=3MiB"), ARGS("--max-request-bytes", "2MiB"),
           "--max-request-bytes: the largest key (4096) plus the largest value (3145728) exceed "
           "the request limit (2097152 bytes)");

  /* Bootstrap expectations must be reachable. */
  load_err(NULL, ARGS("--bootstrap-expect", "3"),
           "--bootstrap-expect: waiting for 3 agents, but no --peers, --nacos or --dns-name is "
           "configured to find them");
  load_ok(&cfg, NULL, ARGS("--bootstrap-expect", "3", "--peers", "a=h:1,b=h:2"));
  load_ok(&cfg, NULL,
          ARGS("--node-id", "a", "--bootstrap-expect", "3", "--peers", "a=h:1,b=h:2,c=h:3"));
  load_err(NULL, ARGS("--node-id", "a", "--bootstrap-expect", "3", "--peers", "a=h:1,b=h:2"),
           "--bootstrap-expect: waiting for 3 agents, but --peers and this agent make only 2");
  load_ok(&cfg, NULL, ARGS("--bootstrap-expect", "5", "--dns-name", "mq"));
  load_ok(&cfg, NULL, ARGS("--bootstrap-expect", "5", "--nacos", "n:8848"));

  /* The lone-agent rule and its limits. */
  load_ok(&cfg, NULL, ARGS("--replication-factor", "5"));
  CHECK_EQ(cfg.replication_factor, 1);
  CHECK_EQ(cfg.replication_factor_configured, 5);
  CHECK(cfg.rf_clamped);
  load_ok(&cfg, NULL, ARGS("--replication-factor", "1"));
  CHECK(!cfg.rf_clamped);
  load_ok(&cfg, NULL, ARGS("--peers", "b=h:2")); /* RF 3 > 2 agents: a warning */
  CHECK_EQ(cfg.replication_factor, 3);
  CHECK(!cfg.rf_clamped);
  load_ok(&cfg, ENV("NACOS_SERVER_ADDR=nacos:8848"), NULL);
  CHECK_EQ(cfg.replication_factor, 3);
  load_ok(&cfg, ENV("MEMQUORUM_DNS_NAME=mq-headless"), NULL);
  CHECK_EQ(cfg.replication_factor, 3);
  CHECK_EQ(cfg.replication_factor_configured, 3);
}

static void run_help(void *arg) {
  struct mq_config cfg;
  struct mq_status st;
  *(int *)arg = load(&cfg, &st, NULL, ARGS("--help"));
}
static void run_h_with_bad_flag(void *arg) {
  struct mq_config cfg;
  struct mq_status st;
  *(int *)arg = load(&cfg, &st, NULL, ARGS("--bogus", "-h"));
}
static void run_version(void *arg) {
  struct mq_config cfg;
  struct mq_status st;
  *(int *)arg = load(&cfg, &st, NULL, ARGS("--port", "1", "--version"));
}

static void test_help_and_version(void) {
  int rc = 0;
  char *out = capture(STDOUT_FILENO, run_help, &rc);
  CHECK_EQ(rc, 1);
  size_t n;
  const struct mq_config_setting *t = mq_config_settings(&n);
  const char *groups[] = {"\nNode:\n", "\nCluster:\n", "\nDiscovery:\n", "\nKafka:\n",
                          "\nRaft:\n", "\nLimits:\n",  "\nLogging:\n",   "\nFeed:\n"};
  for (size_t i = 0; i < 8; i++)
    CHECK_CONTAINS(out, groups[i]);
  for (size_t i = 0; i < n; i++) {
    char flag[80];
    snprintf(flag, sizeof flag, "  --%s ", t[i].flag);
    CHECK_CONTAINS(out, flag);
    CHECK_CONTAINS(out, t[i].help);
    if (t[i].env)
      CHECK_CONTAINS(out, t[i].env);
    if (t[i].prop)
      CHECK_CONTAINS(out, t[i].prop);
  }
  CHECK_CONTAINS(out, "(default: 8080)");
  CHECK_CONTAINS(out, "(default: <hostname>-<port>)");
  CHECK_CONTAINS(out, "(default: 7d)");
  CHECK_CONTAINS(out, "--version");

  rc = 0;
  out = capture(STDOUT_FILENO, run_h_with_bad_flag, &rc);
  CHECK_EQ(rc, 1);
  CHECK_CONTAINS(out, "Usage: memquorum");

  rc = 0;
  out = capture(STDOUT_FILENO, run_version, &rc);
  CHECK_EQ(rc, 1);
  CHECK_STREQ(out, "memquorum 0.1.0\n");
}

/* The table itself: names follow one scheme and every row is complete. */
static void test_table(void) {
  size_t n;
  const struct mq_config_setting *t = mq_config_settings(&n);
  CHECK_LE(n, MQ_CONFIG_MAX_SETTINGS);
  for (size_t i = 0; i < n; i++) {
    CHECK(t[i].flag && t[i].help && t[i].group && t[i].def);
    for (size_t j = 0; j < i; j++) {
      CHECK(strcmp(t[i].flag, t[j].flag) != 0);
      CHECK(!t[i].env || !t[j].env || strcmp(t[i].env, t[j].env) != 0);
      CHECK(!t[i].prop || !t[j].prop || strcmp(t[i].prop, t[j].prop) != 0);
    }
    if (!t[i].prop || !t[i].env)
      continue;
    CHECK(strncmp(t[i].prop, "memquorum.", 10) == 0 || strncmp(t[i].prop, "nacos.", 6) == 0);
    char derived[128];
    size_t k = 0;
    for (const char *p = t[i].prop; *p && k + 1 < sizeof derived; p++)
      derived[k++] = (*p == '.' || *p == '-') ? '_' : (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
    derived[k] = '\0';
    if (strcmp(t[i].env, "KAFKA_BOOTSTRAP_SERVERS") != 0 &&
        strcmp(t[i].env, "NACOS_SERVER_ADDR") != 0 && strcmp(derived, t[i].env) != 0)
      CHECK_FAIL("env %s does not follow property %s", t[i].env, t[i].prop);
  }
}

static void run_log(void *arg) { mq_config_log(arg); }

static void test_log_masks_secrets(void) {
  struct mq_config cfg;
  load_ok(&cfg, ENV("NACOS_PASSWORD=hunter2", "MEMQUORUM_FEED_TOKEN=s3cret"),
          ARGS("--peers", "a=[::1]:1,b=h:2", "--memory-budget", "2g"));
  char *out = capture(STDERR_FILENO, run_log, &cfg);
  CHECK(strstr(out, "hunter2") == NULL);
  CHECK(strstr(out, "s3cret") == NULL);
  CHECK_CONTAINS(out, "nacos.password = **** (env)");
  CHECK_CONTAINS(out, "memquorum.peers = a=[::1]:1,b=h:2 (flag)");
  CHECK_CONTAINS(out, "memquorum.limits.memory-budget = 2GiB (flag)");
  CHECK_CONTAINS(out, "memquorum.node.port = 8080 (default)");
  CHECK_CONTAINS(out, "memquorum.node.id = ");
  CHECK_CONTAINS(out, "(derived)");
}

int main(void) {
  snprintf(tmpdir, sizeof tmpdir, "/tmp/mq-test-config-XXXXXX");
  CHECK(mkdtemp(tmpdir) != NULL);
  mq_log_set_level(MQ_LOG_ERROR); /* keep warnings from the cases out of the output */

  test_defaults();
  test_env_is_hermetic();
  test_each_source();
  test_precedence();
  test_bad_values();
  test_unknown_names();
  test_props_syntax();
  test_peers();
  test_sizes_and_durations();
  test_cross_field();
  test_help_and_version();
  test_table();
  mq_log_set_level(MQ_LOG_INFO);
  test_log_masks_secrets();

  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
  CHECK_EQ(system(cmd), 0);
  printf("test_config: ok\n");
  return 0;
}
