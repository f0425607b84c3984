// Fault test on the real broker with a real scheduler process: SDK workers run
// tasks through a kwq_scheduler child process; the scheduler is killed with
// SIGKILL mid-run and started again on the same port; every submitted task
// still completes (at least once), counted from <prefix>.events. Needs
// KWQ_KAFKA_BOOTSTRAP (the embedded cluster dies with the process, so it has no
// embedded variant).
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "glog/logging.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "kwq/v1/scheduler.grpc.pb.h"
#include "server/core/offset_tracker.h"
#include "server/kafka/test_backends.h"
#include "tests/child_process.h"
#include "tests/delete_records.h"
#include "tests/metrics_scrape.h"
#include "tools/devgrid/committed_offsets.h"
#include "tools/devgrid/event_counter.h"
#include "worker_sdk/worker.h"

namespace kwq {
namespace {

std::unique_ptr<testing::ChildProcess> StartScheduler(
    const std::string& bootstrap, const std::string& prefix, int port,
    std::vector<std::string> extra_args = {}) {
  auto p = std::make_unique<testing::ChildProcess>();
  std::vector<std::string> args = {
      absl::StrCat("--listen=127.0.0.1:", port),
      absl::StrCat("--bootstrap_servers=", bootstrap),
      absl::StrCat("--topic_prefix=", prefix),
      "--partitions=2",
      "--lease_period_ms=3000",
      "--heartbeat_period_ms=500",
      "--retry_backoff_ms=10"};
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  p->Start("server/kwq_scheduler", args);
  return p;
}

// Submits n tasks "<id_prefix><i>" of `job` to the scheduler at `address`,
// task i at priority i % priorities and requiring `label` when given, in
// Submits of at most 500 tasks. Whether every Submit was accepted.
bool SubmitTasks(const std::string& address, const std::string& id_prefix,
                 int n, const std::string& job, int priorities = 1,
                 const std::string& label = "") {
  auto stub = kwq::v1::Scheduler::NewStub(
      grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  for (int from = 0; from < n; from += 500) {
    kwq::v1::SubmitRequest req;
    for (int i = from; i < std::min(n, from + 500); ++i) {
      auto* t = req.add_tasks();
      t->set_id(absl::StrCat(id_prefix, i));
      t->set_job_id(job);
      t->set_priority(i % priorities);
      if (!label.empty()) t->add_required_labels(label);
    }
    kwq::v1::SubmitResponse resp;
    grpc::ClientContext ctx;
    if (!stub->Submit(&ctx, req, &resp).ok()) return false;
  }
  return true;
}

TEST(SchedulerCrashTest, KillMinusNineMidRunLosesNoTask) {
  KWQ_OPEN_BACKEND_OR_SKIP(cluster, testing::KafkaBackend::kRealBroker);
  const std::string prefix = testing::UniqueName("kwqcrash");
  auto sched = StartScheduler(cluster->bootstrap_servers(), prefix, 0);
  ASSERT_FALSE(sched->address().empty()) << "the scheduler did not start";
  const int port = sched->port();
  auto events = devgrid::EventCounter::Start(*cluster, prefix + ".events");
  ASSERT_TRUE(events.ok()) << events.status();

  constexpr int kTasks = 3000;
  // The kill must come mid-run whatever the machine's speed: tasks past the
  // 2,500th to start wait for `release`, given after the kill (or when the
  // test ends early), so the run cannot finish before it.
  constexpr int kHoldAfter = 2500;
  std::atomic<int> started{0};
  absl::Notification release;
  absl::Cleanup release_on_exit = [&] {
    if (!release.HasBeenNotified()) release.Notify();
  };
  std::vector<std::unique_ptr<worker::Worker>> workers;
  std::vector<std::thread> runners;
  for (int i = 0; i < 2; ++i) {
    worker::WorkerOptions wo;
    wo.scheduler_address = sched->address();
    wo.worker_id = absl::StrCat("crash-w", i);
    wo.slots = 4;
    workers.push_back(
        std::make_unique<worker::Worker>(wo, [&](worker::TaskContext&) {
          if (started.fetch_add(1) >= kHoldAfter) {
            release.WaitForNotificationWithTimeout(absl::Seconds(120));
          }
          absl::SleepFor(absl::Milliseconds(5));  // simulated compute
          return worker::Outcome::Success();
        }));
    runners.emplace_back([w = workers.back().get()] { w->Run(); });
  }
  ASSERT_TRUE(SubmitTasks(sched->address(), "c", kTasks, "crash-job", 3));
  // Mid-run: some tasks done, not all ...
  ASSERT_TRUE((*events)->WaitFor(
      [](const devgrid::EventCounter& e) { return e.completed_tasks() >= 300; },
      absl::Seconds(60)));
  // ... and a good part of them committed (polled, not slept for): a restart
  // must not run those again.
  const std::vector<std::string> topics = {
      prefix + ".tasks.p0", prefix + ".tasks.p1", prefix + ".tasks.p2"};
  const std::string group = prefix + ".schedulers";
  int64_t committed = 0;
  const absl::Time commit_deadline = absl::Now() + absl::Seconds(60);
  while (committed < kTasks / 2 + 100 && absl::Now() < commit_deadline) {
    auto sum = devgrid::SumCommittedOffsets(*cluster, group, topics, 2);
    ASSERT_TRUE(sum.ok()) << sum.status();
    committed = *sum;
  }
  ASSERT_GE(committed, kTasks / 2 + 100)
      << "offsets were not committed within 60 s";
  sched->Kill(SIGKILL);
  EXPECT_TRUE(WIFSIGNALED(sched->exit_status()));
  const int64_t at_kill = (*events)->completed_tasks();
  EXPECT_LT(at_kill, kTasks)
      << "the run finished before the kill; nothing was tested";
  release.Notify();

  sched = StartScheduler(cluster->bootstrap_servers(), prefix, port);
  ASSERT_FALSE(sched->address().empty()) << "the scheduler did not restart";
  EXPECT_TRUE((*events)->WaitFor(
      [](const devgrid::EventCounter& e) {
        return e.completed_tasks() == kTasks;
      },
      absl::Seconds(120)))
      << "completed " << (*events)->completed_tasks() << " of " << kTasks;
  // At least once: re-runs are allowed (tasks running at the kill, and decided
  // ones above the committed prefix) and only reported; losses are not (checked
  // above: every one of the kTasks distinct ids has a COMPLETED event).
  LOG(INFO) << "completed before kill " << at_kill << " (" << committed
            << " committed), re-runs after restart " << (*events)->duplicates();
  // Tasks whose offsets were committed before the kill never run again. If the
  // restart ignored the commits, every task completed before the kill (at least
  // `committed` of them, more than half) would re-run and this bound would
  // break.
  EXPECT_LE((*events)->duplicates(), kTasks - committed);

  for (auto& w : workers) w->Stop(absl::Seconds(2));
  sched->Kill(SIGTERM);
  EXPECT_TRUE(WIFEXITED(sched->exit_status()) &&
              WEXITSTATUS(sched->exit_status()) == 0)
      << "SIGTERM should drain and exit 0, got status " << sched->exit_status();
  for (auto& t : runners) t.join();
}

// Issue 20: records the broker deleted (retention.ms; here DeleteRecords)
// before they were decided are lost. The scheduler says so, with the count in
// kwq_records_never_read_total and an error log, instead of skipping them
// silently; the records after them still run.
TEST(SchedulerCrashTest, RecordsDeletedBeforeTheyWereDecidedAreCounted) {
  KWQ_OPEN_BACKEND_OR_SKIP(cluster, testing::KafkaBackend::kRealBroker);
  const std::string prefix = testing::UniqueName("kwqretain");
  auto sched = StartScheduler(cluster->bootstrap_servers(), prefix, 0,
                              {"--partitions=1"});
  ASSERT_FALSE(sched->address().empty()) << "the scheduler did not start";
  auto events = devgrid::EventCounter::Start(*cluster, prefix + ".events");
  ASSERT_TRUE(events.ok()) << events.status();
  auto submit = [](const std::string& address, const std::string& id_prefix,
                   int n, const std::string& label) {
    return SubmitTasks(address, id_prefix, n, "retention-job", 1, label);
  };
  auto run_worker = [](const std::string& address, const std::string& label) {
    worker::WorkerOptions wo;
    wo.scheduler_address = address;
    wo.worker_id = absl::StrCat("retention-", label);
    wo.slots = 2;
    wo.labels = {label};
    return std::make_unique<worker::Worker>(
        wo, [](worker::TaskContext&) { return worker::Outcome::Success(); });
  };
  // 5 tasks run and are committed (offsets 0-4 of tasks.p0, its only
  // partition) ...
  auto first = run_worker(sched->address(), "now");
  std::thread run_first([&] { first->Run(); });
  ASSERT_TRUE(submit(sched->address(), "done-", 5, "now"));
  const std::string topic = prefix + ".tasks.p0";
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  int64_t committed = 0;
  while (committed < 5 && absl::Now() < deadline) {
    auto sum = devgrid::SumCommittedOffsets(*cluster, prefix + ".schedulers",
                                            {topic}, 1);
    ASSERT_TRUE(sum.ok()) << sum.status();
    committed = *sum;
  }
  ASSERT_EQ(committed, 5);
  // ... 10 wait for a worker labelled "later" (offsets 5-14); the scheduler
  // dies before they are decided, and the broker deletes offsets 0-10
  // meanwhile.
  ASSERT_TRUE(submit(sched->address(), "gone-", 10, "later"));
  sched->Kill(SIGKILL);
  first->Stop(absl::Seconds(1));
  run_first.join();
  ASSERT_EQ(
      testing::DeleteRecordsBefore(cluster->bootstrap_servers(), topic, 0, 11),
      "");

  sched = StartScheduler(cluster->bootstrap_servers(), prefix, 0,
                         {"--partitions=1", "--metrics_listen=127.0.0.1:0"});
  ASSERT_FALSE(sched->address().empty()) << "the scheduler did not restart";
  const testing::MetricsScrape metrics(sched->line());
  auto later = run_worker(sched->address(), "later");
  std::thread run_later([&] { later->Run(); });
  EXPECT_TRUE((*events)->WaitFor(
      [](const devgrid::EventCounter& e) { return e.completed_tasks() == 9; },
      absl::Seconds(60)))
      << (*events)->completed_tasks() << " completed, want 5 + gone-6..9";
  EXPECT_TRUE(
      metrics.WaitFor("kwq_records_never_read_total", 6, absl::Seconds(30)))
      << metrics.Sample("kwq_records_never_read_total");
  later->Stop(absl::Seconds(1));
  run_later.join();
  sched->Kill(SIGTERM);
}

// Two instances share the priority partitions through the consumer group;
// workers are connected to both. kill -9 of one: its partitions move to the
// other, whose workers finish every task (nothing lost; re-runs allowed).
TEST(SchedulerCrashTest, KillingOneOfTwoInstancesLosesNothing) {
  KWQ_OPEN_BACKEND_OR_SKIP(cluster, testing::KafkaBackend::kRealBroker);
  const std::string prefix = testing::UniqueName("kwqtwo");
  auto a = StartScheduler(cluster->bootstrap_servers(), prefix, 0);
  ASSERT_FALSE(a->address().empty()) << "instance a did not start";
  auto b = StartScheduler(cluster->bootstrap_servers(), prefix, 0);
  ASSERT_FALSE(b->address().empty()) << "instance b did not start";
  auto events = devgrid::EventCounter::Start(*cluster, prefix + ".events");
  ASSERT_TRUE(events.ok()) << events.status();

  std::vector<std::unique_ptr<worker::Worker>> workers;
  std::vector<std::thread> runners;
  std::atomic<int> ran_on_a{0}, ran_on_b{0};
  for (const auto* sched : {a.get(), b.get()}) {
    worker::WorkerOptions wo;
    wo.scheduler_address = sched->address();
    wo.worker_id = sched == a.get() ? "on-a" : "on-b";
    wo.slots = 4;
    wo.reconnect_max = absl::Milliseconds(500);
    std::atomic<int>* counter = sched == a.get() ? &ran_on_a : &ran_on_b;
    workers.push_back(
        std::make_unique<worker::Worker>(wo, [counter](worker::TaskContext&) {
          ++*counter;
          absl::SleepFor(absl::Milliseconds(3));  // simulated compute
          return worker::Outcome::Success();
        }));
    runners.emplace_back([w = workers.back().get()] { w->Run(); });
  }
  constexpr int kTasks = 3000;
  ASSERT_TRUE(SubmitTasks(b->address(), "two-", kTasks, "two-job", 2));
  // Both instances did work (the group split the partitions), then a dies.
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while ((ran_on_a < 50 || ran_on_b < 50) && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(10));  // polling the workers' counters
  }
  ASSERT_GE(ran_on_a.load(), 50) << "instance a got no partitions";
  ASSERT_GE(ran_on_b.load(), 50) << "instance b got no partitions";
  a->Kill(SIGKILL);
  EXPECT_TRUE((*events)->WaitFor(
      [](const devgrid::EventCounter& e) {
        return e.completed_tasks() == kTasks;
      },
      absl::Seconds(120)))
      << "completed " << (*events)->completed_tasks() << " of " << kTasks
      << "; " << (*events)->Unfinished().size() << " unfinished";
  LOG(INFO) << "ran on a " << ran_on_a << ", on b " << ran_on_b << ", re-runs "
            << (*events)->duplicates();
  for (auto& w : workers) w->Stop(absl::Seconds(1));
  for (auto& t : runners) t.join();
  b->Kill(SIGTERM);
}

// Issue 16, point 1: instance a runs 8 long tasks; b joins and the group
// rebalances (some of a's partitions stay with a, or go and come back); a is
// killed -9 right after. a must not have committed past its running tasks'
// records: b gets them and they run to completion (here on b's worker, as
// a's worker cannot reach b). Before the fix the records given back to a were
// decided at once, committed, and the tasks lost.
TEST(SchedulerCrashTest, AKillRightAfterARebalanceLosesNoRunningTask) {
  KWQ_OPEN_BACKEND_OR_SKIP(cluster, testing::KafkaBackend::kRealBroker);
  const std::string prefix = testing::UniqueName("kwqrebal");
  auto a = StartScheduler(cluster->bootstrap_servers(), prefix, 0);
  ASSERT_FALSE(a->address().empty()) << "instance a did not start";
  auto events = devgrid::EventCounter::Start(*cluster, prefix + ".events");
  ASSERT_TRUE(events.ok()) << events.status();

  std::atomic<int> long_running{0}, ran_on_b{0};
  absl::Notification release;
  worker::WorkerOptions wa;
  wa.scheduler_address = a->address();
  wa.worker_id = "only-on-a";
  wa.slots = 8;
  worker::Worker on_a(wa, [&](worker::TaskContext& ctx) {
    ++long_running;
    while (!release.HasBeenNotified() && !ctx.cancelled()) {
      absl::SleepFor(absl::Milliseconds(5));  // a long task, until released
    }
    return worker::Outcome::Success();
  });
  std::thread run_a([&] { on_a.Run(); });
  auto submit = [](const std::string& address, const std::string& id_prefix,
                   int n) {
    // 4 topics x 2 partitions
    return SubmitTasks(address, id_prefix, n, "rebalance-job", 4);
  };
  constexpr int kLong = 8;
  ASSERT_TRUE(submit(a->address(), "long-", kLong));
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (long_running < kLong && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(10));  // polling the handler's counter
  }
  ASSERT_EQ(long_running.load(), kLong);

