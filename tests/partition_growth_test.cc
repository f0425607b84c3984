// Raising the partition count of a running grid's topics (what an operator
// does to let more scheduler instances share the load): tasks submitted after
// the change land in the new partitions too, the scheduler's consumer group
// reads them, and the tracker reads the events partitions added to its topic.
// Every task completes exactly once, and the tracker counts them all. Real
// broker only: librdkafka's mock cluster cannot add partitions.
#include <atomic>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "kwq/v1/scheduler.grpc.pb.h"
#include "kwq/v1/tracker.grpc.pb.h"
#include "librdkafka/rdkafka.h"
#include "librdkafka/rdkafkacpp.h"
#include "server/kafka/kafka_cluster.h"
#include "server/kafka/test_backends.h"
#include "tools/devgrid/event_counter.h"
#include "tools/devgrid/in_process_scheduler.h"
#include "tools/devgrid/in_process_tracker.h"
#include "worker_sdk/worker.h"

namespace kwq {
namespace {

using ::kwq::testing::KafkaBackend;

constexpr int kJobs = 6;  // events are keyed by job: several jobs spread them

// Raises `topics` to `total` partitions with the admin API; "" on success.
std::string RaisePartitions(RdKafka::Producer* client,
                            const std::vector<std::string>& topics, int total) {
  rd_kafka_t* rk = client->c_ptr();
  char err[512];
  std::vector<rd_kafka_NewPartitions_t*> parts;
  for (const auto& t : topics) {
    parts.push_back(
        rd_kafka_NewPartitions_new(t.c_str(), total, err, sizeof(err)));
    if (parts.back() == nullptr) return err;
  }
  rd_kafka_queue_t* queue = rd_kafka_queue_new(rk);
  rd_kafka_AdminOptions_t* options =
      rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATEPARTITIONS);
  rd_kafka_AdminOptions_set_operation_timeout(options, 15000, err, sizeof(err));
  rd_kafka_CreatePartitions(rk, parts.data(), parts.size(), options, queue);
  std::string result = "no answer to CreatePartitions";
  if (rd_kafka_event_t* ev = rd_kafka_queue_poll(queue, 30000)) {
    result.clear();
    if (rd_kafka_event_error(ev) != RD_KAFKA_RESP_ERR_NO_ERROR) {
      result = rd_kafka_event_error_string(ev);
    } else {
      size_t n = 0;
      const rd_kafka_topic_result_t** res =
          rd_kafka_CreatePartitions_result_topics(
              rd_kafka_event_CreatePartitions_result(ev), &n);
      for (size_t i = 0; i < n; ++i) {
        if (rd_kafka_topic_result_error(res[i]) != RD_KAFKA_RESP_ERR_NO_ERROR) {
          absl::StrAppend(&result, rd_kafka_topic_result_name(res[i]), ": ",
                          rd_kafka_topic_result_error_string(res[i]), "; ");
        }
      }
    }
    rd_kafka_event_destroy(ev);
  }
  rd_kafka_AdminOptions_destroy(options);
  rd_kafka_queue_destroy(queue);
  rd_kafka_NewPartitions_destroy_array(parts.data(), parts.size());
  return result;
}

// Records in partitions [1, partitions) of `topic` (the ones added).
int64_t RecordsInAddedPartitions(RdKafka::Producer* client,
                                 const std::string& topic, int partitions) {
  int64_t n = 0;
  for (int p = 1; p < partitions; ++p) {
    int64_t low = 0, high = 0;
    if (client->query_watermark_offsets(topic, p, &low, &high, 5000) ==
        RdKafka::ERR_NO_ERROR) {
      n += high - low;
    }
  }
  return n;
}

TEST(PartitionGrowthTest, TasksAndEventsInAddedPartitionsAreRunAndTracked) {
  KWQ_OPEN_BACKEND_OR_SKIP(cluster, KafkaBackend::kRealBroker);
  const std::string prefix = testing::UniqueName("kwqgrow");
  scheduler::ServiceOptions so;
  so.core.scheduler_id = prefix;
  so.core.topic_prefix = prefix;
  so.partitions = 1;
  auto sched = devgrid::InProcessScheduler::Start(cluster.get(), so);
  ASSERT_TRUE(sched.ok()) << sched.status();
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string db =
      absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/", prefix, "-tracker");
  auto tracker = devgrid::InProcessTracker::Start(*cluster, prefix, db, 1);
  ASSERT_TRUE(tracker.ok()) << tracker.status();
  auto events = devgrid::EventCounter::Start(*cluster, prefix + ".events");
  ASSERT_TRUE(events.ok()) << events.status();

  worker::WorkerOptions wo;
  wo.scheduler_address = (*sched)->address();
  wo.slots = 4;
  worker::Worker worker(
      wo, [](worker::TaskContext&) { return worker::Outcome::Success(); });
  std::thread runner([&] { worker.Run(); });

  auto stub = kwq::v1::Scheduler::NewStub(grpc::CreateChannel(
      (*sched)->address(), grpc::InsecureChannelCredentials()));
  int submitted = 0;
  auto submit = [&](int n) {
    kwq::v1::SubmitRequest req;
    for (int i = 0; i < n; ++i, ++submitted) {
      auto* t = req.add_tasks();
      t->set_id(absl::StrCat("g", submitted));
      t->set_job_id(absl::StrCat("job", submitted % kJobs));
      t->set_priority(submitted % 10);
    }
    kwq::v1::SubmitResponse resp;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(30));
    return stub->Submit(&ctx, req, &resp).ok();
  };
  ASSERT_TRUE(submit(20));
  ASSERT_TRUE(events->get()->WaitFor(
      [](const devgrid::EventCounter& e) { return e.completed_tasks() == 20; },
      absl::Seconds(60)));

