// Scheduler control end to end (scheduler + SDK workers + Kafka, both
// backends): pause and resume of a job (kept in <prefix>.control, so a
// restarted scheduler obeys it), cancel of a job with running and queued tasks,
// task timeouts, validation of scopes.
#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "glog/logging.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "kwq/v1/scheduler.grpc.pb.h"
#include "server/kafka/test_backends.h"
#include "server/util/time_util.h"
#include "tools/devgrid/event_counter.h"
#include "tools/devgrid/in_process_scheduler.h"
#include "worker_sdk/worker.h"

namespace kwq {
namespace {

using ::kwq::testing::KafkaBackend;

class ControlTest : public ::testing::TestWithParam<KafkaBackend> {
 protected:
  void SetUp() override {
    auto c = testing::OpenBackend(GetParam());
    if (absl::IsNotFound(c.status())) GTEST_SKIP() << c.status().message();
    ASSERT_TRUE(c.ok()) << c.status();
    cluster_ = std::move(*c);
    prefix_ = testing::UniqueName("kwqctl");
    auto e = devgrid::EventCounter::Start(*cluster_, prefix_ + ".events");
    ASSERT_TRUE(e.ok());
    events_ = std::move(*e);
    sched_ = StartScheduler();
    ASSERT_NE(sched_, nullptr);
  }
  void TearDown() override {
    for (auto& w : workers_) w->Stop(absl::Seconds(1));
    for (auto& t : runners_) t.join();
    if (sched_) sched_->Shutdown(absl::Seconds(1));
  }

  std::unique_ptr<devgrid::InProcessScheduler> StartScheduler(
      const std::function<void(scheduler::ServiceOptions&)>& tweak = {}) {
    scheduler::ServiceOptions so;
    so.core.topic_prefix = prefix_;
    so.core.scheduler_id = absl::StrCat(prefix_, "-", ++instances_);
    so.core.retry_backoff_base = absl::Milliseconds(5);
    so.partitions = 2;
    if (tweak) tweak(so);
    auto s = devgrid::InProcessScheduler::Start(cluster_.get(), so);
    EXPECT_TRUE(s.ok()) << s.status();
    if (!s.ok()) return nullptr;
    stub_ = kwq::v1::Scheduler::NewStub(grpc::CreateChannel(
        (*s)->address(), grpc::InsecureChannelCredentials()));
    return std::move(*s);
  }

  void AddWorker(worker::Handler handler, int slots = 4) {
    worker::WorkerOptions wo;
    wo.scheduler_address = sched_->address();
    wo.slots = slots;
    workers_.push_back(
        std::make_unique<worker::Worker>(wo, std::move(handler)));
    runners_.emplace_back([w = workers_.back().get()] { w->Run(); });
  }

  void Submit(const std::string& job, int n, const std::string& payload = "",
              absl::Duration timeout = absl::ZeroDuration(),
              int max_attempts = 0) {
    kwq::v1::SubmitRequest req;
    for (int i = 0; i < n; ++i) {
      auto* t = req.add_tasks();
      t->set_id(absl::StrCat(job, "-", submitted_[job]++));
      t->set_job_id(job);
      t->set_payload(payload);
      if (timeout > absl::ZeroDuration())
        *t->mutable_timeout() = ToProto(timeout);
      t->set_max_attempts(max_attempts);
    }
    kwq::v1::SubmitResponse resp;
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub_->Submit(&ctx, req, &resp).ok());
  }

