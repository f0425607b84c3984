#include "server/kafka/kafka_flags.h"

#include "glog/logging.h"

namespace kwq {

std::string CheckKafkaFlags(const std::string& kafka,
                            const std::string& bootstrap_servers) {
  if (!kafka.empty() && kafka != "embedded")
    return "--kafka must be 'embedded' or empty";
  if (kafka.empty() && bootstrap_servers.empty()) {
    return "give --bootstrap_servers=host:port or --kafka=embedded";
  }
  return "";
}

absl::StatusOr<std::unique_ptr<KafkaCluster>> OpenKafka(
    const std::string& kafka, const std::string& bootstrap_servers,
    absl::Duration wait, const std::string& kafka_config) {
  if (kafka != "embedded") {
    KafkaConfigMap properties;
    if (!kafka_config.empty()) {
      auto read = ReadKafkaProperties(kafka_config);
      if (!read.ok()) return read.status();
      properties = std::move(*read);
    }
    return KafkaCluster::Connect(bootstrap_servers, wait,
                                 std::move(properties));
  }
  if (!kafka_config.empty()) {
    return absl::InvalidArgumentError(
        "--kafka_config applies to a real cluster, not --kafka=embedded");
  }
  auto c = KafkaCluster::StartEmbedded(1);
  if (c.ok()) {
    LOG(INFO)
        << "embedded Kafka (librdkafka mock cluster) at "
        << (*c)->bootstrap_servers()
        << "; nothing is kept on disk: it is gone when this process exits";
  }
  return c;
}

}  // namespace kwq
