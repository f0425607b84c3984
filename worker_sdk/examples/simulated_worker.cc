// A worker that simulates compute: each task takes --duration_ms plus a uniform
// jitter and fails with probability --error_rate (retryable). Reports progress
// while it "computes".
//
//   bazel-bin/worker_sdk/examples/simulated_worker --scheduler=127.0.0.1:50051
//   --slots=16
#include <csignal>
#include <iostream>
#include <random>
#include <thread>

#include "absl/strings/str_split.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gflags/gflags.h"
#include "glog/logging.h"
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

namespace {
absl::Notification* g_stop = nullptr;
void OnSignal(int) {
  if (g_stop && !g_stop->HasBeenNotified()) g_stop->Notify();
}
}  // namespace

int main(int argc, char** argv) {
  gflags::SetUsageMessage(
      "simulated_worker --scheduler=HOST:PORT [--slots N ...]");
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  FLAGS_logtostderr = true;
  google::InitGoogleLogging(argv[0]);
  if (FLAGS_slots < 1 || FLAGS_prefetch < 0 || FLAGS_prefetch > 4096 ||
      FLAGS_duration_ms < 0 || FLAGS_jitter_ms < 0 || FLAGS_error_rate < 0 ||
      FLAGS_error_rate > 1) {
    std::cerr << "simulated_worker: need --slots>=1, --prefetch in [0,4096], "
                 "non-negative times, --error_rate in [0,1]\n";
    return 2;
  }
  kwq::worker::WorkerOptions options;
  options.scheduler_address = FLAGS_scheduler;
  options.worker_id = FLAGS_worker_id;
  options.slots = FLAGS_slots;
  options.prefetch = FLAGS_prefetch;
  if (!FLAGS_affinity.empty()) {
    options.affinity_keys =
        absl::StrSplit(FLAGS_affinity, ',', absl::SkipEmpty());
  }
  kwq::worker::Worker worker(options, [](kwq::worker::TaskContext& ctx) {
    thread_local std::mt19937_64 rng(std::random_device{}());
    const int ms =
        FLAGS_duration_ms +
        (FLAGS_jitter_ms > 0 ? static_cast<int>(rng() % (FLAGS_jitter_ms + 1))
                             : 0);
    const absl::Time start = absl::Now(), end = start + absl::Milliseconds(ms);
    while (absl::Now() < end) {
      if (ctx.cancelled()) return kwq::worker::Outcome::Error("cancelled");
      ctx.ReportProgress(absl::ToDoubleMilliseconds(absl::Now() - start) / ms);
      absl::SleepFor(
          std::min(absl::Milliseconds(20), end - absl::Now()));  // the "work"
    }
    if (std::uniform_real_distribution<double>(0, 1)(rng) < FLAGS_error_rate) {
      return kwq::worker::Outcome::Error("simulated error");
    }
    return kwq::worker::Outcome::Success("done");
  });
  absl::Notification stop;
  g_stop = &stop;
  std::signal(SIGTERM, OnSignal);
  std::signal(SIGINT, OnSignal);
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
