/* mq-echo-server: flags and signals around the echo server of echo.h.
 *
 *   mq-echo-server [--port N] [--bind ADDR] [--threads N] [--slots N]
 *
 * Prints "listening on ADDR:PORT" on stdout once it accepts calls (with the
 * real port when --port 0 asked for a free one), runs until SIGINT or
 * SIGTERM, then shuts down cleanly and exits 0. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/grpc.h>

#include "echo.h"
#include "util/absl_quiet.h"

static void usage(FILE *f) {
  fputs("usage: mq-echo-server [--port N] [--bind ADDR] [--threads N] [--slots N]\n"
        "\n"
        "A bare gRPC server that answers every unary call of memquorum.v1.KV,\n"
        "memquorum.v1.PartitionService and /memquorum.bench.Echo/Echo with the\n"
        "request bytes unchanged. The baseline for mqbench --op echo.\n"
        "\n"
        "  --port N      port to listen on; 0 picks a free one (default 0)\n"
        "  --bind ADDR   address to listen on (default 127.0.0.1)\n"
        "  --threads N   completion-queue threads (default 2)\n"
        "  --slots N     calls requested ahead per method per thread (default 32)\n"
        "\n"
        "Prints \"listening on ADDR:PORT\" when ready; stops on SIGINT/SIGTERM.\n",
        f);
}

static int parse_int(const char *flag, const char *s, int lo, int hi, int *out) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || end == s || *end || v < lo || v > hi) {
    fprintf(stderr, "mq-echo-server: %s: expected an integer in [%d, %d], got '%s'\n", flag, lo, hi,
            s);
    return -1;
  }
  *out = (int)v;
  return 0;
}

int main(int argc, char **argv) {
  mq_absl_quiet();
  struct mq_echo_opts o = {.bind = "127.0.0.1", .port = 0, .threads = 2, .slots = 32};
  static const struct option longopts[] = {
      {"port", required_argument, NULL, 'p'},    {"bind", required_argument, NULL, 'b'},
      {"threads", required_argument, NULL, 't'}, {"slots", required_argument, NULL, 's'},
      {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
  };
  int c;
  while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
    switch (c) {
    case 'p':
      if (parse_int("--port", optarg, 0, 65535, &o.port)) return 2;
      break;
    case 'b':
      o.bind = optarg;
      break;
    case 't':
      if (parse_int("--threads", optarg, 1, 256, &o.threads)) return 2;
      break;
    case 's':
      if (parse_int("--slots", optarg, 1, 4096, &o.slots)) return 2;
      break;
    case 'h':
      usage(stdout);
      return 0;
    default:
      usage(stderr);
      return 2;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "mq-echo-server: unexpected argument '%s'\n", argv[optind]);
    return 2;
  }

  /* Block the stop signals before any thread exists (gRPC's included), so
   * only sigwait below receives them. */
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, NULL);

  grpc_init();
  struct mq_echo_server srv;
  if (mq_echo_start(&srv, &o) != 0) {
    grpc_shutdown();
    return 1;
  }
  printf("listening on %s:%d\n", o.bind, srv.port);
  fflush(stdout);

  int sig;
  while (sigwait(&stop, &sig) != 0) {
  }
  mq_echo_stop(&srv);
  grpc_shutdown();
  return 0;
}
