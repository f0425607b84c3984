#pragma once

#include <sys/types.h>

#include <map>
#include <string>
#include <vector>

// What kwqctl simulate and tools/bench's Kafka floor measure with: CPU over a
// window and percentiles of latencies.
namespace kwq::ctl {

// CPU seconds (user + system) this process has used so far.
double OwnCpuSeconds();

// CPU seconds (user + system) process `pid` has used so far, from
// /proc/PID/stat; -1 when it cannot be read (no such process).
double CpuSecondsOf(pid_t pid);

// CPU seconds the calling thread has used so far.
double ThreadCpuSeconds();

// CPU seconds (user + system) of this process's live threads so far, summed by
// thread group ("main" for the main thread; others by /proc/.../comm with a trailing
// number dropped, and gRPC's and librdkafka's many threads as "grpc" and
// "librdkafka". Threads that ended are not in it (the process total is).
std::map<std::string, double> ThreadGroupCpuSeconds();

// The value at fraction `p` (0.5, 0.99, ...) of `v`; 0 when `v` is empty.
double Percentile(std::vector<double> v, double p);

}  // namespace kwq::ctl
