/* mqctl helpers: global options inside commands, usage and call errors,
 * the lazily opened client, number parsing and value loading. */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "mqctl.h"
#include "util/err.h"

/* Largest reply mqctl accepts, so that wide scans and reads fit. */
#define MQCTL_MAX_RECV (64u << 20)
/* Largest value mqctl reads from a file or stdin. */
#define MQCTL_MAX_VALUE (64u << 20)

void mqctl_print_help(FILE *f, const struct mqctl_cmd *cmd) {
  fprintf(f, "usage: mqctl [global options] %s %s\n\n%s\n", cmd->name, cmd->synopsis, cmd->help);
  fputs("\nGlobal options: --endpoint HOST:PORT, --json, --timeout MS, -v (see mqctl --help)\n", f);
}

int mqctl_usage(const struct mqctl_cmd *cmd, const char *fmt, ...) {
  va_list ap;
  fputs("mqctl: ", stderr);
  if (cmd) fprintf(stderr, "%s: ", cmd->name);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  if (cmd)
    fprintf(stderr, "\nusage: mqctl %s %s\n", cmd->name, cmd->synopsis);
  else
    fputs("\n", stderr);
  return MQCTL_USAGE;
}

int mqctl_parse_i64(const struct mqctl_cmd *cmd, const char *flag, const char *s, int64_t lo,
                    int64_t hi, int64_t *out) {
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno || end == s || *end || v < lo || v > hi) {
    mqctl_usage(cmd, "%s: expected an integer in [%lld, %lld], got '%s'", flag, (long long)lo,
                (long long)hi, s);
    return -1;
  }
  *out = v;
  return 0;
}

int mqctl_global_opt(struct mqctl *m, const struct mqctl_cmd *cmd, int c, const char *arg,
                     int *exit_code) {
  int64_t v;
  switch (c) {
  case MQCTL_OPT_ENDPOINT:
    if (!*arg) {
      *exit_code = mqctl_usage(cmd, "--endpoint: empty");
      return -1;
    }
    m->endpoint = arg;
    return 1;
  case MQCTL_OPT_JSON:
    m->json = 1;
    return 1;
  case MQCTL_OPT_TLS_CA:
    m->tls_ca = arg;
    return 1;
  case MQCTL_OPT_TLS_CERT:
    m->tls_cert = arg;
    return 1;
  case MQCTL_OPT_TLS_KEY:
    m->tls_key = arg;
    return 1;
  case MQCTL_OPT_VERBOSE:
  case 'v':
    m->verbose = 1;
    return 1;
  case MQCTL_OPT_TIMEOUT:
    if (mqctl_parse_i64(cmd, "--timeout", arg, 1, 24 * 3600 * 1000, &v)) {
      *exit_code = MQCTL_USAGE;
      return -1;
    }
    m->timeout_ms = (int)v;
    m->timeout_set = 1;
    return 1;
  case MQCTL_OPT_HELP:
  case 'h':
    if (cmd) mqctl_print_help(stdout, cmd);
    *exit_code = MQCTL_OK;
    return -1;
  case '?': /* getopt already said what was wrong */
    *exit_code = cmd ? mqctl_usage(cmd, "see 'mqctl %s --help'", cmd->name) : MQCTL_USAGE;
    return -1;
  default:
    return 0;
  }
}

int mqctl_rpc_error(const char *what, const struct mq_rpc_status *st) {
  fprintf(stderr, "mqctl: %s: %s: %s\n", what, mq_codec_status_name(st->code),
          st->msg[0] ? st->msg : "(no message)");
  return MQCTL_FAIL;
}