  // Through `stub` (default: the first scheduler).
  grpc::Status Pause(const kwq::v1::Scope& scope, bool resume = false,
                     kwq::v1::Scheduler::Stub* stub = nullptr) {
    if (stub == nullptr) stub = stub_.get();
    grpc::ClientContext ctx;
    if (resume) {
      kwq::v1::ResumeRequest req;
      *req.mutable_scope() = scope;
      kwq::v1::ResumeResponse resp;
      return stub->Resume(&ctx, req, &resp);
    }
    kwq::v1::PauseRequest req;
    *req.mutable_scope() = scope;
    req.set_requested_by("control_test");
    kwq::v1::PauseResponse resp;
    return stub->Pause(&ctx, req, &resp);
  }
  grpc::Status Cancel(const kwq::v1::Scope& scope) {
    grpc::ClientContext ctx;
    kwq::v1::CancelRequest req;
    *req.mutable_scope() = scope;
    req.set_requested_by("control_test");
    kwq::v1::CancelResponse resp;
    return stub_->Cancel(&ctx, req, &resp);
  }
  std::vector<std::string> Why(const std::string& task_id,
                               kwq::v1::Scheduler::Stub* stub = nullptr) {
    if (stub == nullptr) stub = stub_.get();
    grpc::ClientContext ctx;
    kwq::v1::ExplainTaskRequest req;
    req.set_task_id(task_id);
    kwq::v1::ExplainTaskResponse resp;
    if (!stub->ExplainTask(&ctx, req, &resp).ok()) return {};
    return {resp.reasons().begin(), resp.reasons().end()};
  }
  // Polls the scheduler (ExplainTask) until it holds the task, for at most 60
  // s.
  bool WaitHeld(const std::string& task_id) {
    const absl::Time deadline = absl::Now() + absl::Seconds(60);
    while (Why(task_id).empty()) {
      if (absl::Now() > deadline) return false;
      absl::SleepFor(absl::Milliseconds(10));
    }
    return true;
  }
  static kwq::v1::Scope Job(const std::string& job) {
    kwq::v1::Scope s;
    s.set_job_id(job);
    return s;
  }

