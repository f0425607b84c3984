// The SDK against an in-process scheduler on embedded Kafka: reconnect after a
// scheduler restart (the old attempt's lease is not adopted: the handler sees
// the cancel and its late completion is fenced off), drain, a throwing handler,
// run-time affinity changes, inline mode (tasks on the stream thread).
#include "worker_sdk/worker.h"

#include <pthread.h>

#include <atomic>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "kwq/v1/scheduler.grpc.pb.h"
#include "server/kafka/test_backends.h"
#include "tools/devgrid/event_counter.h"
#include "tools/devgrid/in_process_scheduler.h"

namespace kwq::worker {
namespace {

using ::kwq::testing::KafkaBackend;

class WorkerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto c = ::kwq::testing::OpenBackend(KafkaBackend::kEmbedded);
    ASSERT_TRUE(c.ok()) << c.status();
    cluster_ = std::move(*c);
    prefix_ = ::kwq::testing::UniqueName("kwqsdk");
    auto e = devgrid::EventCounter::Start(*cluster_, prefix_ + ".events");
    ASSERT_TRUE(e.ok());
    events_ = std::move(*e);
  }

  std::unique_ptr<devgrid::InProcessScheduler> StartScheduler(
      const std::string& listen,
      absl::Duration heartbeat_period = absl::Milliseconds(200)) {
    scheduler::ServiceOptions so;
    so.core.topic_prefix = prefix_;
    so.core.scheduler_id = absl::StrCat(prefix_, "-", ++schedulers_);
    so.core.retry_backoff_base = absl::Milliseconds(5);
    so.core.heartbeat_period = heartbeat_period;
    so.partitions = 1;
    auto s = devgrid::InProcessScheduler::Start(cluster_.get(), so, listen);
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? std::move(*s) : nullptr;
  }

  void Submit(const std::string& address, const std::string& id,
              const std::string& payload = "") {
    auto stub = kwq::v1::Scheduler::NewStub(
        grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
    kwq::v1::SubmitRequest req;
    auto* t = req.add_tasks();
    t->set_id(id);
    t->set_job_id("sdk");
    t->set_payload(payload);
    kwq::v1::SubmitResponse resp;
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub->Submit(&ctx, req, &resp).ok());
  }

  // Polls `cond` (state that other threads change) until it holds or 60 s pass.
  static bool Eventually(const std::function<bool()>& cond) {
    const absl::Time deadline = absl::Now() + absl::Seconds(60);
    while (!cond()) {
      if (absl::Now() > deadline) return false;
      absl::SleepFor(absl::Milliseconds(10));
    }
    return true;
  }

  std::unique_ptr<KafkaCluster> cluster_;
  std::string prefix_;
  std::unique_ptr<devgrid::EventCounter> events_;
  int schedulers_ = 0;
};

TEST_F(WorkerTest, ReconnectsAfterASchedulerRestartAndItsRunningTaskIsAdopted) {
  auto sched = StartScheduler("127.0.0.1:0");
  ASSERT_NE(sched, nullptr);
  const std::string address = sched->address();
  absl::Notification started, release;
  std::atomic<int> runs{0};
  std::atomic<bool> saw_cancel{false};
  WorkerOptions wo;
  wo.scheduler_address = address;
  wo.worker_id = "restarts";
  wo.slots = 2;
  wo.reconnect_min = absl::Milliseconds(20);
  Worker worker(wo, [&](TaskContext& ctx) {
    if (++runs == 1) {
      started.Notify();
      release.WaitForNotification();
      saw_cancel = ctx.cancelled();
    }
    return Outcome::Success("done");
  });
  std::thread runner([&] { worker.Run(); });
  Submit(address, "slow");
  ASSERT_TRUE(started.WaitForNotificationWithTimeout(absl::Seconds(60)));

  // The scheduler goes away (its lease table with it) and comes back on the
  // same port. The worker reconnects and reports the task it still runs; the
  // new instance claims it and adopts it when the (uncommitted) record comes
  // back to it, instead of running it again.
  sched->Shutdown(absl::ZeroDuration());
  sched.reset();
  sched = StartScheduler(address);
  ASSERT_NE(sched, nullptr);
  ASSERT_TRUE(Eventually([&] { return worker.connects() >= 2; }));
  ASSERT_TRUE(Eventually([&] {
    return sched->service().Metrics().adopted == 1;
  })) << "the running task was not adopted";
  release.Notify();
  EXPECT_TRUE(events_->WaitFor(
      [](const devgrid::EventCounter& e) { return e.completed_tasks() == 1; },
      absl::Seconds(60)));
  ASSERT_TRUE(Eventually([&] { return worker.completed() == 1; }));
  EXPECT_EQ(runs.load(), 1) << "adopted, so it ran once";
  EXPECT_FALSE(saw_cancel);
  EXPECT_EQ(worker.stale_acks(), 0);
  EXPECT_EQ(events_->duplicates(), 0);
  worker.Stop(absl::Seconds(2));
  runner.join();
}

