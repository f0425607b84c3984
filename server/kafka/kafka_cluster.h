#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "librdkafka/rdkafkacpp.h"

struct rd_kafka_s;
struct rd_kafka_mock_cluster_s;

namespace kwq {

using KafkaConfigMap = std::map<std::string, std::string>;

struct TopicSpec {
  std::string name;
  int partitions = 1;
  KafkaConfigMap config;  // e.g. {"cleanup.policy", "compact"}
};

// Where Kafka is: a real cluster reached by bootstrap servers, or librdkafka's
// in-process mock cluster (the embedded dev default; it keeps nothing on disk).
// Owns the mock cluster when embedded. Thread-safe after construction.
class KafkaCluster {
 public:
  // Waits up to `wait` for the cluster at `bootstrap_servers` to answer a
  // metadata request; UNAVAILABLE with the last client error otherwise.
  // `client_properties` (librdkafka settings, e.g. security.protocol,
  // ssl.ca.location, sasl.*) go into every client made for this cluster, the
  // probe included; INVALID_ARGUMENT names a bad one.
  static absl::StatusOr<std::unique_ptr<KafkaCluster>> Connect(
      const std::string& bootstrap_servers, absl::Duration wait,
      KafkaConfigMap client_properties = {});
  // Starts an in-process mock cluster with `brokers` brokers.
  static absl::StatusOr<std::unique_ptr<KafkaCluster>> StartEmbedded(
      int brokers = 1);

  ~KafkaCluster();
  KafkaCluster(const KafkaCluster&) = delete;
  KafkaCluster& operator=(const KafkaCluster&) = delete;

  const std::string& bootstrap_servers() const { return bootstrap_; }
  bool embedded() const { return mock_ != nullptr; }
  // The mock cluster (embedded only, else null): tests inject broker errors
  // with rdkafka_mock.h.
  rd_kafka_mock_cluster_s* mock_cluster() const { return mock_; }

  // Creates the topics that do not exist yet (existing ones are left as they
  // are).
  absl::Status EnsureTopics(const std::vector<TopicSpec>& topics,
                            absl::Duration timeout) const;

  // Deletes every topic whose name starts with `prefix` (a throwaway grid's
  // topics, e.g. `kwqctl simulate` on a shared broker). Returns how many.
  absl::StatusOr<int> DeleteTopicsWithPrefix(const std::string& prefix,
                                             absl::Duration timeout) const;

  // The base client configuration for this cluster (bootstrap servers, sane
  // timeouts, and the client properties given to Connect); callers add their
  // own settings on top.
  KafkaConfigMap ClientConfig() const;

  // ClientConfig plus the consumer settings kwq always uses: the group, manual
  // offset store and commit (nothing is committed merely because it was
  // received), earliest reset, and a short session timeout (a restarted member
  // rejoins quickly).
  KafkaConfigMap ConsumerConfig(const std::string& group) const;

 private:
  KafkaCluster(std::string bootstrap, rd_kafka_s* mock_host,
               rd_kafka_mock_cluster_s* mock,
               KafkaConfigMap client_properties = {})
      : bootstrap_(std::move(bootstrap)),
        client_properties_(std::move(client_properties)),
        mock_host_(mock_host),
        mock_(mock) {}

  std::string bootstrap_;
  KafkaConfigMap client_properties_;
  rd_kafka_s* mock_host_ = nullptr;
  rd_kafka_mock_cluster_s* mock_ = nullptr;
};

// Reads a librdkafka properties file: `key=value` lines (spaces around both
// trimmed), blank lines and lines starting with '#' ignored. INVALID_ARGUMENT
// names the file and line of anything else; NOT_FOUND if it cannot be read.
absl::StatusOr<KafkaConfigMap> ReadKafkaProperties(const std::string& path);

// Builds an RdKafka::Conf from key/value settings; INVALID_ARGUMENT names a bad
// key.
absl::StatusOr<std::unique_ptr<RdKafka::Conf>> MakeKafkaConf(
    const KafkaConfigMap& settings);

// Merges `overrides` on top of `base`.
KafkaConfigMap MergeConfig(KafkaConfigMap base,
                           const KafkaConfigMap& overrides);

}  // namespace kwq