  std::unique_ptr<KafkaCluster> cluster_;
  std::string prefix_;
  std::unique_ptr<devgrid::EventCounter> events_;
  std::unique_ptr<devgrid::InProcessScheduler> sched_;
  std::unique_ptr<kwq::v1::Scheduler::Stub> stub_;
  std::vector<std::unique_ptr<worker::Worker>> workers_;
  std::vector<std::thread> runners_;
  std::map<std::string, int> submitted_;
  int instances_ = 0;
};

TEST_P(ControlTest, APausedJobWaitsAcrossARestartWhileOthersRunThenResumes) {
  Submit("held", 1);  // known to the scheduler, no worker yet
  ASSERT_TRUE(WaitHeld("held-0"));
  ASSERT_TRUE(Pause(Job("held")).ok());
  // The pause is in the control topic: a restarted scheduler obeys it too.
  sched_->Shutdown(absl::ZeroDuration());
  sched_ = StartScheduler();
  ASSERT_NE(sched_, nullptr);
  Submit("held", 20);
  AddWorker([](worker::TaskContext&) { return worker::Outcome::Success(); });
  Submit("free", 50);
  ASSERT_TRUE(events_->WaitFor(
      [](const devgrid::EventCounter& e) { return e.completed_tasks() == 50; },
      absl::Seconds(60)));
  ASSERT_TRUE(WaitHeld("held-20"));
  const auto why = Why("held-20");
  ASSERT_FALSE(why.empty());
  EXPECT_EQ(why[0], "paused: job held");
  for (const auto& [id, n] : events_->CompletedCounts()) {
    EXPECT_EQ(id.rfind("held", 0), std::string::npos)
        << id << " ran while paused";
  }
  ASSERT_TRUE(Pause(Job("held"), /*resume=*/true).ok());
  EXPECT_TRUE(events_->WaitFor(
      [](const devgrid::EventCounter& e) { return e.completed_tasks() == 71; },
      absl::Seconds(60)))
      << events_->completed_tasks();
}

// A paused job far larger than the scheduler's buffers: its tasks beyond the
// memory cap go to the parked topic, the other job of the same priority runs
// to the end meanwhile, and on resume every parked task comes back and runs
// once.
TEST_P(ControlTest, ABigPausedJobParksInKafkaAndDoesNotHoldOthersBack) {
  sched_->Shutdown(absl::ZeroDuration());
  sched_ = StartScheduler([](scheduler::ServiceOptions& so) {
    so.core.max_buffered_per_priority = 20;
    so.core.max_parked_in_memory_per_priority = 5;
  });
  ASSERT_NE(sched_, nullptr);
  Submit("big", 1);
  ASSERT_TRUE(WaitHeld("big-0"));
  ASSERT_TRUE(Pause(Job("big")).ok());
  Submit("big", 199);  // 10x the buffer
  Submit("other", 60);
  AddWorker([](worker::TaskContext&) { return worker::Outcome::Success(); });
  ASSERT_TRUE(events_->WaitFor(
      [](const devgrid::EventCounter& e) { return e.completed_tasks() == 60; },
      absl::Seconds(60)))
      << "the paused job held the other one back: "
      << events_->completed_tasks() << " of 60";
  for (const auto& [id, n] : events_->CompletedCounts()) {
    EXPECT_EQ(id.rfind("big", 0), std::string::npos)
        << id << " ran while paused";
  }
  EXPECT_GE(sched_->service().Metrics().parked_to_kafka, 190);
  ASSERT_TRUE(Pause(Job("big"), /*resume=*/true).ok());
  EXPECT_TRUE(events_->WaitFor(
      [](const devgrid::EventCounter& e) { return e.completed_tasks() == 260; },
      absl::Seconds(90)))
      << events_->completed_tasks() << " of 260; unfinished e.g. "
      << (events_->Unfinished().empty() ? ""
                                        : events_->Unfinished().begin()->first);
  EXPECT_EQ(events_->duplicates(), 0);
}

TEST_P(ControlTest, CancelEndsRunningAndQueuedTasksOfAJob) {
  std::atomic<int> saw_cancel{0};
  AddWorker(
      [&](worker::TaskContext& ctx) {
        while (!ctx.cancelled()) absl::SleepFor(absl::Milliseconds(5));
        ++saw_cancel;
        return worker::Outcome::Error("stopped on cancel");
      },
      2);
  Submit("doomed", 6);  // 2 run, 4 wait
  ASSERT_TRUE(events_->WaitFor(
      [](const devgrid::EventCounter& e) {
        const auto open = e.Unfinished();
        int allocated = 0;
        for (const auto& [id, history] : open) {
          allocated += history.find("ALLOCATED") != std::string::npos ? 1 : 0;
        }
        return open.size() == 6 && allocated == 2;
      },
      absl::Seconds(60)));
  ASSERT_TRUE(WaitHeld("doomed-5"));
  ASSERT_TRUE(Cancel(Job("doomed")).ok());
  EXPECT_TRUE(events_->WaitFor(
      [](const devgrid::EventCounter& e) { return e.cancelled_tasks() == 6; },
      absl::Seconds(60)))
      << events_->cancelled_tasks();
  EXPECT_EQ(saw_cancel.load(), 2);
  EXPECT_EQ(events_->retries(), 0);
  EXPECT_EQ(events_->completed_tasks(), 0);
  // Later records of the job are cancelled on arrival.
  Submit("doomed", 2);
  EXPECT_TRUE(events_->WaitFor(
      [](const devgrid::EventCounter& e) { return e.cancelled_tasks() == 8; },
      absl::Seconds(60)));
}

TEST_P(ControlTest, ATaskPastItsTimeoutIsStoppedRetriedThenFailed) {
  std::atomic<int> stopped{0};
  AddWorker([&](worker::TaskContext& ctx) {
    while (!ctx.cancelled()) absl::SleepFor(absl::Milliseconds(5));
    ++stopped;
    return worker::Outcome::Error("stopped");
  });
  Submit("slow", 1, "", absl::Milliseconds(200), /*max_attempts=*/2);
  EXPECT_TRUE(events_->WaitFor(
      [](const devgrid::EventCounter& e) { return e.failed_tasks() == 1; },
      absl::Seconds(60)));
  EXPECT_EQ(events_->retries(), 1);
  EXPECT_EQ(stopped.load(), 2);
  EXPECT_EQ(sched_->service().Metrics().timeouts, 2);
}

TEST_P(ControlTest, ATaskNoWorkerCanRunSaysWhyInItsEventsUntilOneComes) {
  AddWorker([](worker::TaskContext&) { return worker::Outcome::Success(); });
  kwq::v1::SubmitRequest req;
  auto* t = req.add_tasks();
  t->set_id("needs-gpu");
  t->set_job_id("gpu-job");
  t->add_required_labels("gpu");
  kwq::v1::SubmitResponse resp;
  grpc::ClientContext ctx;
  ASSERT_TRUE(stub_->Submit(&ctx, req, &resp).ok());
  ASSERT_TRUE(events_->WaitFor(
      [](const devgrid::EventCounter& e) {
        return e.Waiting().count("needs-gpu") > 0;
      },
      absl::Seconds(60)));
  EXPECT_EQ(events_->Waiting().at("needs-gpu"),
            "no connected worker has labels [gpu]");
  EXPECT_EQ(events_->completed_tasks(), 0);
  worker::WorkerOptions wo;
  wo.scheduler_address = sched_->address();
  wo.labels = {"gpu"};
  workers_.push_back(std::make_unique<worker::Worker>(
      wo, [](worker::TaskContext&) { return worker::Outcome::Success(); }));
  runners_.emplace_back([w = workers_.back().get()] { w->Run(); });
  EXPECT_TRUE(events_->WaitFor(
      [](const devgrid::EventCounter& e) { return e.completed_tasks() == 1; },
      absl::Seconds(60)));
  EXPECT_EQ(events_->retries(), 0) << "a waiting note is not a retry";
}

// Two instances: a job submitted through one is known to the other (the
// <prefix>.jobs topic), and a pause requested on one stops the other's
// dispatching; the time until the other obeys is logged (a figure, not an
// assertion).
TEST_P(ControlTest, AJobSubmittedToOneInstanceIsKnownAndPausedOnTheOther) {
  auto other = StartScheduler();
  ASSERT_NE(other, nullptr);
  auto other_stub = kwq::v1::Scheduler::NewStub(grpc::CreateChannel(
      other->address(), grpc::InsecureChannelCredentials()));
  auto pause_on_other = [&](const std::string& job, bool resume) {
    return Pause(Job(job), resume, other_stub.get());
  };
  EXPECT_EQ(pause_on_other("nowhere", false).error_code(),
            grpc::StatusCode::NOT_FOUND);
  // Submitted through the first instance only (no worker anywhere: the tasks
  // stay queued on whichever instance owns their partitions).
  Submit("shared", 16);
  grpc::Status st;
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  do {  // the other instance learns the job from <prefix>.jobs
    st = pause_on_other("shared", false);
  } while (st.error_code() == grpc::StatusCode::NOT_FOUND &&
           absl::Now() < deadline);
  ASSERT_TRUE(st.ok()) << st.error_message();
  ASSERT_TRUE(pause_on_other("shared", true).ok());

  // Pause latency across instances: find a queued task one instance holds,
  // pause through the other, and time until the holder says it is paused.
  auto why_on = [&](kwq::v1::Scheduler::Stub* stub, const std::string& id) {
    const auto reasons = Why(id, stub);
    return reasons.empty() ? std::string() : reasons[0];
  };
  std::string held;
  kwq::v1::Scheduler::Stub* holder = nullptr;
  kwq::v1::Scheduler::Stub* requester = nullptr;
  while (held.empty() && absl::Now() < deadline + absl::Seconds(30)) {
    for (int i = 0; i < 16 && held.empty(); ++i) {
      const std::string id = absl::StrCat("shared-", i);
      if (!why_on(stub_.get(), id).empty()) {
        held = id, holder = stub_.get(), requester = other_stub.get();
      } else if (!why_on(other_stub.get(), id).empty()) {
        held = id, holder = other_stub.get(), requester = stub_.get();
      }
    }
  }
  ASSERT_FALSE(held.empty()) << "neither instance holds a task of the job";
  const absl::Time asked = absl::Now();
  ASSERT_TRUE(Pause(Job("shared"), /*resume=*/false, requester).ok());
  const absl::Time acked = absl::Now();
  while (why_on(holder, held) != "paused: job shared") {
    ASSERT_LT(absl::Now(), acked + absl::Seconds(30)) << why_on(holder, held);
  }
  const absl::Time obeyed = absl::Now();
  LOG(INFO) << "pause across instances (" << testing::BackendName(GetParam())
            << "): acknowledged after " << absl::FormatDuration(acked - asked)
            << ", obeyed by the other instance "
            << absl::FormatDuration(obeyed - acked) << " after that";
  other->Shutdown(absl::ZeroDuration());
}

TEST_P(ControlTest, ControlRequestsAreValidated) {
  kwq::v1::Scope none;
  EXPECT_EQ(Pause(none).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  kwq::v1::Scope bad_priority;
  bad_priority.set_priority(11);
  EXPECT_EQ(Pause(bad_priority).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  kwq::v1::Scope task;
  task.set_task_id("t1");
  EXPECT_EQ(Pause(task).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  kwq::v1::Scope all;
  all.set_all(true);
  EXPECT_EQ(Cancel(all).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Pause(Job("never-seen")).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Cancel(task).error_code(), grpc::StatusCode::NOT_FOUND);
  kwq::v1::Scope p3;
  p3.set_priority(3);
  EXPECT_TRUE(Pause(p3).ok());
  EXPECT_TRUE(Pause(p3, /*resume=*/true).ok());
}

INSTANTIATE_TEST_SUITE_P(Backends, ControlTest,
                         ::testing::Values(KafkaBackend::kEmbedded,
                                           KafkaBackend::kRealBroker),
                         [](const auto& info) {
                           return testing::BackendName(info.param);
                         });

}  // namespace
}  // namespace kwq
