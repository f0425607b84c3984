// kwq_simulate: a dev grid in one process (embedded Kafka or a real broker, a scheduler,
// W SDK workers) running a simulated job, with live progress and a summary.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "gflags/gflags.h"
#include "glog/logging.h"
#include "grpcpp/grpcpp.h"
#include "kwq/v1/scheduler.grpc.pb.h"
#include "tools/devgrid/dev_grid.h"
#include "worker_sdk/worker.h"

DEFINE_int64(tasks, 100000, "tasks in the simulated job");
DEFINE_int32(workers, 8, "SDK workers run in this process");
DEFINE_int32(slots, 16, "slots per worker");
DEFINE_int32(duration_ms, 0, "simulated compute time per task");
DEFINE_int32(jitter_ms, 0, "uniform extra compute time in [0, jitter_ms]");
DEFINE_double(error_rate, 0.0, "fraction of attempts that fail with a retryable error");
DEFINE_int32(priorities, 10, "spread tasks over priorities 0..N-1 (1-10)");
DEFINE_int32(batch, 1000, "tasks per Submit call");
DEFINE_string(bootstrap_servers, "",
              "a real Kafka broker; empty runs the embedded mock cluster (in memory)");
DEFINE_string(o, "table", "output: table (human summary) or json (last line is JSON)");
DEFINE_int32(timeout_s, 600, "give up when the job has not finished after this long");

namespace {

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())));
  return v[i];
}

}  // namespace

