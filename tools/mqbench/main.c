/* mqbench: closed-loop load generator for the MemQuorum gRPC API (and for
 * mq-echo-server, its baseline, and etcd v3, the system it is compared
 * with). Flags, phases (connect, preload, warmup, measure), progress
 * lines and the final report; the calls themselves run in runner.c, the
 * request bytes come from a driver (driver.h).
 *
 * Exit status: 0 when the run finished and at least one measured call
 * succeeded (failed calls are counted in the report, not in the status, so
 * a script comparing runs keeps going past a few transient errors); 1 when
 * the run could not start or no call succeeded; 2 for usage errors. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <grpc/grpc.h>

#include "client.h"
#include "codec.h"
#include "driver.h"
#include "json.h"
#include "runner.h"
#include "util/absl_quiet.h"
#include "util/err.h"

#define MAX_CONNS 64

struct bench_opts {
  const char *target;
  const char *endpoint;
  const char *op;
  const char *topic;
  const char *method;
  int inflight, threads, conns, timeout_ms;
  double duration_s, warmup_s;
  uint64_t count, keys, seed;
  size_t value_size;
  int preload, json, quiet, serializable;
  double rate; /* calls/s over all threads; 0: as fast as the slots go */
  uint64_t ttl_ms;
};

static void usage(FILE *f) {
  fputs("usage: mqbench [options]\n"
        "\n"
        "Closed-loop load generator: keeps --inflight calls outstanding and reports\n"
        "throughput and latency percentiles.\n"
        "\n"
        "  --target T            memquorum | etcd (default memquorum)\n"
        "  --endpoint HOST:PORT  server (default 127.0.0.1:8080, etcd: 127.0.0.1:2379)\n"
        "  --op OP               put | get | produce | echo (default put); etcd: put | get,\n"
        "                        etcdserverpb.KV Put and Range of the same keys and values\n"
        "                        echo: the PutRequest of 'put' sent to /memquorum.v1.KV/Put\n"
        "                        (or --method); any OK reply counts, it is not parsed.\n"
        "                        Use it against mq-echo-server.\n"
        "  --inflight N          calls kept in flight (default 1)\n"
        "  --threads N           completion-queue threads (default 1)\n"
        "  --conns N             TCP connections (default 1)\n"
        "  --duration S          measure for S seconds (default 10 unless --count)\n"
        "  --count N             measure N calls, then stop\n"
        "  --warmup S            run S seconds unmeasured first (default 0)\n"
        "  --rate R              start at most R calls per second in all (paced, still\n"
        "                        bounded by --inflight; default: as fast as replies come)\n"
        "  --value-size B        value bytes for put/produce/echo (default 100)\n"
        "  --keys K              key space user:<0..K-1>:bench (default 1000)\n"
        "  --topic T             topic for produce (default bench)\n"
        "  --method PATH         method path for echo (default /memquorum.v1.KV/Put)\n"
        "  --timeout MS          per-call deadline (default 5000)\n"
        "  --no-preload          get: do not put every key first\n"
        "  --serializable        etcd get: RangeRequest.serializable (default linearizable)\n"
        "  --ttl MS              memquorum put: each key expires MS ms after its write\n"
        "  --seed N              key choice and value bytes (default 1)\n"
        "  --json                print the report as one JSON object\n"
        "  --quiet               no progress lines\n"
        "\n"
        "Progress goes to stderr once a second; the report to stdout. Exit status 0\n"
        "when the run finished with at least one successful call (failures are in the\n"
        "report), 1 when it could not run or nothing succeeded, 2 for usage errors.\n",
        f);
}

static int parse_u64(const char *flag, const char *s, uint64_t lo, uint64_t hi, uint64_t *out) {
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || end == s || *end || *s == '-' || v < lo || v > hi) {
    fprintf(stderr, "mqbench: %s: expected an integer in [%llu, %llu], got '%s'\n", flag,
            (unsigned long long)lo, (unsigned long long)hi, s);
    return -1;
  }
  *out = v;
  return 0;
}

static int parse_int(const char *flag, const char *s, int lo, int hi, int *out) {
  uint64_t v;
  if (parse_u64(flag, s, (uint64_t)lo, (uint64_t)hi, &v)) return -1;
  *out = (int)v;
  return 0;
}

static int parse_secs(const char *flag, const char *s, double *out) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || *end || !(v >= 0) || v > 86400 * 7) {
    fprintf(stderr, "mqbench: %s: expected seconds, got '%s'\n", flag, s);
    return -1;
  }
  *out = v;
  return 0;
}

