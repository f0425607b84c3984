// ResultReader on both Kafka backends: a task's result found near its finish
// time, cut to the preview size, a specific attempt, records that are not
// TaskResults skipped, and NOT_FOUND for a task with no result.
#include "tracker/ingest/result_reader.h"

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "server/kafka/test_backends.h"

namespace kwq::tracker {
namespace {

using ::kwq::testing::KafkaBackend;

class ResultReaderTest : public ::testing::TestWithParam<KafkaBackend> {};

TEST_P(ResultReaderTest, FindsAResultNearItsFinish) {
  KWQ_OPEN_BACKEND_OR_SKIP(cluster, GetParam());
  const std::string topic = ::kwq::testing::UniqueName("kwqres") + ".results";
  ASSERT_TRUE(cluster->EnsureTopics({{topic, 3, {}}}, absl::Seconds(15)).ok());
  auto producer = ::kwq::testing::TestProducer::Create(*cluster);
  ASSERT_TRUE(producer.ok()) << producer.status();
  auto produce = [&](const std::string& key, const std::string& value) {
    ASSERT_TRUE((*producer)->Produce(topic, -1, key, value).ok());
  };
  const absl::Time finished = absl::Now();
  for (int i = 0; i < 200; ++i) {
    kwq::v1::TaskResult r;
    r.set_task_id(absl::StrCat("r", i));
    r.set_job_id(absl::StrCat("job", i % 3));
    r.set_attempt(i == 7 ? 2 : 1);
    r.set_worker_id("w1");
    r.set_result(i == 9 ? std::string(5000, 'z') : absl::StrCat("value ", i));
    produce(r.job_id(), r.SerializeAsString());
    if (i == 100) produce("job1", "\xff\xfe not a TaskResult");
  }
  ASSERT_TRUE((*producer)->Flush().ok());

  ResultReader::Options o;
  o.topic = topic;
  o.preview_bytes = 100;
  auto reader = ResultReader::Create(*cluster, o);
  ASSERT_TRUE(reader.ok()) << reader.status();
  auto r42 = (*reader)->Find("r42", 1, finished);
  ASSERT_TRUE(r42.ok()) << r42.status();
  EXPECT_EQ(r42->result.result(), "value 42");
  EXPECT_EQ(r42->size, 8);
  EXPECT_EQ(r42->result.job_id(), "job0");
  auto big = (*reader)->Find("r9", 0, finished);
  ASSERT_TRUE(big.ok()) << big.status();
  EXPECT_EQ(big->size, 5000);
  EXPECT_EQ(big->result.result().size(), 100u);  // cut to the preview
  EXPECT_TRUE(absl::IsNotFound((*reader)->Find("r7", 1, finished).status()))
      << "attempt 1 of r7 has no result (its result is of attempt 2)";
  EXPECT_TRUE((*reader)->Find("r7", 2, finished).ok());
  EXPECT_TRUE(absl::IsNotFound((*reader)->Find("nope", 0, finished).status()));
}

TEST_P(ResultReaderTest, NoTopicMeansNotFound) {
  KWQ_OPEN_BACKEND_OR_SKIP(cluster, GetParam());
  ResultReader::Options o;
  o.topic = ::kwq::testing::UniqueName("kwqres-none") + ".results";
  ASSERT_TRUE(
      cluster->EnsureTopics({{o.topic, 1, {}}}, absl::Seconds(15)).ok());
  auto reader = ResultReader::Create(*cluster, o);
  ASSERT_TRUE(reader.ok()) << reader.status();
  EXPECT_TRUE(absl::IsNotFound((*reader)->Find("t", 1, absl::Now()).status()));
}

INSTANTIATE_TEST_SUITE_P(Backends, ResultReaderTest,
                         ::testing::Values(KafkaBackend::kEmbedded,
                                           KafkaBackend::kRealBroker),
                         [](const auto& info) {
                           return ::kwq::testing::BackendName(info.param);
                         });

}  // namespace
}  // namespace kwq::tracker
