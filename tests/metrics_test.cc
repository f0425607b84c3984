// A real kwq_scheduler process (embedded Kafka) serves Prometheus metrics that
// follow its state: queued tasks per priority, then dispatches once a worker
// connects.
#include <memory>
#include <string>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "kwq/v1/scheduler.grpc.pb.h"
#include "tests/child_process.h"
#include "worker_sdk/worker.h"

namespace kwq {
namespace {

// The value of the first sample line starting with `series`, or -1.
double Sample(const std::string& text, const std::string& series) {
  size_t at = text.find("\n" + series + " ");
  if (at == std::string::npos) return -1;
  at += series.size() + 2;
  double v = -1;
  if (!absl::SimpleAtod(text.substr(at, text.find('\n', at) - at), &v))
    return -1;
  return v;
}

TEST(MetricsTest, PrometheusMetricsFollowTheScheduler) {
  testing::ChildProcess sched;
  ASSERT_TRUE(sched.Start("server/kwq_scheduler",
                          {"--kafka=embedded", "--listen=127.0.0.1:0",
                           "--partitions=1", "--metrics_listen=127.0.0.1:0"}));
  const std::string& line = sched.line();
  const size_t at = line.find("metrics http://");
  ASSERT_NE(at, std::string::npos) << line;
  const std::string hostport =
      line.substr(at + 15, line.find("/metrics", at) - at - 15);
  int port = 0;
  ASSERT_TRUE(absl::SimpleAtoi(hostport.substr(hostport.rfind(':') + 1), &port))
      << hostport;
  httplib::Client http("127.0.0.1", port);
  auto scrape = [&] {
    auto res = http.Get("/metrics");
    return res && res->status == 200 ? res->body : std::string();
  };
  // Polls until `series` reads `want` (the scheduler consumes asynchronously).
  auto wait_for = [&](const std::string& series, double want) {
    const absl::Time deadline = absl::Now() + absl::Seconds(60);
    std::string text;
    while (absl::Now() < deadline) {
      text = "\n" + scrape();
      if (Sample(text, series) == want) return true;
      absl::SleepFor(absl::Milliseconds(20));
    }
    ADD_FAILURE() << series << " never reached " << want << "; last scrape:\n"
                  << text;
    return false;
  };

  auto stub = kwq::v1::Scheduler::NewStub(
      grpc::CreateChannel(sched.address(), grpc::InsecureChannelCredentials()));
  kwq::v1::SubmitRequest req;
  for (int i = 0; i < 3; ++i) {
    auto* t = req.add_tasks();
    t->set_job_id("metered");
    t->set_priority(5);
  }
  kwq::v1::SubmitResponse resp;
  grpc::ClientContext ctx;
  ASSERT_TRUE(stub->Submit(&ctx, req, &resp).ok());
  ASSERT_TRUE(wait_for("kwq_queue_depth{priority=\"5\"}", 3));
  EXPECT_EQ(Sample("\n" + scrape(), "kwq_tasks_dispatched_total"), 0);

  worker::WorkerOptions wo;
  wo.scheduler_address = sched.address();
  worker::Worker w(
      wo, [](worker::TaskContext&) { return worker::Outcome::Success(); });
  std::thread runner([&] { w.Run(); });
  EXPECT_TRUE(wait_for("kwq_tasks_completed_total", 3));
  EXPECT_TRUE(wait_for("kwq_queue_depth{priority=\"5\"}", 0));
  const std::string text = "\n" + scrape();
  EXPECT_EQ(Sample(text, "kwq_tasks_dispatched_total"), 3);
  EXPECT_EQ(Sample(text, "kwq_connected_workers"), 1);
  EXPECT_EQ(Sample(text, "kwq_priority_inversions_total"), 0);
  EXPECT_TRUE(absl::StrContains(text, "# TYPE kwq_queue_depth gauge")) << text;
  w.Stop(absl::Seconds(2));
  runner.join();
  sched.Kill(15);
}

}  // namespace
}  // namespace kwq