static int parse_args(int argc, char **argv, struct bench_opts *o) {
  enum {
    O_ENDPOINT = 256,
    O_OP,
    O_INFLIGHT,
    O_THREADS,
    O_CONNS,
    O_DURATION,
    O_COUNT,
    O_WARMUP,
    O_VSIZE,
    O_KEYS,
    O_TOPIC,
    O_METHOD,
    O_TIMEOUT,
    O_NOPRELOAD,
    O_SEED,
    O_JSON,
    O_QUIET,
    O_SERIALIZABLE,
    O_TARGET,
    O_RATE,
    O_TTL
  };
  static const struct option longopts[] = {
      {"target", required_argument, NULL, O_TARGET},
      {"endpoint", required_argument, NULL, O_ENDPOINT},
      {"op", required_argument, NULL, O_OP},
      {"inflight", required_argument, NULL, O_INFLIGHT},
      {"threads", required_argument, NULL, O_THREADS},
      {"conns", required_argument, NULL, O_CONNS},
      {"duration", required_argument, NULL, O_DURATION},
      {"count", required_argument, NULL, O_COUNT},
      {"warmup", required_argument, NULL, O_WARMUP},
      {"value-size", required_argument, NULL, O_VSIZE},
      {"keys", required_argument, NULL, O_KEYS},
      {"topic", required_argument, NULL, O_TOPIC},
      {"method", required_argument, NULL, O_METHOD},
      {"timeout", required_argument, NULL, O_TIMEOUT},
      {"no-preload", no_argument, NULL, O_NOPRELOAD},
      {"seed", required_argument, NULL, O_SEED},
      {"json", no_argument, NULL, O_JSON},
      {"quiet", no_argument, NULL, O_QUIET},
      {"serializable", no_argument, NULL, O_SERIALIZABLE},
      {"rate", required_argument, NULL, O_RATE},
      {"ttl", required_argument, NULL, O_TTL},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  int c, duration_set = 0;
  uint64_t v;
  while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
    switch (c) {
    case O_TARGET:
      o->target = optarg;
      break;
    case O_ENDPOINT:
      o->endpoint = optarg;
      break;
    case O_OP:
      o->op = optarg;
      break;
    case O_INFLIGHT:
      if (parse_int("--inflight", optarg, 1, 100000, &o->inflight)) return -1;
      break;
    case O_THREADS:
      if (parse_int("--threads", optarg, 1, 256, &o->threads)) return -1;
      break;
    case O_CONNS:
      if (parse_int("--conns", optarg, 1, MAX_CONNS, &o->conns)) return -1;
      break;
    case O_DURATION:
      if (parse_secs("--duration", optarg, &o->duration_s)) return -1;
      duration_set = 1;
      break;
    case O_COUNT:
      if (parse_u64("--count", optarg, 1, UINT64_MAX / 2, &o->count)) return -1;
      break;
    case O_WARMUP:
      if (parse_secs("--warmup", optarg, &o->warmup_s)) return -1;
      break;
    case O_RATE:
      if (parse_u64("--rate", optarg, 1, 10000000, &v)) return -1;
      o->rate = (double)v;
      break;
    case O_TTL:
      if (parse_u64("--ttl", optarg, 1, INT64_MAX / 2, &o->ttl_ms)) return -1;
      break;
    case O_VSIZE:
      if (parse_u64("--value-size", optarg, 0, 64u << 20, &v)) return -1;
      o->value_size = (size_t)v;
      break;
    case O_KEYS:
      if (parse_u64("--keys", optarg, 1, UINT64_MAX / 2, &o->keys)) return -1;
      break;
    case O_TOPIC:
      o->topic = optarg;
      break;
    case O_METHOD:
      o->method = optarg;
      break;
    case O_TIMEOUT:
      if (parse_int("--timeout", optarg, 1, 3600 * 1000, &o->timeout_ms)) return -1;
      break;
    case O_NOPRELOAD:
      o->preload = 0;
      break;
    case O_SEED:
      if (parse_u64("--seed", optarg, 0, UINT64_MAX, &o->seed)) return -1;
      break;
    case O_JSON:
      o->json = 1;
      break;
    case O_QUIET:
      o->quiet = 1;
      break;
    case O_SERIALIZABLE:
      o->serializable = 1;
      break;
    case 'h':
      usage(stdout);
      exit(0);
    default:
      usage(stderr);
      return -1;
    }
  }
  if (strcmp(o->target, "memquorum") != 0 && strcmp(o->target, "etcd") != 0) {
    fprintf(stderr, "mqbench: --target: expected memquorum or etcd, got '%s'\n", o->target);
    return -1;
  }
  if (o->ttl_ms && (strcmp(o->target, "memquorum") != 0 || strcmp(o->op, "put") != 0)) {
    fprintf(stderr, "mqbench: --ttl applies to --target memquorum --op put only\n");
    return -1;
  }
  if (o->serializable && strcmp(o->target, "etcd") != 0) {
    fprintf(stderr, "mqbench: --serializable applies to --target etcd only\n");
    return -1;
  }
  if (!o->endpoint)
    o->endpoint = strcmp(o->target, "etcd") == 0 ? "127.0.0.1:2379" : "127.0.0.1:8080";
  if (optind < argc) {
    fprintf(stderr, "mqbench: unexpected argument '%s' (see --help)\n", argv[optind]);
    return -1;
  }
  if (o->inflight < o->threads) {
    fprintf(stderr, "mqbench: --inflight (%d) must be at least --threads (%d)\n", o->inflight,
            o->threads);
    return -1;
  }
  if (!duration_set && o->count == 0) o->duration_s = 10;
  if (duration_set && o->duration_s == 0 && o->count == 0) {
    fprintf(stderr, "mqbench: --duration 0 needs --count\n");
    return -1;
  }
  return 0;
}

