// DeadLetterReader on both Kafka backends: the newest records of each
// partition, bounded by scan_per_partition; a record that is not a DeadLetter
// is shown as such, not dropped or trusted; a job filter and Find.
#include "tracker/ingest/dead_letter_reader.h"

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "server/kafka/test_backends.h"

namespace kwq::tracker {
namespace {

using ::kwq::testing::KafkaBackend;

class DeadLetterReaderTest : public ::testing::TestWithParam<KafkaBackend> {};

TEST_P(DeadLetterReaderTest, ReadsTheNewestRecordsOfEachPartitionBounded) {
  KWQ_OPEN_BACKEND_OR_SKIP(cluster, GetParam());
  const std::string topic = ::kwq::testing::UniqueName("kwqdlq") + ".dlq";
  ASSERT_TRUE(cluster->EnsureTopics({{topic, 2, {}}}, absl::Seconds(15)).ok());
  auto producer = ::kwq::testing::TestProducer::Create(*cluster);
  ASSERT_TRUE(producer.ok()) << producer.status();
  // 30 dead letters per partition (jobs a and b in turn), then one record
  // that is not a DeadLetter in partition 1.
  for (int32_t p = 0; p < 2; ++p) {
    for (int i = 0; i < 30; ++i) {
      kwq::v1::DeadLetter dl;
      dl.mutable_task()->set_id(absl::StrCat("t", p, "-", i));
      dl.mutable_task()->set_job_id(i % 2 ? "a" : "b");
      dl.mutable_task()->set_payload(std::string(1000, 'x'));
      dl.set_reason("used up its attempts");
      dl.mutable_time()->set_seconds(1000 + i);
      ASSERT_TRUE(
          (*producer)->Produce(topic, p, "", dl.SerializeAsString()).ok());
    }
  }
  ASSERT_TRUE(
      (*producer)->Produce(topic, 1, "", "\xff\xff\xff not a protobuf").ok());
  ASSERT_TRUE((*producer)->Flush().ok());

  DeadLetterReader::Options o;
  o.topic = topic;
  o.scan_per_partition = 10;
  auto reader = DeadLetterReader::Create(*cluster, o);
  ASSERT_TRUE(reader.ok()) << reader.status();
  size_t scanned = 0;
  auto all = (*reader)->Newest("", 100, &scanned);
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ(scanned, 20u);  // 10 of each partition, not all 61
  ASSERT_EQ(all->size(), 20u);
  int junk_seen = 0;
  for (const auto& l : *all) {
    if (l.dead_letter.task().id().empty()) {
      ++junk_seen;
      EXPECT_EQ(l.dead_letter.reason(),
                "(this record is not a kwq.v1.DeadLetter)");
      continue;
    }
    EXPECT_TRUE(l.dead_letter.task().payload().empty());  // trimmed for lists
    EXPECT_GE(l.dead_letter.time().seconds(), 1020);      // the newest ones
  }
  EXPECT_EQ(junk_seen, 1);
  // Newest first: the two newest dead letters (one per partition) lead.
  EXPECT_EQ((*all)[0].dead_letter.time().seconds(), 1029);

  auto of_a = (*reader)->Newest("a", 3);
  ASSERT_TRUE(of_a.ok());
  ASSERT_EQ(of_a->size(), 3u);
  for (const auto& l : *of_a) EXPECT_EQ(l.dead_letter.task().job_id(), "a");

  auto found = (*reader)->Find("t0-29");
  ASSERT_TRUE(found.ok()) << found.status();
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ((*found)->dead_letter.task().payload().size(), 1000u);  // whole
  auto old = (*reader)->Find("t0-3");  // beyond the scan: not found
  ASSERT_TRUE(old.ok());
  EXPECT_FALSE(old->has_value());
}

TEST_P(DeadLetterReaderTest, ATopicNeverWrittenHasNoDeadLetters) {
  KWQ_OPEN_BACKEND_OR_SKIP(cluster, GetParam());
  DeadLetterReader::Options o;
  o.topic = ::kwq::testing::UniqueName("kwqdlq-none") + ".dlq";
  ASSERT_TRUE(
      cluster->EnsureTopics({{o.topic, 1, {}}}, absl::Seconds(15)).ok());
  auto reader = DeadLetterReader::Create(*cluster, o);
  ASSERT_TRUE(reader.ok()) << reader.status();
  auto all = (*reader)->Newest("", 100);
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_TRUE(all->empty());
}

INSTANTIATE_TEST_SUITE_P(Backends, DeadLetterReaderTest,
                         ::testing::Values(KafkaBackend::kEmbedded,
                                           KafkaBackend::kRealBroker),
                         [](const auto& info) {
                           return ::kwq::testing::BackendName(info.param);
                         });

}  // namespace
}  // namespace kwq::tracker
