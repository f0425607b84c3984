// KafkaTaskLog's own failure paths, on the embedded cluster (librdkafka's mock
// cluster injects the broker errors; a real broker cannot be told to fail one
// request).
#include "server/kafka/kafka_task_log.h"

#include <string>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "librdkafka/rdkafka.h"
#include "librdkafka/rdkafka_mock.h"
#include "server/kafka/test_backends.h"

namespace kwq {
namespace {

struct Seen {
  absl::Mutex mu;
  int records = 0;
  std::vector<CommittedPosition> assigned;
};

TaskLog::Callbacks CallbacksFor(Seen* seen) {
  TaskLog::Callbacks cb;
  cb.on_record = [seen](const std::string&, int32_t, int64_t, std::string) {
    absl::MutexLock lock(&seen->mu);
    ++seen->records;
  };
  cb.on_assigned = [seen](const std::vector<CommittedPosition>& parts) {
    absl::MutexLock lock(&seen->mu);
    for (const auto& p : parts) seen->assigned.push_back(p);
  };
  cb.on_revoked = [](const auto&) {};
  return cb;
}

bool WaitUntil(const std::function<bool()>& done, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!done()) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return true;
}

// Issue 15: a failed async commit was retried without its metadata, so the
// records decided above the offset would run again after a crash.
TEST(KafkaTaskLogTest, AFailedCommitIsRetriedWithItsMetadata) {
  KWQ_OPEN_BACKEND_OR_SKIP(cluster, testing::KafkaBackend::kEmbedded);
  const std::string topic = testing::UniqueName("kwqcommit") + ".t";
  const std::string group = topic + ".group";
  ASSERT_TRUE(cluster->EnsureTopics({{topic, 1, {}}}, absl::Seconds(15)).ok());
  Seen seen;
  auto log = KafkaTaskLog::Open(*cluster, group, {topic}, CallbacksFor(&seen));
  ASSERT_TRUE(log.ok()) << log.status();
  (*log)->Start();
  absl::Notification durable;
  std::vector<LogRecord> batch;
  for (int i = 0; i < 10; ++i) batch.push_back({topic, "k", "v", true});
  (*log)->Produce(std::move(batch), [&](const TaskLog::ProduceResult& r) {
    EXPECT_TRUE(r.ok()) << r.status;
    durable.Notify();
  });
  ASSERT_TRUE(durable.WaitForNotificationWithTimeout(absl::Seconds(30)));
  ASSERT_TRUE(WaitUntil(
      [&] {
        absl::MutexLock lock(&seen.mu);
        return seen.records >= 10;
      },
      absl::Seconds(30)));
  // The next OffsetCommit fails at the broker; the retry must carry the
  // metadata of the commit it repeats.
  constexpr int16_t kOffsetCommitApiKey = 8;  // Kafka protocol ApiKey
  rd_kafka_mock_push_request_errors(
      cluster->mock_cluster(), kOffsetCommitApiKey, 1,
      RD_KAFKA_RESP_ERR_OFFSET_METADATA_TOO_LARGE);
  (*log)->Commit(topic, 0, 5, "v1:2-3");
  ASSERT_TRUE(WaitUntil([&] { return (*log)->commit_errors() >= 1; },
                        absl::Seconds(30)));
  ASSERT_TRUE(
      WaitUntil([&] { return (*log)->commits_ok() >= 1; }, absl::Seconds(30)));
  (*log)->Stop(absl::Seconds(5));
  log->reset();

  // A new member of the group hears the offset and the metadata.
  Seen again;
  auto next =
      KafkaTaskLog::Open(*cluster, group, {topic}, CallbacksFor(&again));
  ASSERT_TRUE(next.ok()) << next.status();
  (*next)->Start();
  ASSERT_TRUE(WaitUntil(
      [&] {
        absl::MutexLock lock(&again.mu);
        return !again.assigned.empty();
      },
      absl::Seconds(30)));
  {
    absl::MutexLock lock(&again.mu);
    EXPECT_EQ(again.assigned[0].offset, 5);
    EXPECT_EQ(again.assigned[0].metadata, "v1:2-3");
  }
  (*next)->Stop(absl::Seconds(5));
}

}  // namespace
}  // namespace kwq