  // b joins; its worker runs whatever b gets.
  auto b = StartScheduler(cluster->bootstrap_servers(), prefix, 0);
  ASSERT_FALSE(b->address().empty()) << "instance b did not start";
  worker::WorkerOptions wb;
  wb.scheduler_address = b->address();
  wb.worker_id = "on-b";
  wb.slots = 8;
  worker::Worker on_b(wb, [&](worker::TaskContext&) {
    ++ran_on_b;
    return worker::Outcome::Success();
  });
  std::thread run_b([&] { on_b.Run(); });
  // The rebalance is done once b runs tasks of its own partitions.
  constexpr int kProbes = 40;
  ASSERT_TRUE(submit(b->address(), "probe-", kProbes));
  while (ran_on_b == 0 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  ASSERT_GT(ran_on_b.load(), 0) << "b got no partitions";
  // A window for a's commits of the meantime (the bug committed the given-back
  // records within a 10 ms tick): not waiting for an event, but letting a
  // wrong commit land if a would make one. Then a dies.
  absl::SleepFor(absl::Milliseconds(500));
  a->Kill(SIGKILL);
  // Every task completes: b gets a's partitions after the session timeout,
  // from offsets that do not pass the long tasks' records.
  EXPECT_TRUE((*events)->WaitFor(
      [](const devgrid::EventCounter& e) {
        return e.completed_tasks() == kLong + kProbes;
      },
      absl::Seconds(90)))
      << (*events)->completed_tasks() << " of " << kLong + kProbes
      << " completed; unfinished: "
      << absl::StrJoin((*events)->Unfinished(), ",", absl::PairFormatter("="));
  release.Notify();
  on_a.Stop(absl::Seconds(1));
  on_b.Stop(absl::Seconds(1));
  run_a.join();
  run_b.join();
  b->Kill(SIGTERM);
}

// A long task holds the committed prefix of its partition back; the tasks
// finished above it ride in the commit metadata, so a restart after kill -9
// runs them again not.
// Reconnect adoption across instances: a worker runs long tasks from instance
// a's partitions; a is killed; the worker fails over to b (one gRPC target
// with both addresses), reports what it still runs, and b adopts those tasks
// when the group hands it a's partitions, instead of running them again.
TEST(SchedulerCrashTest, AWorkerOfAKilledInstanceKeepsItsTasksOnTheOther) {
  KWQ_OPEN_BACKEND_OR_SKIP(cluster, testing::KafkaBackend::kRealBroker);
  const std::string prefix = testing::UniqueName("kwqadopt");
  auto a = StartScheduler(cluster->bootstrap_servers(), prefix, 0);
  ASSERT_FALSE(a->address().empty()) << "instance a did not start";
  auto b = StartScheduler(cluster->bootstrap_servers(), prefix, 0,
                          {"--metrics_listen=127.0.0.1:0"});
  ASSERT_FALSE(b->address().empty()) << "instance b did not start";
  const testing::MetricsScrape b_metrics(b->line());
  ASSERT_NE(b_metrics.port(), 0) << b->line();
  auto events = devgrid::EventCounter::Start(*cluster, prefix + ".events");
  ASSERT_TRUE(events.ok()) << events.status();

  absl::Mutex mu;
  std::map<std::string, int> runs;  // by task id
  absl::Notification release;
  worker::WorkerOptions wo;
  // pick_first: a while it is up, then b.
  wo.scheduler_address = absl::StrCat("ipv4:", a->address(), ",", b->address());
  wo.worker_id = "fails-over";
  wo.slots = 16;
  wo.reconnect_min = absl::Milliseconds(50);
  wo.reconnect_max = absl::Milliseconds(500);
  worker::Worker w(wo, [&](worker::TaskContext& ctx) {
    {
      absl::MutexLock lock(&mu);
      ++runs[ctx.task().id()];
    }
    release.WaitForNotification();
    return worker::Outcome::Success();
  });
  std::thread runner([&] { w.Run(); });
  constexpr int kTasks = 8;
  // Spread over topics, so over both instances.
  ASSERT_TRUE(SubmitTasks(b->address(), "long-", kTasks, "adopt-job", 4));
  // The worker, connected to a, runs a's share (a holds one of the two
  // partitions); b's share waits for a worker on b.
  auto running = [&] {
    absl::MutexLock lock(&mu);
    return runs.size();
  };
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (running() == 0 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(10));  // polling the handler's map
  }
  ASSERT_GT(running(), 0u) << "no task ran on the worker connected to a";
  const size_t from_a = running();
  a->Kill(SIGKILL);
  // On b the worker gets b's share at once; a's records reach b after the
  // group notices a is gone (session timeout), and are adopted.
  while (running() < static_cast<size_t>(kTasks) &&
         absl::Now() < deadline + absl::Seconds(60)) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  ASSERT_EQ(running(), static_cast<size_t>(kTasks));
  // b ends up holding every task: a's share adopted (when a's records reach
  // b), its own dispatched. With 8 slots free, a task of a's share that b
  // dispatched again would run a second time (checked below).
  double adopted = -1, dispatched = -1;
  while (absl::Now() < deadline + absl::Seconds(120)) {
    const std::string text = b_metrics.Text();
    adopted = testing::MetricsScrape::Sample(text, "kwq_adopted_total");
    dispatched =
        testing::MetricsScrape::Sample(text, "kwq_tasks_dispatched_total");
    if (adopted + dispatched >= kTasks) break;
    absl::SleepFor(absl::Milliseconds(20));  // polling another process
  }
  EXPECT_EQ(adopted + dispatched, kTasks);
  EXPECT_GE(adopted, static_cast<double>(from_a));
  release.Notify();
  EXPECT_TRUE((*events)->WaitFor(
      [](const devgrid::EventCounter& e) {
        return e.completed_tasks() == kTasks;
      },
      absl::Seconds(60)))
      << (*events)->completed_tasks() << " of " << kTasks << " completed";
  {
    absl::MutexLock lock(&mu);
    for (const auto& [id, n] : runs) EXPECT_EQ(n, 1) << id << " ran again";
  }
  EXPECT_EQ((*events)->duplicates(), 0);
  LOG(INFO) << from_a << " of " << kTasks << " tasks ran on a's worker first; "
            << "b adopted " << adopted << " and dispatched " << dispatched;
  w.Stop(absl::Seconds(2));
  runner.join();
  b->Kill(SIGTERM);
}

TEST(SchedulerCrashTest, FinishedTasksAboveALongOneDoNotRunAgainAfterARestart) {
  KWQ_OPEN_BACKEND_OR_SKIP(cluster, testing::KafkaBackend::kRealBroker);
  const std::string prefix = testing::UniqueName("kwqlong");
  auto start = [&](int port) {
    auto p = std::make_unique<testing::ChildProcess>();
    p->Start(
        "server/kwq_scheduler",
        {absl::StrCat("--listen=127.0.0.1:", port),
         absl::StrCat("--bootstrap_servers=", cluster->bootstrap_servers()),
         absl::StrCat("--topic_prefix=", prefix), "--partitions=1",
         "--lease_period_ms=3000", "--heartbeat_period_ms=500"});
    return p;
  };
  auto sched = start(0);
  ASSERT_FALSE(sched->address().empty());
  const int port = sched->port();
  auto events = devgrid::EventCounter::Start(*cluster, prefix + ".events");
  ASSERT_TRUE(events.ok());
  std::atomic<bool> release{false};
  worker::WorkerOptions wo;
  wo.scheduler_address = sched->address();
  wo.slots = 4;
  wo.reconnect_min = absl::Milliseconds(50);
  worker::Worker worker(wo, [&](worker::TaskContext& ctx) {
    if (ctx.task().payload() == "blocker") {
      while (!release && !ctx.cancelled())
        absl::SleepFor(absl::Milliseconds(5));
      if (!release) return worker::Outcome::Error("cancelled");
    }
    return worker::Outcome::Success();
  });
  std::thread runner([&] { worker.Run(); });
  constexpr int kQuick = 400;
  {
    auto stub = kwq::v1::Scheduler::NewStub(grpc::CreateChannel(
        sched->address(), grpc::InsecureChannelCredentials()));
    kwq::v1::SubmitRequest req;
    auto* blocker = req.add_tasks();
    blocker->set_id("blocker");
    blocker->set_job_id("long");
    blocker->set_priority(5);
    blocker->set_payload("blocker");
    for (int i = 0; i < kQuick; ++i) {
      auto* t = req.add_tasks();
      t->set_id(absl::StrCat("quick-", i));
      t->set_job_id("long");
      t->set_priority(5);
    }
    kwq::v1::SubmitResponse resp;
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub->Submit(&ctx, req, &resp).ok());
  }
  ASSERT_TRUE((*events)->WaitFor(
      [](const devgrid::EventCounter& e) {
        return e.completed_tasks() == kQuick;
      },
      absl::Seconds(60)));
  // The commit: offset 0 (the blocker runs), the finished ones in the metadata.
  size_t named = 0;
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (named < kQuick && absl::Now() < deadline) {
    auto c = devgrid::CommittedWithMetadata(*cluster, prefix + ".schedulers",
                                            prefix + ".tasks.p5", 0);
    ASSERT_TRUE(c.ok()) << c.status();
    if (c->first == 0) {
      named =
          scheduler::OffsetTracker::ParseMetadata(c->second, c->first).size();
    }
  }
  ASSERT_EQ(named, static_cast<size_t>(kQuick))
      << "commit metadata never named them";
  sched->Kill(SIGKILL);
  release = true;  // the blocker's next run finishes
  sched = start(port);
  ASSERT_FALSE(sched->address().empty()) << "the scheduler did not restart";
  EXPECT_TRUE((*events)->WaitFor(
      [](const devgrid::EventCounter& e) {
        return e.completed_tasks() == kQuick + 1;
      },
      absl::Seconds(60)))
      << (*events)->completed_tasks();
  EXPECT_EQ((*events)->duplicates(), 0)
      << "finished tasks ran again after the restart";
  worker.Stop(absl::Seconds(2));
  runner.join();
  sched->Kill(SIGTERM);
}

