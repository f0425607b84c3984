#pragma once

#include "absl/synchronization/mutex.h"

namespace kwq {

// Debian's Abseil is built with its debug checks on: every absl::Mutex lock,
// gRPC's included, records lock order in a global graph for deadlock
// detection (measured with perf on `kwqctl simulate`: ~5% of the process's
// CPU). Binaries call this first thing in main; tests keep the checks.
inline void DisableMutexDeadlockDetection() {
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
}

}  // namespace kwq
