// tools/bench's Kafka floor on the real broker: its correctness check holds
// (every record consumed once, every produce acknowledged, every event read
// back) and it reports the CPU of its measured window. The figures themselves
// are the benchmark's business, not asserted here.
#include <unistd.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "server/kafka/test_backends.h"
#include "tests/child_process.h"

namespace kwq {
namespace {

// Runs the floor; the fields of its JSON line (empty on failure, reported).
google::protobuf::Struct RunFloor(const std::vector<std::string>& args) {
  google::protobuf::Struct j;
  auto r = testing::RunCommand("tools/bench/kafka_floor", args);
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  std::vector<std::string> lines =
      absl::StrSplit(r.out, '\n', absl::SkipEmpty());
  if (lines.empty()) {
    ADD_FAILURE() << "no output: " << r.err;
    return j;
  }
  EXPECT_TRUE(
      google::protobuf::util::JsonStringToMessage(lines.back(), &j).ok())
      << lines.back();
  EXPECT_TRUE(j.fields().count("correct") &&
              j.fields().at("correct").bool_value())
      << lines.back();
  return j;
}

TEST(KafkaFloorTest, ChecksItsOwnWorkAndReportsWindowCpu) {
  KWQ_OPEN_BACKEND_OR_SKIP(cluster, testing::KafkaBackend::kRealBroker);
  const std::string broker = cluster->bootstrap_servers();
  // Its own pid stands in for the broker's: any live process will do.
  const auto j = RunFloor({"--bootstrap_servers=" + broker, "--tasks=2000",
                           absl::StrCat("--cpu_of_pid=", getpid())});
  const auto& f = j.fields();
  ASSERT_TRUE(f.count("consumed"));
  EXPECT_EQ(f.at("consumed").number_value(), 2000);
  // PENDING and one folded COMPLETED per task, + the four warm-ups.
  EXPECT_EQ(f.at("events_read").number_value(), 2000 * 2 + 4);
  EXPECT_EQ(f.at("duplicates").number_value(), 0);
  EXPECT_GT(f.at("cpu_seconds").number_value(), 0);
  EXPECT_GE(f.at("cpu_seconds_of_pid").number_value(), 0);
  EXPECT_FALSE(f.count("submit_to_consume_p50_ms"));  // only with --rate
}

TEST(KafkaFloorTest, AtAFixedRateItReportsProduceToConsumeLatency) {
  KWQ_OPEN_BACKEND_OR_SKIP(cluster, testing::KafkaBackend::kRealBroker);
  const std::string broker = cluster->bootstrap_servers();
  // 60 tasks at 40/s: the first second (a warm-up) is left out, 20 remain.
  // One event per stage (as kwq for long tasks): PENDING and three per task.
  const auto j = RunFloor({"--bootstrap_servers=" + broker, "--tasks=60",
                           "--rate=40", "--stage_events=3"});
  const auto& f = j.fields();
  EXPECT_EQ(f.at("events_read").number_value(), 60 * 4 + 4);  // + warm-ups
  ASSERT_TRUE(f.count("submit_to_consume_p50_ms"));
  const double p50 = f.at("submit_to_consume_p50_ms").number_value();
  EXPECT_GT(p50, 0);
  EXPECT_GE(f.at("submit_to_consume_p99_ms").number_value(), p50);
}

TEST(KafkaFloorTest, PacedAsKwqOverTenPriorityTopicsEveryTaskIsConsumedOnce) {
  KWQ_OPEN_BACKEND_OR_SKIP(cluster, testing::KafkaBackend::kRealBroker);
  const std::string broker = cluster->bootstrap_servers();
  // 3,000 tasks in Submits of 1,000 at 3,000/s over ten task topics (the
  // bench's run at kwq's rate): every topic's records consumed once and
  // committed, whatever topic they came from.
  const auto j =
      RunFloor({"--bootstrap_servers=" + broker, "--tasks=3000", "--rate=3000",
                "--submit_batch=1000", "--task_topics=10", "--partitions=1"});
  const auto& f = j.fields();
  ASSERT_TRUE(f.count("consumed"));
  EXPECT_EQ(f.at("consumed").number_value(), 3000);
  EXPECT_EQ(f.at("events_read").number_value(), 3000 * 2 + 4);
  EXPECT_EQ(f.at("duplicates").number_value(), 0);
  EXPECT_FALSE(f.count("submit_to_consume_p50_ms"));  // batches: no latency
}

TEST(KafkaFloorTest, RefusesBadTopicCounts) {
  for (const char* flag :
       {"--task_topics=0", "--task_topics=11", "--submit_batch=0"}) {
    auto r = testing::RunCommand(
        "tools/bench/kafka_floor",
        {"--bootstrap_servers=127.0.0.1:1", "--tasks=1", flag});
    EXPECT_EQ(r.exit_code, 2) << flag << ": " << r.err;
  }
}

}  // namespace
}  // namespace kwq