TEST_F(WorkerTest, DrainLetsARunningTaskFinishAndReportBeforeClosing) {
  auto sched = StartScheduler("127.0.0.1:0");
  ASSERT_NE(sched, nullptr);
  absl::Notification started;
  WorkerOptions wo;
  wo.scheduler_address = sched->address();
  wo.slots = 1;
  Worker worker(wo, [&](TaskContext& ctx) {
    started.Notify();
    for (int i = 0; i < 30 && !ctx.cancelled(); ++i) {
      absl::SleepFor(absl::Milliseconds(10));  // the task's own work
    }
    return ctx.cancelled() ? Outcome::Error("cancelled")
                           : Outcome::Success("finished");
  });
  std::thread runner([&] { worker.Run(); });
  Submit(sched->address(), "draining");
  ASSERT_TRUE(started.WaitForNotificationWithTimeout(absl::Seconds(60)));
  worker.Stop(absl::Seconds(
      30));       // returns once the task finished and was acknowledged
  runner.join();  // Run() returned: the stream closed
  EXPECT_EQ(worker.completed(), 1);
  EXPECT_EQ(worker.failed(), 0);
  EXPECT_TRUE(events_->WaitFor(
      [](const devgrid::EventCounter& e) { return e.completed_tasks() == 1; },
      absl::Seconds(60)));
}

TEST_F(WorkerTest, AThrowingHandlerIsARetryableTaskErrorAndTheWorkerGoesOn) {
  auto sched = StartScheduler("127.0.0.1:0");
  ASSERT_NE(sched, nullptr);
  WorkerOptions wo;
  wo.scheduler_address = sched->address();
  Worker worker(wo, [&](TaskContext& ctx) {
    if (ctx.attempt() == 1) throw std::runtime_error("bad input");
    return Outcome::Success("second time lucky");
  });
  std::thread runner([&] { worker.Run(); });
  Submit(sched->address(), "thrower");
  EXPECT_TRUE(events_->WaitFor(
      [](const devgrid::EventCounter& e) { return e.completed_tasks() == 1; },
      absl::Seconds(60)));
  EXPECT_EQ(events_->retries(), 1);
  EXPECT_EQ(worker.failed(), 1);
  EXPECT_EQ(worker.completed(), 1);
  worker.Stop(absl::Seconds(2));
  runner.join();
}

TEST_F(WorkerTest, ABusyWorkerSendsHeartbeatsByThePeriodNotPerTask) {
  // A period far longer than the test: any heartbeat received is one the
  // worker sent for another reason (it once sent one per finished task).
  auto sched = StartScheduler("127.0.0.1:0", absl::Hours(1));
  ASSERT_NE(sched, nullptr);
  WorkerOptions wo;
  wo.scheduler_address = sched->address();
  wo.slots = 4;
  Worker worker(wo, [](TaskContext&) { return Outcome::Success(); });
  std::thread runner([&] { worker.Run(); });
  constexpr int kTasks = 40;
  for (int i = 0; i < kTasks; ++i) {
    Submit(sched->address(), absl::StrCat("beat-", i));
  }
  EXPECT_TRUE(events_->WaitFor(
      [](const devgrid::EventCounter& e) {
        return e.completed_tasks() == kTasks;
      },
      absl::Seconds(60)));
  EXPECT_EQ(worker.completed(), kTasks);
  EXPECT_EQ(sched->service().Metrics().heartbeats, 0);
  worker.Stop(absl::Seconds(2));
  runner.join();
}

TEST_F(WorkerTest, AffinityKeysChangeAtRunTime) {
  auto sched = StartScheduler("127.0.0.1:0");
  ASSERT_NE(sched, nullptr);
  WorkerOptions wo;
  wo.scheduler_address = sched->address();
  wo.worker_id = "affine";
  wo.affinity_keys = {"curve=USD"};
  Worker worker(wo, [](TaskContext&) { return Outcome::Success(); });
  std::thread runner([&] { worker.Run(); });
  auto stub = kwq::v1::Scheduler::NewStub(grpc::CreateChannel(
      sched->address(), grpc::InsecureChannelCredentials()));
  auto keys = [&] {
    grpc::ClientContext ctx;
    kwq::v1::ListWorkersResponse resp;
    if (!stub->ListWorkers(&ctx, kwq::v1::ListWorkersRequest(), &resp).ok() ||
        resp.workers_size() != 1) {
      return std::string();
    }
    std::string out;
    for (const auto& k : resp.workers(0).affinity_keys()) out += k + ";";
    return out;
  };
  ASSERT_TRUE(Eventually([&] { return keys() == "curve=USD;"; })) << keys();
  worker.SetAffinityKeys({"curve=EUR", "curve=GBP"});
  EXPECT_TRUE(Eventually([&] { return keys() == "curve=EUR;curve=GBP;"; }))
      << keys();
  worker.Stop(absl::Seconds(2));
  runner.join();
}

