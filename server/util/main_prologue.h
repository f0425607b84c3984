#pragma once

#include "absl/synchronization/notification.h"

namespace kwq {

// kwq's version, printed by every binary's --version.
inline constexpr char kVersion[] = "0.4.0";

// What every kwq binary does first: its usage line, --version, a --help that
// lists the binary's own flags (glog's and gflags' only under --helpfull),
// flag parsing, logging to stderr, and Abseil's mutex mode (mutex_mode.h).
void InitBinary(const char* usage, int* argc, char*** argv);

// A notification that SIGTERM or SIGINT sets (once); for main's wait.
absl::Notification& StopOnSignals();

}  // namespace kwq
