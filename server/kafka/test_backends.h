#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "librdkafka/rdkafkacpp.h"
#include "server/kafka/kafka_cluster.h"

namespace kwq::testing {

// The two Kafka backends every Kafka-facing test runs against with the same
// body.
enum class KafkaBackend { kEmbedded, kRealBroker };

std::string BackendName(KafkaBackend backend);

// Opens a backend. The real broker's address comes from KWQ_KAFKA_BOOTSTRAP
// (set by tools/test.sh after tools/kafka/start.sh). Without it: NOT_FOUND,
// which tests turn into a skip, unless KWQ_REQUIRE_REAL_BROKER=1 (CI), where it
// is FAILED_PRECONDITION and the test fails with the message.
absl::StatusOr<std::unique_ptr<KafkaCluster>> OpenBackend(KafkaBackend backend);

// A name unique to this process and call, for topics and groups on a shared
// broker.
std::string UniqueName(const std::string& prefix);

// A producer for tests that write records straight to a topic (idempotent:
// a retry never writes a record twice).
class TestProducer {
 public:
  static absl::StatusOr<std::unique_ptr<TestProducer>> Create(
      const KafkaCluster& cluster, KafkaConfigMap extra = {});
  // Queues one record; partition -1: chosen by key. Waits while librdkafka's
  // queue is full.
  absl::Status Produce(const std::string& topic, int32_t partition,
                       std::string_view key, std::string_view value);
  // Until every queued record is acknowledged.
  absl::Status Flush(absl::Duration timeout = absl::Seconds(30));

 private:
  std::unique_ptr<RdKafka::Producer> producer_;
};

}  // namespace kwq::testing

// In a gtest body: opens the backend into `var`, skipping or failing as above.
#define KWQ_OPEN_BACKEND_OR_SKIP(var, backend)          \
  auto var##_or = ::kwq::testing::OpenBackend(backend); \
  if (absl::IsNotFound(var##_or.status())) {            \
    GTEST_SKIP() << var##_or.status().message();        \
  }                                                     \
  ASSERT_TRUE(var##_or.ok()) << var##_or.status();      \
  std::unique_ptr<::kwq::KafkaCluster> var = std::move(var##_or).value()