TEST_F(WorkerTest, APrefetchingWorkerQueuesTasksBeyondItsSlotsAndRunsThemAll) {
  auto sched = StartScheduler("127.0.0.1:0");
  ASSERT_NE(sched, nullptr);
  absl::Notification started, release;
  std::atomic<int> runs{0};
  WorkerOptions wo;
  wo.scheduler_address = sched->address();
  wo.worker_id = "prefetcher";
  wo.slots = 1;
  wo.prefetch = 2;
  Worker worker(wo, [&](TaskContext&) {
    if (++runs == 1) {
      started.Notify();
      release.WaitForNotification();
    }
    return Outcome::Success();
  });
  std::thread runner([&] { worker.Run(); });
  for (int i = 0; i < 5; ++i) Submit(sched->address(), absl::StrCat("pf-", i));
  ASSERT_TRUE(started.WaitForNotificationWithTimeout(absl::Seconds(60)));
  // The one slot is busy: two more wait in the worker, the rest stay queued
  // in the scheduler.
  auto stub = kwq::v1::Scheduler::NewStub(grpc::CreateChannel(
      sched->address(), grpc::InsecureChannelCredentials()));
  kwq::v1::WorkerInfo info;
  ASSERT_TRUE(Eventually([&] {
    grpc::ClientContext ctx;
    kwq::v1::ListWorkersResponse resp;
    if (!stub->ListWorkers(&ctx, kwq::v1::ListWorkersRequest(), &resp).ok() ||
        resp.workers_size() != 1) {
      return false;
    }
    info = resp.workers(0);
    return info.in_flight() == 3;
  })) << info.ShortDebugString();
  EXPECT_EQ(info.slots(), 1);
  EXPECT_EQ(info.prefetch(), 2);
  EXPECT_EQ(info.free_credits(), 0);
  EXPECT_EQ(runs.load(), 1) << "a queued task ran while the slot was busy";
  release.Notify();
  EXPECT_TRUE(events_->WaitFor(
      [](const devgrid::EventCounter& e) { return e.completed_tasks() == 5; },
      absl::Seconds(60)));
  EXPECT_EQ(worker.completed(), 5);
  EXPECT_TRUE(Eventually([&] { return worker.unacknowledged() == 0; }));
  worker.Stop(absl::Seconds(2));
  runner.join();
}

TEST_F(WorkerTest, AnInlineWorkerRunsEachTaskOnceOnItsStreamThreadOneAtATime) {
  auto sched = StartScheduler("127.0.0.1:0");
  ASSERT_NE(sched, nullptr);
  std::atomic<int> running{0}, most_at_once{0}, on_slot_threads{0};
  WorkerOptions wo;
  wo.scheduler_address = sched->address();
  wo.worker_id = "inline";
  wo.slots = 4;
  wo.prefetch = 4;
  wo.run_inline = true;
  Worker worker(wo, [&](TaskContext& ctx) {
    const int now = ++running;
    int seen = most_at_once.load();
    while (now > seen && !most_at_once.compare_exchange_weak(seen, now)) {
    }
    char name[16] = {0};
    pthread_getname_np(pthread_self(), name, sizeof(name));
    if (std::string(name) == "kwq-slot") ++on_slot_threads;
    absl::SleepFor(absl::Milliseconds(1));  // overlap, if tasks could overlap
    --running;
    // The first attempt of "inl-0" throws: a retryable error, run again.
    if (ctx.task().id() == "inl-0" && ctx.attempt() == 1) {
      throw std::runtime_error("first try");
    }
    return Outcome::Success(ctx.task().payload());
  });
  std::thread runner([&] { worker.Run(); });
  constexpr int kTasks = 20;
  for (int i = 0; i < kTasks; ++i) {
    Submit(sched->address(), absl::StrCat("inl-", i), "p");
  }
  EXPECT_TRUE(events_->WaitFor(
      [](const devgrid::EventCounter& e) {
        return e.completed_tasks() == kTasks;
      },
      absl::Seconds(60)));
  EXPECT_EQ(events_->duplicates(), 0);
  EXPECT_EQ(events_->retries(), 1) << "inl-0's throw is a retryable error";
  EXPECT_EQ(worker.completed(), kTasks);
  EXPECT_EQ(worker.failed(), 1);
  EXPECT_EQ(most_at_once.load(), 1) << "inline tasks ran in parallel";
  EXPECT_EQ(on_slot_threads.load(), 0) << "an inline worker used slot threads";
  // Every completion acknowledged (in AckBatches: the SDK sets ack_batches).
  EXPECT_TRUE(Eventually([&] { return worker.unacknowledged() == 0; }));
  worker.Stop(absl::Seconds(2));
  runner.join();
}

}  // namespace
}  // namespace kwq::worker
