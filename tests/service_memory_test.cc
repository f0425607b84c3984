// The scheduler service on the in-memory backend (MemoryBroker: no Kafka at
// all): real gRPC, real SDK workers. Submit, completion, commits, a restart
// that re-runs nothing already decided, and a pause whose tasks spill to the
// parked topic and come back on resume.
#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "kwq/v1/scheduler.grpc.pb.h"
#include "kwq/v1/task.pb.h"
#include "server/api/topics.h"
#include "server/kafka/memory_backend.h"
#include "server/scheduler_service.h"
#include "tools/devgrid/in_process_scheduler.h"
#include "worker_sdk/worker.h"

namespace kwq {
namespace {

class ServiceOnMemoryTest : public ::testing::Test {
 protected:
  std::unique_ptr<devgrid::InProcessScheduler> Start(int max_parked = 1000) {
    scheduler::ServiceOptions so;
    so.core.topic_prefix = "mem";
    so.core.scheduler_id = absl::StrCat("mem-", ++instances_);
    so.core.max_parked_in_memory_per_priority = max_parked;
    so.partitions = 2;
    auto s =
        devgrid::InProcessScheduler::StartOn(MakeMemoryBackend(&broker_), so);
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? std::move(*s) : nullptr;
  }

  grpc::Status Submit(const std::string& address, const std::string& job,
                      int from, int n) {
    auto stub = kwq::v1::Scheduler::NewStub(
        grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
    kwq::v1::SubmitRequest req;
    for (int i = from; i < from + n; ++i) {
      auto* t = req.add_tasks();
      t->set_id(absl::StrCat(job, "-", i));
      t->set_job_id(job);
      t->set_priority(i % 10);
    }
    kwq::v1::SubmitResponse resp;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(30));
    return stub->Submit(&ctx, req, &resp);
  }

