// The one C++ file: Abseil's switch is C++ API (util/absl_quiet.h).
#include "util/absl_quiet.h"

#include "absl/synchronization/mutex.h"

void mq_absl_quiet(void) { absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore); }