  // Three partitions per priority topic and for the events.
  std::string err;
  std::unique_ptr<RdKafka::Conf> conf =
      std::move(MakeKafkaConf(cluster->ClientConfig()).value());
  std::unique_ptr<RdKafka::Producer> admin(
      RdKafka::Producer::create(conf.get(), err));
  ASSERT_NE(admin, nullptr) << err;
  std::vector<std::string> priority_topics;
  for (int p = 0; p < 10; ++p) {
    priority_topics.push_back(absl::StrCat(prefix, ".tasks.p", p));
  }
  std::vector<std::string> grown = priority_topics;
  grown.push_back(prefix + ".events");
  ASSERT_EQ(RaisePartitions(admin.get(), grown, 3), "");

  // Tasks keep coming until some of them, and some events, are in the added
  // partitions (the clients see them at their next metadata refresh, 10 s).
  const absl::Time deadline = absl::Now() + absl::Seconds(90);
  int64_t added_tasks = 0, added_events = 0;
  while (absl::Now() < deadline && (added_tasks == 0 || added_events == 0)) {
    ASSERT_TRUE(submit(10));
    absl::SleepFor(absl::Milliseconds(500));  // a submission rate, not a wait
    added_tasks = 0;
    for (const auto& t : priority_topics) {
      added_tasks += RecordsInAddedPartitions(admin.get(), t, 3);
    }
    added_events = RecordsInAddedPartitions(admin.get(), prefix + ".events", 3);
  }
  ASSERT_GT(added_tasks, 0) << "no task reached an added partition in 90 s";
  ASSERT_GT(added_events, 0) << "no event reached an added partition in 90 s";

  const int total = submitted;
  EXPECT_TRUE(events->get()->WaitFor(
      [&](const devgrid::EventCounter& e) {
        return e.completed_tasks() == total;
      },
      absl::Seconds(60)))
      << events->get()->completed_tasks() << " of " << total << " completed";
  EXPECT_EQ(events->get()->duplicates(), 0);

  // The tracker counts every task, those whose events are in added partitions
  // included.
  auto tstub = kwq::v1::Tracker::NewStub(grpc::CreateChannel(
      (*tracker)->address(), grpc::InsecureChannelCredentials()));
  auto tracked = [&] {
    int64_t completed = 0;
    for (int j = 0; j < kJobs; ++j) {
      kwq::v1::GetJobSummaryRequest req;
      req.set_job_id(absl::StrCat("job", j));
      kwq::v1::JobSummary s;
      grpc::ClientContext ctx;
      if (tstub->GetJobSummary(&ctx, req, &s).ok()) {
        completed += s.counts().completed();
      }
    }
    return completed;
  };
  const absl::Time tracked_deadline = absl::Now() + absl::Seconds(60);
  while (tracked() != total && absl::Now() < tracked_deadline) {
    absl::SleepFor(absl::Milliseconds(100));  // polling the tracker's view
  }
  EXPECT_EQ(tracked(), total) << "events in added partitions not tracked";

  worker.Stop(absl::Seconds(5));
  runner.join();
  tracker->reset();
  (*sched)->Shutdown(absl::Seconds(1));
  // Every client of the grid's topics goes before the topics do (a consumer
  // of a deleted topic can hang in its destructor).
  sched->reset();
  events->reset();
  admin.reset();
  std::filesystem::remove_all(db);
  (void)cluster->DeleteTopicsWithPrefix(prefix, absl::Seconds(30));
}

}  // namespace
}  // namespace kwq