/* ------------------------------------------------------------------------ */

struct bench_ctx {
  struct bench_opts *o;
  struct mq_client clients[MAX_CONNS];
  grpc_channel *channels[MAX_CONNS];
  void *handles[MAX_CONNS];
  int sigfd;
};

/* Runs one phase to its end and fills *res. Returns 0, or an MQ_E* code
 * when it could not start. label names the phase in progress lines. */
static int run_phase(struct bench_ctx *x, const struct mq_bench_driver *drv, void *state,
                     const char *label, int sequential, uint64_t count, double warmup_s,
                     double duration_s, struct mq_bench_result *res) {
  struct bench_opts *o = x->o;
  const char *method = drv->method(state);
  for (int i = 0; i < o->conns; i++) x->handles[i] = mq_client_method(&x->clients[i], method);

  struct mq_bench_run_cfg cfg = {
      .channels = x->channels,
      .handles = x->handles,
      .nchannels = o->conns,
      .drv = drv,
      .drv_state = state,
      .threads = o->threads,
      .inflight = o->inflight,
      .timeout_ms = o->timeout_ms,
      .keys = o->keys,
      .sequential = sequential,
      .count = count,
      .warmup = warmup_s > 0,
      .seed = o->seed,
      .rate = sequential ? 0 : o->rate,
  };
  struct mq_bench_runner r;
  int rc = mq_bench_runner_start(&r, &cfg);
  if (rc) return rc;

  const uint64_t sec = 1000000000ull;
  uint64_t t0 = mq_mono_ns();
  uint64_t measure_at = t0 + (uint64_t)(warmup_s * 1e9);
  int measuring = warmup_s <= 0;
  uint64_t stop_at = duration_s > 0 ? measure_at + (uint64_t)(duration_s * 1e9) : UINT64_MAX;
  uint64_t next_tick = t0 + sec, last_ops = 0, last_tick = t0;
  int stopped = 0;

  for (;;) {
    uint64_t now = mq_mono_ns();
    if (!measuring && now >= measure_at) {
      mq_bench_runner_measure(&r);
      measuring = 1;
      last_tick = now;
      next_tick = now + sec;
    }
    if (!stopped && now >= stop_at) {
      mq_bench_runner_stop(&r);
      stopped = 1;
    }
    if (now >= next_tick) {
      uint64_t ops, errs;
      mq_bench_runner_progress(&r, &ops, &errs);
      if (!o->quiet) {
        if (measuring)
          fprintf(stderr, "mqbench: %s %5.0fs  %10.0f ops/s  total %llu  errors %llu\n", label,
                  (double)(now - measure_at) / 1e9,
                  (double)(ops - last_ops) * 1e9 / (double)(now - last_tick),
                  (unsigned long long)ops, (unsigned long long)errs);
        else
          fprintf(stderr, "mqbench: %s warmup, %.0fs left\n", label,
                  (double)(measure_at - now) / 1e9);
      }
      last_ops = ops;
      last_tick = now;
      next_tick = now + sec;
    }
    uint64_t wake = next_tick;
    if (!measuring && measure_at < wake) wake = measure_at;
    if (!stopped && stop_at < wake) wake = stop_at;
    int wait_ms = wake > now ? (int)((wake - now + 999999) / 1000000) : 0;

    struct pollfd pf[2] = {{.fd = r.done_fd, .events = POLLIN}, {.fd = x->sigfd, .events = POLLIN}};
    int n = poll(pf, 2, wait_ms);
    if (n < 0 && errno != EINTR) break;
    if (n > 0 && (pf[1].revents & POLLIN)) {
      struct signalfd_siginfo si;
      if (read(x->sigfd, &si, sizeof(si)) > 0 && !stopped) {
        fprintf(stderr, "mqbench: stopping on signal %u, finishing calls in flight\n",
                si.ssi_signo);
        mq_bench_runner_stop(&r);
        stopped = 1;
      }
    }
    if (n > 0 && (pf[0].revents & POLLIN)) break;
  }
  mq_bench_runner_finish(&r, res);
  return 0;
}

