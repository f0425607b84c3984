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

}  // namespace kwq::testing
