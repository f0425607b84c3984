// The example in README.md, extracted by a genrule and compiled here, run
// against an in-process scheduler on embedded Kafka.
#include "worker_sdk/readme_example.inc"

#include <thread>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "kwq/v1/scheduler.grpc.pb.h"
#include "server/kafka/test_backends.h"
#include "tools/devgrid/event_counter.h"
#include "tools/devgrid/in_process_scheduler.h"

namespace kwq {
namespace {

TEST(ReadmeExampleTest, TheReadmeWorkerRunsTasks) {
  KWQ_OPEN_BACKEND_OR_SKIP(cluster, testing::KafkaBackend::kEmbedded);
  const std::string prefix = testing::UniqueName("kwqreadme");
  scheduler::ServiceOptions so;
  so.core.topic_prefix = prefix;
  so.partitions = 1;
  auto sched = devgrid::InProcessScheduler::Start(cluster.get(), so);
  ASSERT_TRUE(sched.ok()) << sched.status();
  auto events = devgrid::EventCounter::Start(*cluster, prefix + ".events");
  ASSERT_TRUE(events.ok());
  absl::Notification stop;
  std::thread worker([&] { RunUppercaseWorker((*sched)->address(), stop); });

  auto stub = kwq::v1::Scheduler::NewStub(grpc::CreateChannel(
      (*sched)->address(), grpc::InsecureChannelCredentials()));
  kwq::v1::SubmitRequest req;
  for (int i = 0; i < 50; ++i) {
    auto* t = req.add_tasks();
    t->set_job_id("readme");
    t->set_payload(i == 0 ? "" : absl::StrCat("payload ", i));
  }
  kwq::v1::SubmitResponse resp;
  grpc::ClientContext ctx;
  ASSERT_TRUE(stub->Submit(&ctx, req, &resp).ok());
  EXPECT_TRUE((*events)->WaitFor(
      [](const devgrid::EventCounter& e) {
        return e.completed_tasks() == 49 && e.failed_tasks() == 1;
      },
      absl::Seconds(60)))
      << (*events)->completed_tasks() << " completed, "
      << (*events)->failed_tasks() << " failed";
  EXPECT_EQ((*events)->FailedIds(), std::set<std::string>{resp.task_ids(0)});
  stop.Notify();
  worker.join();
  (*sched)->Shutdown(absl::Seconds(1));
}

}  // namespace
}  // namespace kwq