static double us(uint64_t ns) { return (double)ns / 1000.0; }

static void report(const struct bench_opts *o, const struct mq_bench_driver *drv,
                   const char *method, const struct mq_bench_result *r) {
  double secs = (double)(r->end_ns - r->start_ns) / 1e9;
  double rate = secs > 0 ? (double)r->ops / secs : 0;
  const struct mq_hist *h = &r->hist;
  if (o->json) {
    printf("{\"driver\":");
    mq_json_str(stdout, drv->name);
    printf(",\"op\":");
    mq_json_str(stdout, o->op);
    printf(",\"endpoint\":");
    mq_json_str(stdout, o->endpoint);
    printf(",\"method\":");
    mq_json_str(stdout, method);
    printf(",\"inflight\":%d,\"threads\":%d,\"conns\":%d,\"value_size\":%zu,\"keys\":%llu,"
           "\"warmup_s\":%g,\"duration_s\":%.3f,\"ops\":%llu,\"errors\":%llu,\"bad_replies\":%llu,"
           "\"serializable\":%s,\"ops_per_sec\":%.1f,",
           o->inflight, o->threads, o->conns, o->value_size, (unsigned long long)o->keys,
           o->warmup_s, secs, (unsigned long long)r->ops, (unsigned long long)r->errors,
           (unsigned long long)r->bad_replies, o->serializable ? "true" : "false", rate);
    printf("\"latency_us\":{\"p50\":%.1f,\"p90\":%.1f,\"p99\":%.1f,\"p999\":%.1f,\"mean\":%.1f,"
           "\"min\":%.1f,\"max\":%.1f},",
           us(mq_hist_quantile(h, 0.5)), us(mq_hist_quantile(h, 0.9)),
           us(mq_hist_quantile(h, 0.99)), us(mq_hist_quantile(h, 0.999)), mq_hist_mean(h) / 1000.0,
           h->count ? us(h->min) : 0.0, us(h->max));
    printf("\"errors_by_code\":{");
    const char *sep = "";
    for (int c = 0; c < MQ_CODEC_NSTATUS; c++) {
      if (!r->by_code[c]) continue;
      printf("%s\"%s\":%llu", sep, mq_codec_status_name(c), (unsigned long long)r->by_code[c]);
      sep = ",";
    }
    printf("},\"first_error\":");
    if (r->first_error[0])
      mq_json_str(stdout, r->first_error);
    else
      printf("null");
    printf("}\n");
    return;
  }
  printf("driver=%s op=%s endpoint=%s method=%s inflight=%d threads=%d conns=%d value=%zuB "
         "keys=%llu\n",
         drv->name, o->op, o->endpoint, method, o->inflight, o->threads, o->conns, o->value_size,
         (unsigned long long)o->keys);
  printf("ops=%llu errors=%llu time=%.2fs throughput=%.1f ops/s\n", (unsigned long long)r->ops,
         (unsigned long long)r->errors, secs, rate);
  printf("latency us: p50=%.1f p90=%.1f p99=%.1f p999=%.1f mean=%.1f min=%.1f max=%.1f\n",
         us(mq_hist_quantile(h, 0.5)), us(mq_hist_quantile(h, 0.9)), us(mq_hist_quantile(h, 0.99)),
         us(mq_hist_quantile(h, 0.999)), mq_hist_mean(h) / 1000.0, h->count ? us(h->min) : 0.0,
         us(h->max));
  if (r->errors) {
    printf("errors:");
    for (int c = 0; c < MQ_CODEC_NSTATUS; c++)
      if (r->by_code[c])
        printf(" %s=%llu", mq_codec_status_name(c), (unsigned long long)r->by_code[c]);
    if (r->bad_replies) printf(" bad_reply=%llu", (unsigned long long)r->bad_replies);
    printf("\nfirst error: %s\n", r->first_error);
  }
}

