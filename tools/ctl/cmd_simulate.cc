// kwqctl simulate: a simulated job on SDK workers in this process, with the job
// monitor.
#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "server/util/time_util.h"
#include "tools/ctl/commands.h"
#include "tools/ctl/measure.h"
#include "tools/ctl/monitor.h"
#include "tools/devgrid/dev_grid.h"
#include "worker_sdk/worker.h"

namespace kwq::ctl {

namespace {

struct SimFlags {
  long long tasks = 100000;
  long long workers = 8;
  long long slots = 16;
  long long prefetch = 0;       // per worker, beyond its slots
  long long payload_bytes = 0;  // of each task
  long long duration_ms = 0;
  long long jitter_ms = 0;
  double error_rate = 0;
  long long priorities = 10;
  long long affinity_keys = 0;
  long long batch = 1000;
  long long timeout_s = 600;
  long long partitions = 4;  // per topic of the dev grid it starts
  double rate =
      0;  // tasks/s offered, one per Submit; 0: batches as fast as possible
  long long cpu_of_pid = 0;  // also report this process's CPU in the window
  bool run_inline = false;   // WorkerOptions::run_inline
};

bool ParseSimFlags(const Args& a, SimFlags* f, std::string* e) {
  if (!a.GetInt("tasks", f->tasks, &f->tasks, e) ||
      !a.GetInt("workers", f->workers, &f->workers, e) ||
      !a.GetInt("slots", f->slots, &f->slots, e) ||
      !a.GetInt("prefetch", f->prefetch, &f->prefetch, e) ||
      !a.GetInt("payload_bytes", f->payload_bytes, &f->payload_bytes, e) ||
      !a.GetInt("duration_ms", f->duration_ms, &f->duration_ms, e) ||
      !a.GetInt("jitter_ms", f->jitter_ms, &f->jitter_ms, e) ||
      !a.GetDouble("error_rate", f->error_rate, &f->error_rate, e) ||
      !a.GetInt("priorities", f->priorities, &f->priorities, e) ||
      !a.GetInt("affinity_keys", f->affinity_keys, &f->affinity_keys, e) ||
      !a.GetInt("batch", f->batch, &f->batch, e) ||
      !a.GetInt("job_timeout_s", f->timeout_s, &f->timeout_s, e) ||
      !a.GetInt("partitions", f->partitions, &f->partitions, e) ||
      !a.GetInt("cpu_of_pid", f->cpu_of_pid, &f->cpu_of_pid, e) ||
      !a.GetDouble("rate", f->rate, &f->rate, e)) {
    return false;
  }
  f->run_inline = a.GetBool("inline");
  if (f->tasks < 1 || f->tasks > 100'000'000) {
    *e = "--tasks must be 1-100000000";
  } else if (f->partitions < 1 || f->partitions > 100) {
    *e = "--partitions must be 1-100";
  } else if (f->workers < 1 || f->workers > 1000 || f->slots < 1 ||
             f->slots > 1024) {
    *e = "--workers must be 1-1000 and --slots 1-1024";
  } else if (f->prefetch < 0 || f->prefetch > 4096) {
    *e = "--prefetch must be 0-4096";
  } else if (f->payload_bytes < 0 || f->payload_bytes > 1 << 20) {
    *e = "--payload-bytes must be 0-1048576";
  } else if (f->duration_ms < 0 || f->jitter_ms < 0) {
    *e = "--duration-ms and --jitter-ms must not be negative";
  } else if (f->error_rate < 0 || f->error_rate >= 1) {
    *e = "--error-rate must be in [0, 1)";
  } else if (f->priorities < 1 || f->priorities > 10) {
    *e = "--priorities must be 1-10";
  } else if (f->affinity_keys < 0 || f->affinity_keys > 10000) {
    *e = "--affinity-keys must be 0-10000";
  } else if (f->batch < 1 || f->batch > 10000) {
    *e = "--batch must be 1-10000";
  } else if (f->rate < 0) {
    *e = "--rate must not be negative (0: as fast as possible)";
  } else if (f->cpu_of_pid < 0) {
    *e = "--cpu-of-pid must be a process id";
  } else if (f->timeout_s < 1) {
    *e = "--job-timeout-s must be at least 1";
  } else {
    return true;
  }
  return false;
}

// Payload and result of the big warm-up tasks: past the broker's index interval
// (4 KiB) in one record.
constexpr size_t kWarmUpBytes = 8192;

// What the simulated workers saw, per task (by index): runs that completed, and
// the time from submit to the first start.
struct Observations {
  explicit Observations(size_t n) : completions(n), start_ms(n) {
    for (auto& v : start_ms) v.store(-1.0f, std::memory_order_relaxed);
  }
  std::vector<std::atomic<uint8_t>> completions;
  // Lock-free: 128 slots taking one mutex per no-op task measured the
  // harness, not kwq.
  std::vector<std::atomic<float>> start_ms;
  std::atomic<long long> starts{0}, affinity_hits{0};
  std::atomic<int> warm_ups{0};  // warm-up tasks run
};

// One Submit with a 60 s deadline.
grpc::Status SubmitTasks(kwq::v1::Scheduler::Stub* stub,
                         const kwq::v1::SubmitRequest& req,
                         const ClientSecurity& security) {
  kwq::v1::SubmitResponse resp;
  grpc::ClientContext ctx;
  security.Apply(&ctx);
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  return stub->Submit(&ctx, req, &resp);
}

}  // namespace

int RunSimulate(const Context& c) {
  std::string error;
  if (!c.args.CheckAllowed(
          {"tasks", "workers", "slots", "prefetch", "payload_bytes",
           "duration_ms", "jitter_ms", "error_rate", "priorities",
           "affinity_keys", "batch", "job_timeout_s", "bootstrap_servers",
           "kafka_config", "rate", "partitions", "cpu_of_pid", "console_listen",
           "inline"},
          &error)) {
    return Fail(kExitUsage, error);
  }
  SimFlags f;
  if (!ParseSimFlags(c.args, &f, &error)) return Fail(kExitUsage, error);

  // The grid: the caller's, or a dev grid in this process.
  std::unique_ptr<devgrid::DevGrid> grid;
  std::string sched_addr = c.scheduler, tracker_addr = c.tracker;
  const bool own_grid = !c.args.Has("scheduler");
  // The caller's grid is reached with the caller's TLS and token; a dev grid
  // started here is open.
  Context grid_ctx = c;
  if (own_grid) {
    grid_ctx.security = ClientSecurity();
    grid_ctx.credentials = nullptr;
  }
  const ClientSecurity& security = grid_ctx.security;
  if (own_grid) {
    devgrid::GridOptions o;
    o.bootstrap_servers = c.args.Get("bootstrap_servers");
    o.kafka_config = c.args.Get("kafka_config");
    o.topic_prefix = absl::StrCat("kwqsim-", getpid(), "-",
                                  absl::ToUnixSeconds(absl::Now()));
    o.scheduler.core.max_task_errors = 5;
    o.delete_topics_at_shutdown = true;  // its own throwaway prefix
    o.console_listen = c.args.Get("console_listen", "127.0.0.1:0");
    o.partitions = static_cast<int>(f.partitions);
    auto g = devgrid::DevGrid::Start(o);
    if (!g.ok()) return Fail(kExitFailure, std::string(g.status().message()));
    grid = std::move(*g);
    sched_addr = grid->scheduler().address();
    tracker_addr = grid->tracker().address();
    std::cerr << "dev grid: scheduler " << sched_addr << ", tracker "
              << tracker_addr << ", kafka "
              << (grid->embedded()
                      ? "embedded (in memory; nothing is kept on disk)"
                      : o.bootstrap_servers)
              << (grid->console_address().empty()
                      ? std::string()
                      : absl::StrCat(", console http://",
                                     grid->console_address(), "/"))
              << "\n";
  }
  std::cerr << "simulating " << Thousands(f.tasks) << " tasks on " << f.workers
            << " workers x " << f.slots << " slots"
            << (f.duration_ms > 0
                    ? absl::StrCat(", ", f.duration_ms, " ms each")
                    : ", no-op")
            << "\n";
  const std::string job =
      absl::StrCat("sim-", getpid(), "-", absl::ToUnixSeconds(absl::Now()));
  const std::string id_prefix = job + "-";
  auto obs = std::make_shared<Observations>(static_cast<size_t>(f.tasks));

  std::vector<std::unique_ptr<worker::Worker>> workers;
  std::vector<std::thread> runners;
  for (long long w = 0; w < f.workers; ++w) {
    worker::WorkerOptions wo;
    wo.scheduler_address = sched_addr;
    wo.security = security;
    wo.worker_id = absl::StrCat("sim-worker-", w);
    wo.slots = static_cast<int>(f.slots);
    wo.prefetch = static_cast<int>(f.prefetch);
    wo.run_inline = f.run_inline;
    std::set<std::string> keys;
    for (long long k = 0; k < f.affinity_keys; ++k) {
      if (k % f.workers == w % f.affinity_keys || k == w % f.affinity_keys) {
        keys.insert(absl::StrCat("key-", k));
      }
    }
    wo.affinity_keys.assign(keys.begin(), keys.end());
    auto rng =
        std::make_shared<std::mt19937_64>(static_cast<uint64_t>(w) * 7919 + 17);
    auto rng_mu = std::make_shared<std::mutex>();
    // The handler is the harness's, but it runs on kwq's threads (inline, on
    // the stream's): no allocation per task.
    const std::string warm_up_prefix = id_prefix + "warm-up";
    workers.push_back(std::make_unique<worker::Worker>(
        wo, [obs, rng, rng_mu, keys, f, id_prefix,
             warm_up_prefix](worker::TaskContext& ctx) {
          const absl::Time now = absl::Now();
          size_t index = 0;
          const std::string& id = ctx.task().id();
          if (id.rfind(warm_up_prefix, 0) == 0) {
            ++obs->warm_ups;
            // The big ones fill the results partition past its first index
            // entry too (see the warm-up below).
            return worker::Outcome::Success(id.find("-big-") !=
                                                    std::string::npos
                                                ? std::string(kWarmUpBytes, 'w')
                                                : std::string());
          }
          const bool ours =
              id.rfind(id_prefix, 0) == 0 &&
              absl::SimpleAtoi(absl::string_view(id).substr(id_prefix.size()),
                               &index) &&
              index < obs->completions.size();
          if (ours) {
            ++obs->starts;
            for (const auto& k : ctx.task().affinity_keys()) {
              if (keys.count(k)) {
                ++obs->affinity_hits;
                break;
              }
            }
            float unset = -1.0f;
            if (ctx.task().has_submit_time()) {
              obs->start_ms[index].compare_exchange_strong(
                  unset, static_cast<float>(absl::ToDoubleMilliseconds(
                             now - FromProto(ctx.task().submit_time()))));
            }
          }
          double u = 1.0;
          long long extra = 0;
          if (f.error_rate > 0 || f.jitter_ms > 0) {
            std::lock_guard<std::mutex> lock(*rng_mu);
            u = std::uniform_real_distribution<double>(0, 1)(*rng);
            extra = f.jitter_ms > 0
                        ? static_cast<long long>((*rng)() % (f.jitter_ms + 1))
                        : 0;
          }
          const long long ms = f.duration_ms + extra;
          if (ms > 0) absl::SleepFor(absl::Milliseconds(ms));
          if (u < f.error_rate)
            return worker::Outcome::Error("simulated error");
          if (ours) ++obs->completions[index];
          return worker::Outcome::Success();
        }));
    runners.emplace_back([wk = workers.back().get()] { wk->Run(); });
  }

  // Warm-up tasks (their own job, not counted) go through first: the clock
  // measures the grid, not its start-up (the scheduler's group join and the
  // first fetches of new topics took about a second), nor the first write into
  // each fresh partition's index: the broker writes a partition's first index
  // entry after its first 4 KiB, into a preallocated index file, and that first
  // touch cost 5-9 ms on this VM's disk (instrumented: ten tasks in a row at
  // 5-9 ms when the ten priority topics of a 20 tasks/s run reached 4 KiB at
  // the same moment; a long-lived grid pays it once per 64 MiB segment). So per
  // priority and partition: a task of 8 KiB (with an 8 KiB result), then a
  // small one, whose append writes the index entry. tools/bench's Kafka floor
  // warms its clients the same way.
  {
    auto stub = kwq::v1::Scheduler::NewStub(grid_ctx.Channel(sched_addr));
    const int per_priority = 2 * static_cast<int>(f.partitions);
    int total = 0;
    for (const bool big : {true, false}) {
      kwq::v1::SubmitRequest req;
      for (int p = 0; p < f.priorities; ++p) {
        for (int k = 0; k < per_priority; ++k, ++total) {
          auto* t = req.add_tasks();
          t->set_id(absl::StrCat(id_prefix, "warm-up-p", p,
                                 big ? "-big-" : "-small-", k));
          t->set_job_id(job + "-warm-up");
          t->set_priority(p);
          if (big) t->set_payload(std::string(kWarmUpBytes, 'w'));
        }
      }
      grpc::Status s = SubmitTasks(stub.get(), req, security);
      if (!s.ok()) {
        return Fail(kExitFailure, "warm-up submit failed: " +
                                      RpcError("scheduler", sched_addr, s));
      }
    }
    const absl::Time until = absl::Now() + absl::Seconds(60);
    while (obs->warm_ups.load() < total && absl::Now() < until) {
      absl::SleepFor(absl::Milliseconds(5));  // waiting on the workers' count
    }
    if (obs->warm_ups.load() < total) {
      return Fail(kExitFailure,
                  "the warm-up tasks did not run within 60 s: are the workers "
                  "connected to " +
                      sched_addr + "?");
    }
  }
  const absl::Time start = absl::Now();
  // CPU in the measured window (set-up and tear-down left out): this process
  // (scheduler, tracker and workers when it runs the grid) and, with
  // --cpu-of-pid, another one such as the Kafka broker.
  const double cpu_start = OwnCpuSeconds();
  const std::map<std::string, double> threads_start = ThreadGroupCpuSeconds();
  const double other_cpu_start =
      f.cpu_of_pid > 0 ? CpuSecondsOf(static_cast<pid_t>(f.cpu_of_pid)) : -1;
  std::atomic<bool> submit_failed{false};
  std::atomic<double> loadgen_cpu{0};
  std::string submit_error;
  const std::string payload(static_cast<size_t>(f.payload_bytes), 'x');
  std::thread submitter([&] {
    // Named apart: the load generator is the harness, not kwq (the JSON's
    // cpu_seconds_by_thread).
    pthread_setname_np(pthread_self(), "kwq-loadgen");
    struct CpuAtExit {  // it ends before the window does: it reports itself
      std::atomic<double>* out;
      ~CpuAtExit() { out->store(ThreadCpuSeconds()); }
    } cpu_at_exit{&loadgen_cpu};
    auto stub = kwq::v1::Scheduler::NewStub(grid_ctx.Channel(sched_addr));
    // With --rate: one task per Submit at a fixed offered rate (latency, not
    // throughput: the scheduler is idle between tasks).
    const long long batch = f.rate > 0 ? 1 : f.batch;
    absl::Time paced_start = absl::Now();
    for (long long done = 0; done < f.tasks;) {
      if (f.rate > 0 && done == 1) {
        // The warm-up task started: the grid is ready; pace from here.
        while (obs->starts.load() == 0 && !submit_failed) {
          absl::SleepFor(
              absl::Milliseconds(1));  // waiting on the workers' counter
        }
        paced_start = absl::Now() - absl::Seconds(1.0 / f.rate);
      }
      if (f.rate > 0 && done > 0) {
        const absl::Time due =
            paced_start + absl::Seconds(static_cast<double>(done) / f.rate);
        if (due > absl::Now()) absl::SleepFor(due - absl::Now());  // pacing
      }
      kwq::v1::SubmitRequest req;
      for (long long i = 0; i < batch && done < f.tasks; ++i, ++done) {
        auto* t = req.add_tasks();
        t->set_id(absl::StrCat(id_prefix, done));
        t->set_job_id(job);
        t->set_priority(static_cast<int>(done % f.priorities));
        if (f.payload_bytes > 0) t->set_payload(payload);
        (*t->mutable_tags())["group"] = absl::StrCat("g", done % 8);
        if (f.affinity_keys > 0) {
          // Independent of the priority (done % priorities): every priority has
          // tasks of every key.
          t->add_affinity_keys(
              absl::StrCat("key-", (done / f.priorities) % f.affinity_keys));
        }
      }
      grpc::Status s = SubmitTasks(stub.get(), req, security);
      if (!s.ok()) {
        submit_error = RpcError("scheduler", sched_addr, s);
        submit_failed = true;
        return;
      }
    }
  });

  // The monitor, from the tracker.
  auto tracker = kwq::v1::Tracker::NewStub(grid_ctx.Channel(tracker_addr));
  const bool tty = isatty(STDERR_FILENO);
  JobMonitor monitor(std::cerr, STDERR_FILENO);
  kwq::v1::JobSummary summary;
  const absl::Time deadline = start + absl::Seconds(f.timeout_s);
  absl::Time next_draw = absl::Now();
  bool finished = false;
  while (absl::Now() < deadline && !submit_failed) {
    grpc::ClientContext ctx;
    security.Apply(&ctx);
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(5));
    kwq::v1::GetJobSummaryRequest req;
    req.set_job_id(job);
    grpc::Status st = tracker->GetJobSummary(&ctx, req, &summary);
    finished = st.ok() && summary.counts().total() == f.tasks && summary.done();
    if (st.ok() && (finished || absl::Now() >= next_draw)) {
      monitor.Draw(summary, f.tasks);
      next_draw =
          absl::Now() + (tty ? absl::Milliseconds(200) : absl::Seconds(1));
    } else if (!st.ok() && st.error_code() != grpc::StatusCode::NOT_FOUND) {
      std::cerr << "kwqctl: " << RpcError("tracker", tracker_addr, st) << "\n";
    }
    if (finished) break;
    absl::SleepFor(absl::Milliseconds(50));
  }
  const double secs = absl::ToDoubleSeconds(absl::Now() - start);
  const double cpu_window = OwnCpuSeconds() - cpu_start;
  std::map<std::string, double> threads_window = ThreadGroupCpuSeconds();
  for (auto& [group, secs] : threads_window) {
    if (auto it = threads_start.find(group); it != threads_start.end()) {
      secs -= it->second;
    }
  }
  const double other_cpu_window =
      other_cpu_start >= 0
          ? CpuSecondsOf(static_cast<pid_t>(f.cpu_of_pid)) - other_cpu_start
          : -1;
  submitter.join();
  monitor.Done();
  for (auto& w : workers) w->Stop(absl::Seconds(2));
  for (auto& t : runners) t.join();
  long long inversions = -1;
  if (grid) {
    inversions = grid->scheduler().service().Metrics().priority_inversions;
    grid->Shutdown(absl::Seconds(1));
  }
  if (submit_failed)
    return Fail(kExitFailure, "submit failed: " + submit_error);

