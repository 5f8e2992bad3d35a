/* gRPC's log lines routed into ours (grpc/log.h). */
#include "grpc/log.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/ratelimit.h"

#include <grpc/support/log.h>

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/* gpr_log has one sink for the process, so its rate limit is one too. */
static pthread_mutex_t handshake_mu = PTHREAD_MUTEX_INITIALIZER;
static struct mq_ratelimit handshake_log;

static bool handshake_due(unsigned *held) {
  pthread_mutex_lock(&handshake_mu);
  bool due = mq_ratelimit_pass(&handshake_log, mq_clock_mono_ms(), MQ_GRPC_LOG_EVERY_MS, held);
  pthread_mutex_unlock(&handshake_mu);
  return due;
}

static void route(gpr_log_func_args *a) {
  unsigned held = 0;
  if (strstr(a->message, "Handshake failed")) {
    if (handshake_due(&held))
      mq_warn("grpc", "TLS %s (a peer or client with a certificate we do not trust, or none)%s",
              a->message, held ? " (repeated failures not logged)" : "");
    return;
  }
  enum mq_log_level level = a->severity == GPR_LOG_SEVERITY_ERROR  ? MQ_LOG_ERROR
                            : a->severity == GPR_LOG_SEVERITY_INFO ? MQ_LOG_INFO
                                                                   : MQ_LOG_DEBUG;
  mq_log(level, "grpc", "%s (%s:%d)", a->message, a->file, a->line);
}

void mq_grpc_log_route(void) { gpr_set_log_function(route); }
