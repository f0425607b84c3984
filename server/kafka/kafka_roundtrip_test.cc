// One test body, two backends: records produced with the idempotent producer
// (acks=all) are consumed back, in order per partition, through a consumer
// group with manual commits, and a second consumer of the group resumes after
// the committed offsets.
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "librdkafka/rdkafkacpp.h"
#include "server/kafka/kafka_cluster.h"
#include "server/kafka/test_backends.h"

namespace kwq {
namespace {

using ::kwq::testing::KafkaBackend;

class KafkaRoundTripTest : public ::testing::TestWithParam<KafkaBackend> {};

std::unique_ptr<RdKafka::KafkaConsumer> NewConsumer(const KafkaCluster& cluster,
                                                    const std::string& group) {
  auto conf = MakeKafkaConf(cluster.ConsumerConfig(group));
  EXPECT_TRUE(conf.ok()) << conf.status();
  std::string err;
  std::unique_ptr<RdKafka::KafkaConsumer> consumer(
      RdKafka::KafkaConsumer::create(conf->get(), err));
  EXPECT_NE(consumer, nullptr) << err;
  return consumer;
}

struct Record {
  int partition;
  int64_t offset;
  std::string value;
};

// Consumes until `want` records arrived or `timeout` passed.
std::vector<Record> ConsumeN(RdKafka::KafkaConsumer* consumer, size_t want,
                             absl::Duration timeout) {
  std::vector<Record> got;
  const absl::Time deadline = absl::Now() + timeout;
  while (got.size() < want && absl::Now() < deadline) {
    std::unique_ptr<RdKafka::Message> msg(consumer->consume(200));
    if (msg->err() == RdKafka::ERR_NO_ERROR) {
      got.push_back(
          {msg->partition(), msg->offset(),
           std::string(static_cast<const char*>(msg->payload()), msg->len())});
    }
  }
  return got;
}

// Commits offset+1 of the highest consumed record per partition, as kwq does
// (the consumer never stores offsets by itself).
RdKafka::ErrorCode CommitConsumed(RdKafka::KafkaConsumer* consumer,
                                  const std::string& topic,
                                  const std::vector<Record>& records) {
  std::map<int, int64_t> next;
  for (const Record& r : records)
    next[r.partition] = std::max(next[r.partition], r.offset + 1);
  std::vector<RdKafka::TopicPartition*> offsets;
  for (const auto& [p, o] : next)
    offsets.push_back(RdKafka::TopicPartition::create(topic, p, o));
  RdKafka::ErrorCode err = consumer->commitSync(offsets);
  RdKafka::TopicPartition::destroy(offsets);
  return err;
}

TEST_P(KafkaRoundTripTest, ProducesAndConsumesThroughAGroupWithManualCommits) {
  KWQ_OPEN_BACKEND_OR_SKIP(cluster, GetParam());
  const std::string topic = testing::UniqueName("roundtrip");
  ASSERT_TRUE(cluster->EnsureTopics({{topic, 3, {}}}, absl::Seconds(20)).ok());
  // A second EnsureTopics of the same topic is not an error.
  ASSERT_TRUE(cluster->EnsureTopics({{topic, 3, {}}}, absl::Seconds(20)).ok());

  auto pconf = MakeKafkaConf(
      MergeConfig(cluster->ClientConfig(),
                  {{"enable.idempotence", "true"}, {"acks", "all"}}));
  ASSERT_TRUE(pconf.ok()) << pconf.status();
  std::string err;
  std::unique_ptr<RdKafka::Producer> producer(
      RdKafka::Producer::create(pconf->get(), err));
  ASSERT_NE(producer, nullptr) << err;

  constexpr int kRecords = 300;
  for (int i = 0; i < kRecords; ++i) {
    const std::string key = absl::StrCat("key-", i % 7);
    const std::string value = absl::StrCat(key, "/", i);
    ASSERT_EQ(producer->produce(topic, RdKafka::Topic::PARTITION_UA,
                                RdKafka::Producer::RK_MSG_COPY,
                                const_cast<char*>(value.data()), value.size(),
                                key.data(), key.size(), 0, nullptr),
              RdKafka::ERR_NO_ERROR);
  }
  ASSERT_EQ(producer->flush(30000), RdKafka::ERR_NO_ERROR);

  const std::string group = testing::UniqueName("group");
  {
    auto consumer = NewConsumer(*cluster, group);
    ASSERT_EQ(consumer->subscribe({topic}), RdKafka::ERR_NO_ERROR);
    auto got = ConsumeN(consumer.get(), 200, absl::Seconds(60));
    ASSERT_EQ(got.size(), 200u);
    // Per key, values arrive in produce order (one key maps to one partition).
    std::map<std::string, int> last_seen;
    for (const Record& r : got) {
      const std::string& value = r.value;
      const std::string key = value.substr(0, value.find('/'));
      const int i = std::stoi(value.substr(value.find('/') + 1));
      auto it = last_seen.find(key);
      if (it != last_seen.end()) {
        EXPECT_LT(it->second, i) << value;
      }
      last_seen[key] = i;
    }
    // Nothing was stored automatically: a plain commit has nothing to commit.
    EXPECT_EQ(consumer->commitSync(), RdKafka::ERR__NO_OFFSET);
    ASSERT_EQ(CommitConsumed(consumer.get(), topic, got),
              RdKafka::ERR_NO_ERROR);
    consumer->close();
    // The rest, after the committed offsets, goes to the next member of the
    // group.
    std::set<std::string> first;
    for (const Record& r : got) first.insert(r.value);
    auto second = NewConsumer(*cluster, group);
    ASSERT_EQ(second->subscribe({topic}), RdKafka::ERR_NO_ERROR);
    auto rest = ConsumeN(second.get(), kRecords - 200, absl::Seconds(60));
    EXPECT_EQ(rest.size(), static_cast<size_t>(kRecords - 200));
    for (const Record& r : rest) EXPECT_EQ(first.count(r.value), 0u) << r.value;
    second->close();
  }
}

TEST_P(KafkaRoundTripTest, DeletesOnlyTheTopicsWithAPrefix) {
  KWQ_OPEN_BACKEND_OR_SKIP(cluster, GetParam());
  const std::string prefix = testing::UniqueName("doomed") + ".";
  const std::string keep = testing::UniqueName("kept");
  ASSERT_TRUE(
      cluster
          ->EnsureTopics(
              {{prefix + "a", 1, {}}, {prefix + "b", 2, {}}, {keep, 1, {}}},
              absl::Seconds(20))
          .ok());
  auto deleted = cluster->DeleteTopicsWithPrefix(prefix, absl::Seconds(20));
  ASSERT_TRUE(deleted.ok()) << deleted.status();
  if (cluster->embedded()) {
    EXPECT_EQ(*deleted, 0);  // the mock cluster goes away with the process
    return;
  }
  EXPECT_EQ(*deleted, 2);
  // Deletion reaches the metadata asynchronously: poll, bounded.
  int left = -1;
  for (const absl::Time deadline = absl::Now() + absl::Seconds(30);
       absl::Now() < deadline && left != 0;) {
    auto again = cluster->DeleteTopicsWithPrefix(prefix, absl::Seconds(20));
    ASSERT_TRUE(again.ok()) << again.status();
    left = *again;
  }
  EXPECT_EQ(left, 0);
  auto kept = cluster->DeleteTopicsWithPrefix(keep, absl::Seconds(20));
  ASSERT_TRUE(kept.ok()) << kept.status();
  EXPECT_EQ(*kept, 1);  // untouched by the prefix delete; removed now
  EXPECT_FALSE(cluster->DeleteTopicsWithPrefix("", absl::Seconds(1)).ok());
}

INSTANTIATE_TEST_SUITE_P(Backends, KafkaRoundTripTest,
                         ::testing::Values(KafkaBackend::kEmbedded,
                                           KafkaBackend::kRealBroker),
                         [](const auto& info) {
                           return testing::BackendName(info.param);
                         });

}  // namespace
}  // namespace kwq
