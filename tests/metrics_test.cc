// A real kwq_scheduler process (embedded Kafka) serves Prometheus metrics that
// follow its state: queued tasks per priority, then dispatches once a worker
// connects.
#include <memory>
#include <string>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "kwq/v1/scheduler.grpc.pb.h"
#include "tests/child_process.h"
#include "tests/metrics_scrape.h"
#include "worker_sdk/worker.h"

namespace kwq {
namespace {

TEST(MetricsTest, PrometheusMetricsFollowTheScheduler) {
  testing::ChildProcess sched;
  ASSERT_TRUE(sched.Start("server/kwq_scheduler",
                          {"--kafka=embedded", "--listen=127.0.0.1:0",
                           "--partitions=1", "--metrics_listen=127.0.0.1:0",
                           // Counts tasks queued while no worker is connected:
                           // this instance must keep its partitions meanwhile.
                           "--release_partitions_after_ms=0"}));
  const testing::MetricsScrape metrics(sched.line());
  ASSERT_NE(metrics.port(), 0) << sched.line();
  auto Sample = [](const std::string& text, const std::string& series) {
    return testing::MetricsScrape::Sample(text, series);
  };
  auto scrape = [&] { return metrics.Text(); };
  auto wait_for = [&](const std::string& series, double want) {
    if (metrics.WaitFor(series, want, absl::Seconds(60))) return true;
    ADD_FAILURE() << series << " never reached " << want << "; last scrape:\n"
                  << scrape();
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
  EXPECT_TRUE(wait_for("kwq_consumer_lag_records", 3));  // none decided yet
  EXPECT_GT(
      Sample(scrape(), "kwq_oldest_queued_task_age_seconds{priority=\"5\"}"),
      0);
  EXPECT_EQ(Sample(scrape(), "kwq_tasks_dispatched_total"), 0);

  worker::WorkerOptions wo;
  wo.scheduler_address = sched.address();
  worker::Worker w(
      wo, [](worker::TaskContext&) { return worker::Outcome::Success(); });
  std::thread runner([&] { w.Run(); });
  EXPECT_TRUE(wait_for("kwq_tasks_completed_total", 3));
  EXPECT_TRUE(wait_for("kwq_queue_depth{priority=\"5\"}", 0));
  EXPECT_TRUE(wait_for("kwq_consumer_lag_records", 0));  // all committed
  const std::string text = scrape();
  EXPECT_EQ(Sample(text, "kwq_tasks_dispatched_total"), 3);
  EXPECT_EQ(Sample(text, "kwq_connected_workers"), 1);
  EXPECT_EQ(Sample(text, "kwq_priority_inversions_total"), 0);
  // Every first start is in the submit-to-start histogram.
  EXPECT_EQ(Sample(text, "kwq_submit_to_start_seconds_count"), 3);
  EXPECT_EQ(Sample(text, "kwq_submit_to_start_seconds_bucket{le=\"+Inf\"}"), 3);
  EXPECT_EQ(Sample(text, "kwq_oldest_queued_task_age_seconds{priority=\"5\"}"),
            0);
  EXPECT_EQ(Sample(text, "kwq_parked_tasks"), 0);
  EXPECT_TRUE(absl::StrContains(text, "# TYPE kwq_queue_depth gauge")) << text;
  // Outcomes as one labelled counter; run times; process and build info; no
  // NaN anywhere (prometheus-cpp's exposer used to print NaN quantiles).
  EXPECT_EQ(Sample(text, "kwq_task_outcomes_total{outcome=\"completed\"}"), 3);
  EXPECT_EQ(Sample(text, "kwq_task_outcomes_total{outcome=\"error\"}"), 0);
  EXPECT_EQ(Sample(text, "kwq_task_run_seconds_count"), 3);
  EXPECT_GT(Sample(text, "process_resident_memory_bytes"), 1e6);
  EXPECT_GT(Sample(text, "process_open_fds"), 0);
  EXPECT_GT(Sample(text, "process_start_time_seconds"), 1.5e9);
  EXPECT_TRUE(absl::StrContains(
      text, "kwq_build_info{service=\"scheduler\",version=\""))
      << text;
  EXPECT_FALSE(absl::StrContains(text, "NaN")) << text;
  w.Stop(absl::Seconds(2));
  runner.join();
  sched.Kill(15);
}

}  // namespace
}  // namespace kwq
