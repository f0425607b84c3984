#include "server/kafka/test_backends.h"

#include <unistd.h>

#include <atomic>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace kwq::testing {

std::string BackendName(KafkaBackend backend) {
  return backend == KafkaBackend::kEmbedded ? "Embedded" : "RealBroker";
}

absl::StatusOr<std::unique_ptr<KafkaCluster>> OpenBackend(
    KafkaBackend backend) {
  if (backend == KafkaBackend::kEmbedded) return KafkaCluster::StartEmbedded(1);
  const char* bootstrap = std::getenv("KWQ_KAFKA_BOOTSTRAP");
  if (bootstrap == nullptr || *bootstrap == '\0') {
    const char* required = std::getenv("KWQ_REQUIRE_REAL_BROKER");
    if (required != nullptr && std::string(required) == "1") {
      return absl::FailedPreconditionError(
          "KWQ_REQUIRE_REAL_BROKER=1 but KWQ_KAFKA_BOOTSTRAP is not set: start "
          "a broker "
          "with tools/kafka/start.sh (tools/test.sh does it)");
    }
    return absl::NotFoundError(
        "no real broker: KWQ_KAFKA_BOOTSTRAP is not set (tools/test.sh sets "
        "it)");
  }
  return KafkaCluster::Connect(bootstrap, absl::Seconds(30));
}

std::string UniqueName(const std::string& prefix) {
  static std::atomic<int> counter{0};
  return absl::StrCat(prefix, "-", getpid(), "-",
                      absl::ToUnixMicros(absl::Now()), "-", counter++);
}

absl::StatusOr<std::unique_ptr<TestProducer>> TestProducer::Create(
    const KafkaCluster& cluster, KafkaConfigMap extra) {
  extra.emplace("enable.idempotence", "true");
  auto conf = MakeKafkaConf(MergeConfig(cluster.ClientConfig(), extra));
  if (!conf.ok()) return conf.status();
  std::string err;
  auto p = std::make_unique<TestProducer>();
  p->producer_.reset(RdKafka::Producer::create(conf->get(), err));
  if (!p->producer_) return absl::InternalError("test producer: " + err);
  return p;
}

absl::Status TestProducer::Produce(const std::string& topic, int32_t partition,
                                   std::string_view key,
                                   std::string_view value) {
  const int32_t p = partition < 0 ? RdKafka::Topic::PARTITION_UA : partition;
  while (true) {
    const RdKafka::ErrorCode e = producer_->produce(
        topic, p, RdKafka::Producer::RK_MSG_COPY,
        const_cast<char*>(value.data()), value.size(),
        key.empty() ? nullptr : key.data(), key.size(), 0, nullptr);
    if (e == RdKafka::ERR_NO_ERROR) break;
    if (e != RdKafka::ERR__QUEUE_FULL) {
      return absl::InternalError("produce: " + RdKafka::err2str(e));
    }
    producer_->poll(10);
  }
  producer_->poll(0);
  return absl::OkStatus();
}

absl::Status TestProducer::Flush(absl::Duration timeout) {
  const RdKafka::ErrorCode e =
      producer_->flush(static_cast<int>(absl::ToInt64Milliseconds(timeout)));
  if (e != RdKafka::ERR_NO_ERROR) {
    return absl::DeadlineExceededError("flush: " + RdKafka::err2str(e));
  }
  return absl::OkStatus();
}

}  // namespace kwq::testing
