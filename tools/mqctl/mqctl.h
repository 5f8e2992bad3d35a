/* mqctl internals shared by its command files: the invocation context,
 * option helpers, value loading and output of the API's messages.
 *
 * Exit status convention: 0 success, 1 the request failed (message on
 * stderr as "mqctl: <command> <arg>: <STATUS>: <server message>"), 2 the
 * command line was wrong. */
#ifndef MQCTL_H
#define MQCTL_H

#include <getopt.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "client.h"
#include "memquorum/v1/memquorum.pb-c.h"

#define MQCTL_OK 0
#define MQCTL_FAIL 1
#define MQCTL_USAGE 2

#define MQCTL_DEFAULT_ENDPOINT "127.0.0.1:8080"
#define MQCTL_DEFAULT_TIMEOUT_MS 5000

struct mqctl {
  const char *endpoint;
  int json;
  int verbose;
  int timeout_ms;
  int timeout_set;                         /* --timeout given: streams get a deadline too */
  const char *tls_ca, *tls_cert, *tls_key; /* --tls-*: PEM files */
  struct mq_client client;
  int client_open;
};

struct mqctl_cmd {
  const char *name;
  int (*run)(struct mqctl *m, int argc, char **argv);
  const char *synopsis; /* arguments after the command name */
  const char *help;     /* what it does and its options */
};

/* Every command accepts the global options after its name as well. */
enum {
  MQCTL_OPT_ENDPOINT = 1000,
  MQCTL_OPT_JSON,
  MQCTL_OPT_TIMEOUT,
  MQCTL_OPT_VERBOSE,
  MQCTL_OPT_HELP,
  MQCTL_OPT_TLS_CA,
  MQCTL_OPT_TLS_CERT,
  MQCTL_OPT_TLS_KEY
};
#define MQCTL_GLOBAL_OPTIONS                                                                       \
  {"endpoint", required_argument, NULL, MQCTL_OPT_ENDPOINT},                                       \
      {"json", no_argument, NULL, MQCTL_OPT_JSON},                                                 \
      {"timeout", required_argument, NULL, MQCTL_OPT_TIMEOUT},                                     \
      {"verbose", no_argument, NULL, MQCTL_OPT_VERBOSE},                                           \
      {"tls-ca", required_argument, NULL, MQCTL_OPT_TLS_CA},                                       \
      {"tls-cert", required_argument, NULL, MQCTL_OPT_TLS_CERT},                                   \
      {"tls-key", required_argument, NULL, MQCTL_OPT_TLS_KEY}, {                                   \
    "help", no_argument, NULL, MQCTL_OPT_HELP                                                      \
  }
#define MQCTL_SHORT_OPTIONS "vh"

/* Handles a global option inside a command's getopt loop. Returns 1 when c
 * was one (done), 0 when it is the command's own, or -1 on a bad value or
 * when help was printed (*exit_code is then the exit status). */
int mqctl_global_opt(struct mqctl *m, const struct mqctl_cmd *cmd, int c, const char *arg,
                     int *exit_code);

/* A command's handler of its own options: 0 when handled, -1 on a bad
 * value (after a usage message) or an option it does not know. */
typedef int (*mqctl_opt_fn)(void *ctx, const struct mqctl_cmd *cmd, int c, const char *arg);

/* Runs getopt over a command's arguments (argv[0] is the command name):
 * global options are handled here, the rest by own(ctx, ...), which may be
 * NULL. Returns -1 to go on (positional arguments start at optind), or the
 * exit status to return now (usage error, or 0 after --help). */
int mqctl_parse_opts(struct mqctl *m, const struct mqctl_cmd *cmd, int argc, char **argv,
                     const struct option *longopts, mqctl_opt_fn own, void *ctx);

/* Requires exactly `want` positional arguments (described by names in the
 * error). Returns -1 when so, else a usage exit status. */
int mqctl_check_args(const struct mqctl_cmd *cmd, int argc, char **argv, int want,
                     const char *names);

/* Prints "mqctl: <fmt>" to stderr and returns MQCTL_USAGE, with a hint to
 * the command's help. */
int mqctl_usage(const struct mqctl_cmd *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void mqctl_print_help(FILE *f, const struct mqctl_cmd *cmd);

/* Reports a failed call: "mqctl: <what>: <CODE>: <message>"; returns
 * MQCTL_FAIL. */
int mqctl_rpc_error(const char *what, const struct mq_rpc_status *st);

/* The connected client, opened on first use. NULL on failure (reported). */
struct mq_client *mqctl_client(struct mqctl *m);
/* One unary call with the --timeout deadline. path must be a string
 * literal (it is registered on the channel). On failure reports
 * "mqctl: <what>: <CODE>: <message>" and returns MQCTL_FAIL; on success
 * *resp is the reply (free with protobuf_c_message_free_unpacked). */
int mqctl_unary(struct mqctl *m, const char *path, const ProtobufCMessage *req,
                const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp,
                const char *what);
/* The timeout for unary calls, and for streams (0: none unless set). */
int mqctl_stream_timeout(const struct mqctl *m);

/* Parses a decimal int64 in [lo, hi]; 0 or -1 (after a usage message). */
int mqctl_parse_i64(const struct mqctl_cmd *cmd, const char *flag, const char *s, int64_t lo,
                    int64_t hi, int64_t *out);

/* Loads a value argument: "-" reads stdin, "@path" reads the file, "@@x"
 * is the literal "@x", anything else is itself. *data is malloc'ed (free
 * it). Returns 0 or -1 after printing why. */
int mqctl_load_value(const char *arg, uint8_t **data, size_t *len);

/* ---- output (out.c) ---- */
/* A value for people: the bytes themselves when they are UTF-8 text,
 * otherwise "base64:" and their base64. */
void mqctl_print_value(FILE *f, const uint8_t *p, size_t n);
void mqctl_json_kv(FILE *f, const Memquorum__V1__KeyValue *kv);
void mqctl_json_entry(FILE *f, const Memquorum__V1__Entry *e);
/* Human form of a KeyValue, one "name: value" per line. */
void mqctl_print_kv_block(FILE *f, const Memquorum__V1__KeyValue *kv);
/* One line per event, human or JSON; flushed. */
void mqctl_print_event(const struct mqctl *m, const Memquorum__V1__WatchEvent *ev);

/* ---- commands ---- */
int mqctl_cmd_put(struct mqctl *m, int argc, char **argv);
int mqctl_cmd_get(struct mqctl *m, int argc, char **argv);
int mqctl_cmd_del(struct mqctl *m, int argc, char **argv);
int mqctl_cmd_scan(struct mqctl *m, int argc, char **argv);
int mqctl_cmd_produce(struct mqctl *m, int argc, char **argv);
int mqctl_cmd_read(struct mqctl *m, int argc, char **argv);
int mqctl_cmd_watch(struct mqctl *m, int argc, char **argv);
int mqctl_cmd_status(struct mqctl *m, int argc, char **argv);
int mqctl_cmd_health(struct mqctl *m, int argc, char **argv);
int mqctl_cmd_kafka(struct mqctl *m, int argc, char **argv);
int mqctl_cmd_recover(struct mqctl *m, int argc, char **argv);

/* The command table (main.c), for help lookups by the commands. */
const struct mqctl_cmd *mqctl_find_cmd(const char *name);

#endif