/* Puts every key once, so that reads of the key space find values. */
static int preload(struct bench_ctx *x, const struct mq_bench_driver *drv, const char *op,
                   const struct mq_bench_params *p) {
  struct bench_opts *o = x->o;
  char err[256];
  void *state;
  if (drv->open(&state, op, p, err, sizeof(err)) != 0) {
    fprintf(stderr, "mqbench: preload: %s\n", err);
    return -1;
  }
  if (!o->quiet)
    fprintf(stderr, "mqbench: preloading %llu keys with %s\n", (unsigned long long)o->keys, op);
  struct mq_bench_result res;
  int rc = run_phase(x, drv, state, "preload", 1, o->keys, 0, 0, &res);
  drv->close(state);
  if (rc) {
    fprintf(stderr, "mqbench: preload: %s\n", mq_strerror(rc));
    return -1;
  }
  if (res.errors || res.ops < o->keys) {
    fprintf(stderr, "mqbench: preload: %llu of %llu %s calls failed; first error: %s\n",
            (unsigned long long)(o->keys - (res.ops - res.errors)), (unsigned long long)o->keys, op,
            res.first_error[0] ? res.first_error : "(none recorded)");
    return -1;
  }
  return 0;
}

int main(int argc, char **argv) {
  mq_absl_quiet();
  struct bench_opts o = {
      .target = "memquorum",
      .op = "put",
      .topic = "bench",
      .inflight = 1,
      .threads = 1,
      .conns = 1,
      .timeout_ms = 5000,
      .keys = 1000,
      .seed = 1,
      .value_size = 100,
      .preload = 1,
  };
  if (parse_args(argc, argv, &o)) return 2;

  const struct mq_bench_driver *drv =
      strcmp(o.target, "etcd") == 0 ? &mq_bench_driver_etcd : &mq_bench_driver_memquorum;
  struct mq_bench_params params = {.value_size = o.value_size,
                                   .topic = o.topic,
                                   .method = o.method,
                                   .seed = o.seed,
                                   .serializable = o.serializable,
                                   .ttl_ms = o.ttl_ms};
  char err[256];
  void *state;
  if (drv->open(&state, o.op, &params, err, sizeof(err)) != 0) {
    fprintf(stderr, "mqbench: %s\n", err);
    return 2;
  }

  /* SIGINT/SIGTERM end the run early with a report; block them before gRPC
   * starts threads so only the signalfd sees them. */
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, NULL);
  static struct bench_ctx x; /* large (per-connection arrays); one per process */
  x.o = &o;
  x.sigfd = signalfd(-1, &sigs, SFD_CLOEXEC);
  if (x.sigfd < 0) {
    perror("mqbench: signalfd");
    return 1;
  }

  grpc_init();
  int status = 1, nopen = 0;
  struct mq_client_opts copts = {.own_connection = 1, .user_agent = "mqbench/0.1"};
  for (; nopen < o.conns; nopen++) {
    if (mq_client_open(&x.clients[nopen], o.endpoint, &copts) != 0) {
      fprintf(stderr, "mqbench: bad endpoint '%s'\n", o.endpoint);
      goto close_clients;
    }
    x.channels[nopen] = x.clients[nopen].channel;
  }
  for (int i = 0; i < o.conns; i++) {
    if (mq_client_wait_ready(&x.clients[i], 5000) != 0) {
      fprintf(stderr, "mqbench: cannot connect to %s within 5 s\n", o.endpoint);
      goto close_clients;
    }
  }

  const char *pre = drv->preload_op(state);
  if (pre && o.preload && preload(&x, drv, pre, &params) != 0) goto close_clients;

  struct mq_bench_result res;
  int rc = run_phase(&x, drv, state, o.op, 0, o.count, o.warmup_s, o.duration_s, &res);
  if (rc) {
    fprintf(stderr, "mqbench: cannot start: %s\n", mq_strerror(rc));
    goto close_clients;
  }
  report(&o, drv, drv->method(state), &res);
  fflush(stdout);
  status = res.ops > res.errors ? 0 : 1;

close_clients:
  for (int i = 0; i < nopen; i++) mq_client_close(&x.clients[i]);
  drv->close(state);
  grpc_shutdown();
  close(x.sigfd);
  return status;
}