// Static group membership (--static_membership, the default) names the
// member by --scheduler_id: a second instance under the same name takes the
// first one's place in the group. A fenced instance starts a new consumer
// (librdkafka 2.0 also fences a member whose own join timed out), so the two
// fence each other in turn until one, fenced more than 4 times a minute,
// exits with status 3 and says why.
TEST(SchedulerCrashTest, ASecondInstanceWithTheSameIdMakesOneExit) {
  KWQ_OPEN_BACKEND_OR_SKIP(cluster, testing::KafkaBackend::kRealBroker);
  const std::string prefix = testing::UniqueName("kwqsameid");
  const std::string id = "--scheduler_id=" + prefix + "-twin";
  // Members from the start (no wait for a worker before joining).
  auto a = StartScheduler(cluster->bootstrap_servers(), prefix, 0,
                          {id, "--release_partitions_after_ms=0"});
  ASSERT_FALSE(a->address().empty()) << "the first scheduler did not start";
  auto b = StartScheduler(cluster->bootstrap_servers(), prefix, 0,
                          {id, "--release_partitions_after_ms=0"});
  ASSERT_FALSE(b->address().empty()) << "the second scheduler did not start";
  testing::ChildProcess* ended = nullptr;
  testing::ChildProcess* other = nullptr;
  for (int i = 0; i < 1200 && ended == nullptr; ++i) {
    if (a->WaitExit(50))
      ended = a.get(), other = b.get();
    else if (b->WaitExit(50))
      ended = b.get(), other = a.get();
  }
  ASSERT_NE(ended, nullptr) << "both instances kept running for 120 s";
  EXPECT_TRUE(WIFEXITED(ended->exit_status()));
  EXPECT_EQ(WEXITSTATUS(ended->exit_status()), 3);
  EXPECT_FALSE(other->WaitExit(0)) << "both instances exited";
  other->Kill(SIGTERM);
}

}  // namespace
}  // namespace kwq