  grpc::Status Control(const std::string& address, const std::string& job,
                       bool pause) {
    auto stub = kwq::v1::Scheduler::NewStub(
        grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
    grpc::ClientContext ctx;
    if (pause) {
      kwq::v1::PauseRequest req;
      req.mutable_scope()->set_job_id(job);
      kwq::v1::PauseResponse resp;
      return stub->Pause(&ctx, req, &resp);
    }
    kwq::v1::ResumeRequest req;
    req.mutable_scope()->set_job_id(job);
    kwq::v1::ResumeResponse resp;
    return stub->Resume(&ctx, req, &resp);
  }

  // COMPLETED events per task id, read from the broker's events topic.
  std::map<std::string, int> Completed() const {
    std::map<std::string, int> out;
    const std::string topic = api::Topics("mem").Events();
    for (int32_t p = 0; p < broker_.partitions(topic); ++p) {
      int64_t end = 0;
      for (const auto& r : broker_.Read(topic, p, 0, SIZE_MAX, &end)) {
        kwq::v1::TaskEvent ev;
        if (ev.ParseFromString(r.value) && ev.state() == kwq::v1::COMPLETED) {
          ++out[ev.task_id()];
        }
      }
    }
    return out;
  }

  bool WaitForCompleted(size_t n) const {
    const absl::Time deadline = absl::Now() + absl::Seconds(60);
    while (absl::Now() < deadline) {
      if (Completed().size() >= n) return true;
      absl::SleepFor(absl::Milliseconds(20));
    }
    return false;
  }

  std::unique_ptr<worker::Worker> RunWorker(const std::string& address) {
    worker::WorkerOptions wo;
    wo.scheduler_address = address;
    wo.worker_id = absl::StrCat("mw", ++workers_);
    wo.slots = 4;
    auto w = std::make_unique<worker::Worker>(wo, [](worker::TaskContext&) {
      return worker::Outcome::Success("ok");
    });
    runners_.emplace_back([w = w.get()] { w->Run(); });
    return w;
  }

  void StopWorker(worker::Worker* w) {
    w->Stop(absl::Seconds(2));
    for (auto& r : runners_) {
      if (r.joinable()) r.join();
    }
    runners_.clear();
  }

  MemoryBroker broker_;
  int instances_ = 0;
  int workers_ = 0;
  std::vector<std::thread> runners_;
};

TEST_F(ServiceOnMemoryTest, TasksCompleteOnceAcrossARestart) {
  auto sched = Start();
  ASSERT_NE(sched, nullptr);
  auto w = RunWorker(sched->address());
  ASSERT_TRUE(Submit(sched->address(), "mem-job", 0, 300).ok());
  ASSERT_TRUE(WaitForCompleted(300)) << Completed().size();
  StopWorker(w.get());
  sched->Shutdown(absl::Seconds(2));
  sched.reset();

  // A new instance on the same broker resumes from the committed offsets:
  // nothing decided runs again, the new tasks run.
  auto again = Start();
  ASSERT_NE(again, nullptr);
  auto w2 = RunWorker(again->address());
  ASSERT_TRUE(Submit(again->address(), "mem-job", 300, 100).ok());
  ASSERT_TRUE(WaitForCompleted(400)) << Completed().size();
  for (const auto& [id, n] : Completed()) EXPECT_EQ(n, 1) << id;
  StopWorker(w2.get());
  again->Shutdown(absl::Seconds(2));
}

TEST_F(ServiceOnMemoryTest, APausedJobSpillsToTheParkedTopicAndComesBack) {
  auto sched = Start(/*max_parked=*/5);
  ASSERT_NE(sched, nullptr);
  ASSERT_TRUE(Submit(sched->address(), "warm", 0, 1).ok());  // known job
  ASSERT_TRUE(Submit(sched->address(), "held", 0, 1).ok());
  ASSERT_TRUE(Control(sched->address(), "held", /*pause=*/true).ok());
  ASSERT_TRUE(Submit(sched->address(), "held", 1, 59).ok());
  auto w = RunWorker(sched->address());
  ASSERT_TRUE(WaitForCompleted(1));  // "warm" runs; "held" waits
  // Past 5 per priority in memory, the paused tasks went to the parked topic.
  const std::string parked = api::Topics("mem").Parked();
  int64_t parked_records = 0;
  for (int32_t p = 0; p < broker_.partitions(parked); ++p) {
    int64_t end = 0;
    broker_.Read(parked, p, 0, 0, &end);
    parked_records += end;
  }
  EXPECT_GT(parked_records, 0);
  ASSERT_TRUE(Control(sched->address(), "held", /*pause=*/false).ok());
  ASSERT_TRUE(WaitForCompleted(61)) << Completed().size();
  for (const auto& [id, n] : Completed()) EXPECT_EQ(n, 1) << id;
  StopWorker(w.get());
  sched->Shutdown(absl::Seconds(2));
}

// The gRPC server answers while Start() still waits for Kafka (scheduler_main
// starts it first, for health probes). Every RPC that arrives then is refused
// UNAVAILABLE, and the service works once started. (A Submit or ListQueues in
// that window used to reach the task log before it existed: SIGSEGV on a
// scheduler restarted under load, found by the 50M soak.)
TEST_F(ServiceOnMemoryTest, CallsBeforeStartAreRefusedNotCrashed) {
  scheduler::ServiceOptions so;
  so.core.topic_prefix = "mem";
  so.core.scheduler_id = "early";
  so.partitions = 2;
  std::unique_ptr<SchedulerBackend> backend = MakeMemoryBackend(&broker_);
  scheduler::SchedulerService service(so, backend.get());
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                           &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  const std::string address = absl::StrCat("127.0.0.1:", port);
  auto stub = kwq::v1::Scheduler::NewStub(
      grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  auto deadline = [](grpc::ClientContext* c) {
    c->set_deadline(std::chrono::system_clock::now() +
                    std::chrono::seconds(10));
  };
  EXPECT_EQ(Submit(address, "early-job", 0, 10).error_code(),
            grpc::StatusCode::UNAVAILABLE);
  {
    grpc::ClientContext c;
    deadline(&c);
    kwq::v1::ListQueuesResponse r;
    EXPECT_EQ(stub->ListQueues(&c, {}, &r).error_code(),
              grpc::StatusCode::UNAVAILABLE);
  }
  {
    grpc::ClientContext c;
    deadline(&c);
    kwq::v1::ListWorkersResponse r;
    EXPECT_EQ(stub->ListWorkers(&c, {}, &r).error_code(),
              grpc::StatusCode::UNAVAILABLE);
  }
  {
    grpc::ClientContext c;
    deadline(&c);
    kwq::v1::ExplainTaskRequest q;
    q.set_task_id("early-job-1");
    kwq::v1::ExplainTaskResponse r;
    EXPECT_EQ(stub->ExplainTask(&c, q, &r).error_code(),
              grpc::StatusCode::UNAVAILABLE);
  }
  EXPECT_EQ(Control(address, "early-job", true).error_code(),
            grpc::StatusCode::UNAVAILABLE);
  // Started, the same calls work.
  ASSERT_TRUE(service.Start().ok());
  EXPECT_TRUE(Submit(address, "early-job", 0, 10).ok());
  {
    grpc::ClientContext c;
    deadline(&c);
    kwq::v1::ListQueuesResponse r;
    EXPECT_TRUE(stub->ListQueues(&c, {}, &r).ok());
  }
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
}

}  // namespace

}  // namespace kwq
