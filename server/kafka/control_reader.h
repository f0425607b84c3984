#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "librdkafka/rdkafkacpp.h"
#include "server/kafka/kafka_cluster.h"

namespace kwq {

// Reads the compacted control topic from its beginning and keeps following it,
// handing every record (key, value; an empty value is a tombstone) to
// `on_record`. Every scheduler instance reads all of it (explicit assignment,
// no group, no commits).
class ControlReader {
 public:
  using OnRecord =
      std::function<void(const std::string& key, const std::string& value)>;
  // Returns once every record present at start was delivered (so that a
  // restarted scheduler obeys pauses and cancels before it dispatches
  // anything), or UNAVAILABLE after `catch_up` without getting there.
  static absl::StatusOr<std::unique_ptr<ControlReader>> Start(
      const KafkaCluster& cluster, const std::string& topic, OnRecord on_record,
      absl::Duration catch_up);
  ~ControlReader();
  void Stop();

 private:
  ControlReader() = default;
  bool Poll(int timeout_ms);  // delivers at most one record; true if it did
  std::unique_ptr<RdKafka::KafkaConsumer> consumer_;
  OnRecord on_record_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
};

}  // namespace kwq