  long long completed = 0, duplicates = 0;
  for (auto& n : obs->completions) {
    const int v = n.load();
    if (v > 0) ++completed;
    if (v > 1) duplicates += v - 1;
  }
  std::vector<double> lat;
  {
    // With --rate the first second of tasks (at least one) is a warm-up and
    // left out of the latencies: the first task meets a consumer still joining
    // its group, and the broker is still settling the grid's new topics
    // (measured: the slowest 1% of an idle run were its first tasks).
    const size_t warm_up =
        f.rate > 0 ? std::max<size_t>(1, static_cast<size_t>(f.rate)) : 0;
    for (size_t i = warm_up; i < obs->start_ms.size(); ++i) {
      const float ms = obs->start_ms[i].load();
      if (ms >= 0) lat.push_back(ms);
    }
  }
  const auto& k = summary.counts();
  const double tps = static_cast<double>(k.completed() + k.failed()) / secs;
  const double hit_rate = obs->starts > 0
                              ? static_cast<double>(obs->affinity_hits) /
                                    static_cast<double>(obs->starts)
                              : 0.0;
  if (c.format == Format::kTable) {
    std::cout << absl::StrFormat(
        "submitted %lld  completed %lld  failed %lld  retries %lld  duplicates "
        "%lld\n"
        "%.1f s from the first submit to the last finish: %s tasks/s on "
        "average (the monitor's rate is of the last 10 s)\n"
        "submit-to-start p50 %.2f ms p99 %.2f ms: %s",
        f.tasks, completed, static_cast<long long>(k.failed()),
        static_cast<long long>(k.retries()), duplicates, secs, FormatRate(tps),
        Percentile(lat, 0.5), Percentile(lat, 0.99),
        f.rate > 0 ? "a task's wait from Submit to a worker starting it, "
                     "at an offered rate the grid keeps up with"
                   : "mostly time in the queue behind the backlog the "
                     "submitter built (not the idle latency: measure that "
                     "with --rate R)");
    if (f.affinity_keys > 0)
      std::cout << absl::StrFormat(", affinity hits %.1f%%", 100 * hit_rate);
    if (inversions >= 0) std::cout << ", priority inversions " << inversions;
    std::cout << "\ntracker: " << k.completed() << " completed, " << k.failed()
              << " failed\n";
  } else {
    std::string json = absl::StrFormat(
        "{\"submitted\":%lld,\"completed\":%lld,\"failed\":%lld,\"retries\":%"
        "lld,"
        "\"duplicates\":%lld,\"seconds\":%.3f,\"tasks_per_second\":%.1f,"
        "\"submit_to_start_p50_ms\":%.3f,\"submit_to_start_p99_ms\":%.3f,"
        "\"submit_to_start_p999_ms\":%.3f,"
        "\"tracker_completed\":%lld,\"workers\":%lld,\"slots\":%lld,\"kafka\":"
        "\"%s\"",
        f.tasks, completed, static_cast<long long>(k.failed()),
        static_cast<long long>(k.retries()), duplicates, secs, tps,
        Percentile(lat, 0.5), Percentile(lat, 0.99), Percentile(lat, 0.999),
        static_cast<long long>(k.completed()), f.workers, f.slots,
        !own_grid ? "external"
                  : (grid && grid->embedded() ? "embedded" : "broker"));
    if (f.affinity_keys > 0)
      absl::StrAppend(&json, ",\"affinity_hit_rate\":", hit_rate);
    if (inversions >= 0)
      absl::StrAppend(&json, ",\"priority_inversions\":", inversions);
    absl::StrAppend(&json, ",\"cpu_seconds\":", cpu_window);
    // By thread group, and the harness apart: this command's own threads (the
    // main thread polling the tracker, the load generator) are not kwq's.
    // Threads that ended in the window (the load generator) are not in
    // threads_window; the process total has them.
    threads_window["kwq-loadgen"] = loadgen_cpu.load();
    double live = 0;
    for (const auto& [group, secs] : threads_window) live += secs;
    threads_window["ended"] = std::max(0.0, cpu_window - live);
    double harness = 0;
    std::string by_thread;
    for (const auto& [group, secs] : threads_window) {
      absl::StrAppend(&by_thread, by_thread.empty() ? "" : ",", "\"", group,
                      "\":", absl::StrFormat("%.3f", secs));
      if (group == "main" || group == "kwq-loadgen") harness += secs;
    }
    absl::StrAppend(&json, ",\"cpu_seconds_by_thread\":{", by_thread, "}");
    absl::StrAppend(
        &json, ",\"harness_cpu_seconds\":", absl::StrFormat("%.3f", harness));
    if (other_cpu_window >= 0) {
      absl::StrAppend(&json, ",\"cpu_seconds_of_pid\":", other_cpu_window);
    }
    std::cout << json << "}\n";
  }
  if (!finished) {
    return Fail(kExitFailure,
                absl::StrCat("the job did not finish within ", f.timeout_s,
                             " s (--job-timeout-s)"));
  }
  return k.failed() > 0 || k.completed() != f.tasks ? kExitFailure : kExitOk;
}

}  // namespace kwq::ctl
