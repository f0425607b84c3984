// A worker that simulates compute: each task takes --duration_ms plus a uniform
// jitter and fails with probability --error_rate (retryable). Reports progress
// while it "computes".
//
//   bazel-bin/worker_sdk/examples/simulated_worker --scheduler=127.0.0.1:50051
//   --slots=16
#include <csignal>
#include <cstdio>
#include <iostream>
#include <random>
#include <thread>

#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gflags/gflags.h"
#include "glog/logging.h"
#include "server/util/main_prologue.h"
#include "worker_sdk/worker.h"

DEFINE_string(scheduler, "127.0.0.1:50051", "kwq_scheduler address");
DEFINE_string(worker_id, "", "worker id (default: host-pid)");
DEFINE_int32(slots, 4, "tasks run at once");
DEFINE_int32(prefetch, 0,
             "tasks taken beyond --slots, queued here until a slot frees "
             "(0-4096; for many short tasks)");
DEFINE_int32(duration_ms, 100, "compute time per task");
DEFINE_int32(jitter_ms, 50, "uniform extra compute time in [0, jitter_ms]");
DEFINE_double(error_rate, 0.0, "probability that an attempt fails (retryable)");
DEFINE_string(affinity, "", "comma-separated affinity keys this worker holds");
DEFINE_int32(grace_ms, 10000, "on SIGTERM, how long running tasks may finish");
DEFINE_string(execution_log, "",
              "append one line per execution to this file: `start <unix_ms> "
              "<worker> <task> <attempt>` when a task starts and `end ...` "
              "with the outcome when it ends (what tools/chaos/run checks "
              "against Kafka and the tracker)");

namespace {

// The execution log: one line per start and end, flushed at once (a kill -9
// keeps every line written before it).
class ExecutionLog {
 public:
  explicit ExecutionLog(const std::string& path) {
    if (!path.empty()) file_ = std::fopen(path.c_str(), "a");
  }
  ~ExecutionLog() {
    if (file_ != nullptr) std::fclose(file_);
  }
  bool ok(const std::string& path) const {
    return path.empty() || file_ != nullptr;
  }
  void Line(const char* what, const std::string& worker,
            const kwq::v1::Task& task, const char* outcome = "") {
    if (file_ == nullptr) return;
    absl::MutexLock lock(&mu_);
    std::fprintf(file_, "%s %lld %s %s %d %s\n", what,
                 static_cast<long long>(absl::ToUnixMillis(absl::Now())),
                 worker.c_str(), task.id().c_str(), task.attempt(), outcome);
    std::fflush(file_);
  }

 private:
  absl::Mutex mu_;
  std::FILE* file_ = nullptr;
};
}  // namespace

int main(int argc, char** argv) {
  kwq::InitBinary(

      "simulated_worker --scheduler=HOST:PORT [--slots N ...]\n"
      "A secured scheduler: KWQ_TLS_CA, KWQ_TLS_CERT, KWQ_TLS_KEY, KWQ_TOKEN "
      "(environment) give the TLS files and the bearer token.",
      &argc, &argv);
  if (FLAGS_slots < 1 || FLAGS_prefetch < 0 || FLAGS_prefetch > 4096 ||
      FLAGS_duration_ms < 0 || FLAGS_jitter_ms < 0 || FLAGS_error_rate < 0 ||
      FLAGS_error_rate > 1) {
    std::cerr << "simulated_worker: need --slots>=1, --prefetch in [0,4096], "
                 "non-negative times, --error_rate in [0,1]\n";
    return 2;
  }
  kwq::worker::WorkerOptions options;
  options.scheduler_address = FLAGS_scheduler;
  // TLS files and the bearer token: KWQ_TLS_CA, KWQ_TLS_CERT, KWQ_TLS_KEY,
  // KWQ_TOKEN.
  options.security = kwq::ClientSecurity::FromEnv();
  options.worker_id = FLAGS_worker_id;
  options.slots = FLAGS_slots;
  options.prefetch = FLAGS_prefetch;
  if (!FLAGS_affinity.empty()) {
    options.affinity_keys =
        absl::StrSplit(FLAGS_affinity, ',', absl::SkipEmpty());
  }
  ExecutionLog log(FLAGS_execution_log);
  if (!log.ok(FLAGS_execution_log)) {
    std::cerr << "simulated_worker: cannot append to --execution_log="
              << FLAGS_execution_log << "\n";
    return 2;
  }
  const std::string me = options.worker_id;
  kwq::worker::Worker worker(options, [&log,
                                       &me](kwq::worker::TaskContext& ctx) {
    log.Line("start", me, ctx.task());
    auto outcome = [&](kwq::worker::Outcome o, const char* what) {
      log.Line("end", me, ctx.task(), what);
      return o;
    };
    thread_local std::mt19937_64 rng(std::random_device{}());
    const int ms =
        FLAGS_duration_ms +
        (FLAGS_jitter_ms > 0 ? static_cast<int>(rng() % (FLAGS_jitter_ms + 1))
                             : 0);
    const absl::Time start = absl::Now(), end = start + absl::Milliseconds(ms);
    while (absl::Now() < end) {
      if (ctx.cancelled()) {
        return outcome(kwq::worker::Outcome::Error("cancelled"), "cancelled");
      }
      ctx.ReportProgress(absl::ToDoubleMilliseconds(absl::Now() - start) / ms);
      absl::SleepFor(
          std::min(absl::Milliseconds(20), end - absl::Now()));  // the "work"
    }
    if (std::uniform_real_distribution<double>(0, 1)(rng) < FLAGS_error_rate) {
      return outcome(kwq::worker::Outcome::Error("simulated error"), "error");
    }
    return outcome(kwq::worker::Outcome::Success("done"), "ok");
  });
  absl::Notification& stop = kwq::StopOnSignals();
  std::thread run([&] { worker.Run(); });
  LOG(INFO) << "worker " << worker.worker_id() << " with " << FLAGS_slots
            << " slots on " << FLAGS_scheduler;
  stop.WaitForNotification();
  LOG(INFO) << "draining (up to " << FLAGS_grace_ms << " ms)";
  worker.Stop(absl::Milliseconds(FLAGS_grace_ms));
  run.join();
  LOG(INFO) << "stopped after " << worker.completed() << " completed, "
            << worker.failed() << " failed";
  return 0;
}
