#pragma once

#include <sys/types.h>

#include <vector>

// What kwqctl simulate and tools/bench's Kafka floor measure with: CPU over a
// window and percentiles of latencies.
namespace kwq::ctl {

// CPU seconds (user + system) this process has used so far.
double OwnCpuSeconds();

// CPU seconds (user + system) process `pid` has used so far, from
// /proc/PID/stat; -1 when it cannot be read (no such process).
double CpuSecondsOf(pid_t pid);

// The value at fraction `p` (0.5, 0.99, ...) of `v`; 0 when `v` is empty.
double Percentile(std::vector<double> v, double p);

}  // namespace kwq::ctl
