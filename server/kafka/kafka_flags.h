#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/kafka/kafka_cluster.h"

namespace kwq {

// The --kafka / --bootstrap_servers pair every kwq binary takes: an error
// message for a bad combination, or empty.
std::string CheckKafkaFlags(const std::string& kafka,
                            const std::string& bootstrap_servers);

// Opens what the flags name: librdkafka's in-process mock cluster for
// "embedded" (logs that nothing is kept on disk), or the cluster at
// `bootstrap_servers`, waiting at most `wait` for it to answer (UNAVAILABLE
// with the client's last error otherwise).
absl::StatusOr<std::unique_ptr<KafkaCluster>> OpenKafka(
    const std::string& kafka, const std::string& bootstrap_servers,
    absl::Duration wait);

}  // namespace kwq
