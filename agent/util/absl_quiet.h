/* Abseil's mutex deadlock detector, switched off.
 *
 * Debian builds Abseil without NDEBUG, so every absl::Mutex lock and unlock
 * inside the gRPC C core also records lock ids in a process-wide graph to
 * detect lock-order cycles: about 5% of an agent's CPU under load (perf:
 * GraphCycles::GetId and the detector's bookkeeping). Those are gRPC's locks,
 * not ours to debug, so every binary that drives gRPC calls this first,
 * before any thread exists. */
#ifndef MQ_UTIL_ABSL_QUIET_H
#define MQ_UTIL_ABSL_QUIET_H

#ifdef __cplusplus
extern "C" {
#endif

void mq_absl_quiet(void);

#ifdef __cplusplus
}
#endif

#endif
