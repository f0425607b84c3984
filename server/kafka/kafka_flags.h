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
// with the client's last error otherwise). `kafka_config`, when not empty, is
// a librdkafka properties file (see ReadKafkaProperties) applied to every
// client, e.g. TLS or SASL settings; it is an error with "embedded".
absl::StatusOr<std::unique_ptr<KafkaCluster>> OpenKafka(
    const std::string& kafka, const std::string& bootstrap_servers,
    absl::Duration wait, const std::string& kafka_config = "");

// The help text of the --kafka_config flag, the same in every binary.
inline constexpr char kKafkaConfigHelp[] =
    "a librdkafka properties file (key=value lines, # comments) applied to "
    "every Kafka client, e.g. security.protocol=SASL_SSL, ssl.ca.location=..., "
    "sasl.mechanisms=PLAIN, sasl.username=..., sasl.password=...; empty: none";

}  // namespace kwq