struct mq_client *mqctl_client(struct mqctl *m) {
  if (m->client_open) return &m->client;
  struct mq_client_opts o = {.max_recv_bytes = MQCTL_MAX_RECV,
                             .user_agent = "mqctl/0.1",
                             .tls_ca = m->tls_ca,
                             .tls_cert = m->tls_cert,
                             .tls_key = m->tls_key};
  if ((m->tls_cert || m->tls_key) && !m->tls_ca) {
    fprintf(stderr, "mqctl: --tls-cert and --tls-key need --tls-ca\n");
    return NULL;
  }
  if (mq_client_open(&m->client, m->endpoint, &o) != 0) {
    if (m->client.err[0])
      fprintf(stderr, "mqctl: %s\n", m->client.err);
    else
      fprintf(stderr, "mqctl: cannot use endpoint '%s'\n", m->endpoint);
    return NULL;
  }
  m->client_open = 1;
  return &m->client;
}

int mqctl_stream_timeout(const struct mqctl *m) { return m->timeout_set ? m->timeout_ms : 0; }

/* Reads all of f into a malloc'ed buffer. */
static int read_all(FILE *f, const char *name, uint8_t **data, size_t *len) {
  size_t cap = 4096, n = 0;
  uint8_t *p = malloc(cap);
  if (!p) goto nomem;
  for (;;) {
    if (n == cap) {
      if (cap >= MQCTL_MAX_VALUE) {
        fprintf(stderr, "mqctl: %s: larger than %u bytes\n", name, MQCTL_MAX_VALUE);
        free(p);
        return -1;
      }
      uint8_t *q = realloc(p, cap * 2);
      if (!q) goto nomem;
      p = q;
      cap *= 2;
    }
    size_t k = fread(p + n, 1, cap - n, f);
    n += k;
    if (k == 0) break;
  }
  if (ferror(f)) {
    fprintf(stderr, "mqctl: %s: read error: %s\n", name, strerror(errno));
    free(p);
    return -1;
  }
  *data = p;
  *len = n;
  return 0;
nomem:
  free(p);
  fprintf(stderr, "mqctl: %s: out of memory\n", name);
  return -1;
}

int mqctl_load_value(const char *arg, uint8_t **data, size_t *len) {
  if (strcmp(arg, "-") == 0) return read_all(stdin, "stdin", data, len);
  if (arg[0] == '@' && arg[1] != '@') {
    FILE *f = fopen(arg + 1, "rb");
    if (!f) {
      fprintf(stderr, "mqctl: %s: %s\n", arg + 1, strerror(errno));
      return -1;
    }
    int rc = read_all(f, arg + 1, data, len);
    fclose(f);
    return rc;
  }
  if (arg[0] == '@') arg++; /* "@@x" is the literal "@x" */
  *len = strlen(arg);
  *data = malloc(*len + 1);
  if (!*data) {
    fprintf(stderr, "mqctl: out of memory\n");
    return -1;
  }
  memcpy(*data, arg, *len + 1);
  return 0;
}

int mqctl_parse_opts(struct mqctl *m, const struct mqctl_cmd *cmd, int argc, char **argv,
                     const struct option *longopts, mqctl_opt_fn own, void *ctx) {
  int c, code;
  while ((c = getopt_long(argc, argv, MQCTL_SHORT_OPTIONS, longopts, NULL)) != -1) {
    int r = mqctl_global_opt(m, cmd, c, optarg, &code);
    if (r < 0) return code;
    if (r > 0) continue;
    if (!own || own(ctx, cmd, c, optarg) != 0) return MQCTL_USAGE;
  }
  return -1;
}

int mqctl_check_args(const struct mqctl_cmd *cmd, int argc, char **argv, int want,
                     const char *names) {
  int n = argc - optind;
  if (n < want) return mqctl_usage(cmd, "missing %s", names);
  if (n > want) return mqctl_usage(cmd, "unexpected argument '%s'", argv[optind + want]);
  return -1;
}

int mqctl_unary(struct mqctl *m, const char *path, const ProtobufCMessage *req,
                const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp,
                const char *what) {
  struct mq_client *c = mqctl_client(m);
  if (!c) return MQCTL_FAIL;
  struct mq_rpc_status st;
  if (mq_client_unary(c, mq_client_method(c, path), req, resp_desc, resp, m->timeout_ms, &st) != 0)
    return mqctl_rpc_error(what, &st);
  return MQCTL_OK;
}
