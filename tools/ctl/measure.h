#pragma once

#include <sys/types.h>

namespace kwq::ctl {

// CPU seconds (user + system) this process has used so far.
double OwnCpuSeconds();

// CPU seconds (user + system) process `pid` has used so far, from
// /proc/PID/stat; -1 when it cannot be read (no such process).
double CpuSecondsOf(pid_t pid);

}  // namespace kwq::ctl