int main(int argc, char** argv) {
  gflags::SetUsageMessage(
      "kwq_simulate [--tasks N --workers W --slots S --duration_ms D ...]\n"
      "Runs a dev grid (embedded Kafka unless --bootstrap_servers) with a simulated job "
      "and shows its progress live.");
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  if (!getenv("GLOG_minloglevel")) FLAGS_minloglevel = 1;
  FLAGS_logtostderr = true;
  google::InitGoogleLogging(argv[0]);
  if (FLAGS_tasks < 1 || FLAGS_workers < 1 || FLAGS_slots < 1 || FLAGS_priorities < 1 ||
      FLAGS_priorities > 10 || FLAGS_error_rate < 0 || FLAGS_error_rate >= 1 ||
      FLAGS_batch < 1 || FLAGS_batch > 10000 || (FLAGS_o != "table" && FLAGS_o != "json")) {
    std::cerr << "kwq_simulate: need --tasks>=1 --workers>=1 --slots>=1 --priorities 1-10 "
                 "--error_rate in [0,1) --batch 1-10000 -o table|json (see --help)\n";
    return 2;
  }
  std::unique_ptr<kwq::KafkaCluster> cluster;
  if (FLAGS_bootstrap_servers.empty()) {
    auto c = kwq::KafkaCluster::StartEmbedded(1);
    if (!c.ok()) {
      std::cerr << "kwq_simulate: " << c.status() << "\n";
      return 1;
    }
    cluster = std::move(c).value();
    std::cerr << "dev grid: embedded Kafka at " << cluster->bootstrap_servers()
              << " (in memory; nothing is kept on disk)\n";
  } else {
    auto c = kwq::KafkaCluster::Connect(FLAGS_bootstrap_servers, absl::Seconds(15));
    if (!c.ok()) {
      std::cerr << "kwq_simulate: " << c.status().message() << "\n";
      return 1;
    }
    cluster = std::move(c).value();
  }
  const std::string prefix = absl::StrCat("kwqsim-", getpid(), "-", absl::ToUnixSeconds(absl::Now()));
  kwq::scheduler::ServiceOptions options;
  options.core.scheduler_id = prefix;
  options.core.topic_prefix = prefix;
  options.core.max_task_errors = 5;
  options.partitions = 4;
  auto sched = kwq::devgrid::InProcessScheduler::Start(cluster.get(), options);
  if (!sched.ok()) {
    std::cerr << "kwq_simulate: " << sched.status() << "\n";
    return 1;
  }
  auto events = kwq::devgrid::EventCounter::Start(*cluster, prefix + ".events");
  if (!events.ok()) {
    std::cerr << "kwq_simulate: " << events.status() << "\n";
    return 1;
  }
  std::cerr << "dev grid: scheduler at " << (*sched)->address() << ", " << FLAGS_workers
            << " workers x " << FLAGS_slots << " slots\n";

  std::vector<std::unique_ptr<kwq::worker::Worker>> workers;
  std::vector<std::thread> runners;
  for (int i = 0; i < FLAGS_workers; ++i) {
    kwq::worker::WorkerOptions wo;
    wo.scheduler_address = (*sched)->address();
    wo.worker_id = absl::StrCat("sim-", i);
    wo.slots = FLAGS_slots;
    auto rng = std::make_shared<std::mt19937_64>(static_cast<uint64_t>(i) * 7919 + 1);
    auto rng_mu = std::make_shared<std::mutex>();
    workers.push_back(std::make_unique<kwq::worker::Worker>(
        wo, [rng, rng_mu](kwq::worker::TaskContext& ctx) {
          double u;
          int extra;
          {
            std::lock_guard<std::mutex> lock(*rng_mu);
            u = std::uniform_real_distribution<double>(0, 1)(*rng);
            extra = FLAGS_jitter_ms > 0 ? static_cast<int>((*rng)() % (FLAGS_jitter_ms + 1)) : 0;
          }
          const int ms = FLAGS_duration_ms + extra;
          if (ms > 0) absl::SleepFor(absl::Milliseconds(ms));
          if (u < FLAGS_error_rate) return kwq::worker::Outcome::Error("simulated error");
          return kwq::worker::Outcome::Success();
        }));
    runners.emplace_back([w = workers.back().get()] { w->Run(); });
  }

  const absl::Time start = absl::Now();
  std::thread submitter([&] {
    auto stub = kwq::v1::Scheduler::NewStub(
        grpc::CreateChannel((*sched)->address(), grpc::InsecureChannelCredentials()));
    for (int64_t done = 0; done < FLAGS_tasks;) {
      kwq::v1::SubmitRequest req;
      for (int i = 0; i < FLAGS_batch && done < FLAGS_tasks; ++i, ++done) {
        auto* t = req.add_tasks();
        t->set_id(absl::StrCat("sim-", done));
        t->set_job_id("sim-job");
        t->set_priority(static_cast<int>(done % FLAGS_priorities));
        (*t->mutable_tags())["group"] = absl::StrCat("g", done % 8);
      }
      kwq::v1::SubmitResponse resp;
      grpc::ClientContext ctx;
      grpc::Status s = stub->Submit(&ctx, req, &resp);
      if (!s.ok()) {
        std::cerr << "\nsubmit failed: " << s.error_message() << "\n";
        return;
      }
    }
  });

  const bool tty = isatty(STDERR_FILENO);
  const absl::Time deadline = start + absl::Seconds(FLAGS_timeout_s);
  absl::Time next_line = absl::Now();
  auto finished = [&] {
    return (*events)->completed_tasks() + (*events)->failed_tasks() >= FLAGS_tasks;
  };
  while (!finished() && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(tty ? 200 : 50));
    if (!tty && absl::Now() < next_line) continue;
    next_line = absl::Now() + absl::Seconds(1);
    const int64_t c = (*events)->completed_tasks(), f = (*events)->failed_tasks();
    const double secs = absl::ToDoubleSeconds(absl::Now() - start);
    const double pct = 100.0 * static_cast<double>(c + f) / static_cast<double>(FLAGS_tasks);
    const int bar = static_cast<int>(pct / 5);
    std::string line = absl::StrFormat(
        "[%-20s] %5.1f%%  completed %lld  failed %lld  retries %lld  %.0f tasks/s",
        std::string(bar, '#'), pct, static_cast<long long>(c), static_cast<long long>(f),
        static_cast<long long>((*events)->retries()), static_cast<double>(c + f) / secs);
    std::cerr << (tty ? "\r" : "") << line << (tty ? "" : "\n") << std::flush;
  }
  const double secs = absl::ToDoubleSeconds(absl::Now() - start);
  if (tty) std::cerr << "\n";
  submitter.join();
  const bool ok = finished();
  const auto lat = (*events)->StartLatenciesMs();
  const auto metrics = (*sched)->service().Metrics();
  const int64_t completed = (*events)->completed_tasks();
  const int64_t failed = (*events)->failed_tasks();
  for (auto& w : workers) w->Stop(absl::Seconds(2));
  (*sched)->Shutdown(absl::Seconds(1));
  for (auto& t : runners) t.join();

  const double tps = static_cast<double>(completed + failed) / secs;
  if (FLAGS_o == "table") {
    std::cout << absl::StrFormat(
        "submitted %lld  completed %lld  failed %lld  retries %lld  duplicates %lld\n"
        "%.1f s, %.0f tasks/s, submit-to-start p50 %.2f ms p99 %.2f ms, priority "
        "inversions %lld\n",
        static_cast<long long>(FLAGS_tasks), static_cast<long long>(completed),
        static_cast<long long>(failed), static_cast<long long>((*events)->retries()),
        static_cast<long long>((*events)->duplicates()), secs, tps, Percentile(lat, 0.5),
        Percentile(lat, 0.99), static_cast<long long>(metrics.priority_inversions));
  } else {
    std::cout << absl::StrFormat(
        "{\"submitted\":%lld,\"completed\":%lld,\"failed\":%lld,\"retries\":%lld,"
        "\"duplicates\":%lld,\"seconds\":%.3f,\"tasks_per_second\":%.1f,"
        "\"submit_to_start_p50_ms\":%.3f,\"submit_to_start_p99_ms\":%.3f,"
        "\"priority_inversions\":%lld,\"workers\":%d,\"slots\":%d,\"kafka\":\"%s\"}\n",
        static_cast<long long>(FLAGS_tasks), static_cast<long long>(completed),
        static_cast<long long>(failed), static_cast<long long>((*events)->retries()),
        static_cast<long long>((*events)->duplicates()), secs, tps, Percentile(lat, 0.5),
        Percentile(lat, 0.99), static_cast<long long>(metrics.priority_inversions),
        FLAGS_workers, FLAGS_slots, FLAGS_bootstrap_servers.empty() ? "embedded" : "broker");
  }
  if (!ok) {
    std::cerr << "kwq_simulate: the job did not finish within " << FLAGS_timeout_s << " s\n";
    return 1;
  }
  return failed > 0 ? 1 : 0;
}
