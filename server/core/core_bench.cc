// The scheduler core alone, on one thread: N no-op tasks from their records to
// their durable completions, the way the event loop drives the core in a busy
// grid (8 workers x 16 slots prefetching 16, records in batches over 10
// priorities, 128-byte payloads, one tag, completions batched per worker,
// commits every 10 ms of a fake clock). No Kafka, gRPC or threads: what it
// measures is the core's own CPU per task, which the grid's benchmarks cannot
// separate from the VM's drift. Run under
//   valgrind --tool=cachegrind --cache-sim=no bazel-bin/server/core/core_bench
// for an exact instruction count per task (an A/B of a change to the core
// that does not depend on the machine's speed). Exits 1 unless every task was
// assigned once and completed once.
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gflags/gflags.h"
#include "glog/logging.h"
#include "server/core/scheduler_core.h"
#include "server/util/clock.h"
#include "server/util/mutex_mode.h"
#include "server/util/time_util.h"

DEFINE_int64(tasks, 200000, "tasks to run through the core");
DEFINE_int32(workers, 8, "simulated workers");
DEFINE_int32(slots, 16, "slots per worker (each also prefetches this many)");
DEFINE_int32(batch, 1000, "task records delivered per batch");

namespace kwq::scheduler {
namespace {

using kwq::v1::SchedulerMessage;
using kwq::v1::WorkerMessage;

int Run() {
  const int64_t tasks = FLAGS_tasks;
  const int workers = FLAGS_workers;
  const int slots = FLAGS_slots;
  const int batch = FLAGS_batch;
  if (tasks < 1 || workers < 1 || slots < 1 || batch < 1) {
    std::fprintf(stderr,
                 "core_bench: --tasks, --workers, --slots and --batch "
                 "must be at least 1\n");
    return 2;
  }
  FakeClock clock;
  SchedulerOptions options;
  options.scheduler_id = "bench";
  options.lease_key = "core-bench-lease-key";
  SchedulerCore core(options, &clock, 7);
  std::vector<std::string> topics;
  std::vector<SchedulerCore::AssignedPartition> assigned;
  for (int p = 0; p < 10; ++p) {
    topics.push_back(core.topics().ForPriority(p));
    assigned.push_back({topics.back(), 0, -1, ""});
  }
  core.OnPartitionsAssigned(assigned);
  for (int w = 1; w <= workers; ++w) {
    kwq::v1::Hello hello;
    hello.set_worker_id(absl::StrCat("worker-", w));
    hello.set_slots(slots);
    hello.set_prefetch(slots);
    hello.set_implicit_credits(true);
    hello.set_batches(true);
    hello.set_ack_batches(true);
    core.OnWorkerConnected(static_cast<ConnId>(w), hello);
  }

  const std::string payload(128, 'x');
  std::vector<int64_t> next_offset(10, 0);
  int64_t submitted = 0, assigned_n = 0, acked = 0;
  std::vector<WorkerMessage> completions(workers + 1);
  std::vector<uint64_t> cookies;
  const absl::Time wall_start = absl::Now();
  int idle_rounds = 0;
  int64_t round = 0;
  while (acked < tasks && idle_rounds < 3) {
    // Records arrive while the buffer is short, as the dispatcher's fetches.
    if (submitted < tasks && core.buffered() < static_cast<size_t>(batch)) {
      for (int i = 0; i < batch && submitted < tasks; ++i, ++submitted) {
        kwq::v1::Task t;
        t.set_id(absl::StrCat("core-bench-task-", submitted));
        t.set_job_id("core-bench-job");
        const int p = static_cast<int>(submitted % 10);
        t.set_priority(p);
        t.set_attempt(1);  // as Submit writes it
        t.set_payload(payload);
        (*t.mutable_tags())["group"] = absl::StrCat("g", submitted % 8);
        *t.mutable_submit_time() = ToProto(clock.Now());
        core.OnTaskRecord({topics[p], 0, next_offset[p]++},
                          t.SerializeAsString());
      }
    }
    Effects e = core.TakeEffects();
    bool progress = !e.empty();
    acked += static_cast<int64_t>(e.ok_acks.size());
    // Each worker completes what it was assigned, in one batch per round.
    for (auto& s : e.sends) {
      if (!s.msg.has_assignment()) {
        if (s.msg.has_ack()) acked += s.msg.ack().code() == 0;
        continue;
      }
      ++assigned_n;
      auto* m = completions[s.conn].mutable_batch()->add_messages();
      auto* u = m->mutable_update();
      *u->mutable_token() = s.msg.assignment().token();
      u->set_state(kwq::v1::COMPLETED);
    }
    for (auto& p : e.produces) {
      if (p.cookie != 0) cookies.push_back(p.cookie);
    }
    for (int w = 1; w <= workers; ++w) {
      if (completions[w].batch().messages_size() == 0) continue;
      core.OnWorkerMessage(static_cast<ConnId>(w), completions[w]);
      completions[w].Clear();
      progress = true;
    }
    // The broker acknowledges what was produced.
    std::vector<uint64_t> now;
    now.swap(cookies);
    for (uint64_t c : now) core.OnDurable(c, true);
    clock.Advance(absl::Milliseconds(1));
    if (++round % 10 == 0) core.OnTick();  // the loop's 10 ms tick
    idle_rounds = progress || !now.empty() ? 0 : idle_rounds + 1;
  }
  core.OnTick();
  const double secs = absl::ToDoubleSeconds(absl::Now() - wall_start);
  std::printf(
      "{\"tasks\":%lld,\"assigned\":%lld,\"acked\":%lld,\"seconds\":%.3f,"
      "\"us_per_task\":%.2f}\n",
      static_cast<long long>(tasks), static_cast<long long>(assigned_n),
      static_cast<long long>(acked), secs,
      1e6 * secs / static_cast<double>(tasks));
  if (assigned_n != tasks || acked != tasks) {
    std::fprintf(stderr,
                 "core_bench: %lld tasks, %lld assigned, %lld completions "
                 "acknowledged: the core lost or repeated work\n",
                 static_cast<long long>(tasks),
                 static_cast<long long>(assigned_n),
                 static_cast<long long>(acked));
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace kwq::scheduler

int main(int argc, char** argv) {
  gflags::SetUsageMessage(
      "Runs no-op tasks through the scheduler core alone (no Kafka, gRPC or "
      "threads) and prints its time per task; run it under valgrind's "
      "cachegrind for instructions per task (see core_bench.cc).");
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  google::InitGoogleLogging(argv[0]);
  kwq::DisableMutexDeadlockDetection();  // as the scheduler's main does
  return kwq::scheduler::Run();
}
