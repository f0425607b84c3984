#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "librdkafka/rdkafkacpp.h"
#include "server/kafka/kafka_cluster.h"

namespace kwq::tracker {

// Bounded reads of a topic by a consumer that assigns partitions itself
// (nothing is committed): for the console's on-demand lookups.

// A consumer for these reads of `topic`: its group (`topic`.console) is only a
// label, nothing is committed; end-of-partition events on.
absl::StatusOr<std::unique_ptr<RdKafka::KafkaConsumer>> ScanConsumer(
    const KafkaCluster& cluster, const std::string& topic);

struct OffsetRange {
  int64_t from = 0;  // first offset to read
  int64_t end = 0;   // one past the last
};

// Every partition of `topic` with its [low, high) watermarks. NOT_FOUND when
// the topic does not exist.
absl::StatusOr<std::map<int32_t, OffsetRange>> Watermarks(
    RdKafka::KafkaConsumer* consumer, const std::string& topic,
    absl::Duration timeout);

// Reads each partition's range, calling `fn` for each record; a partition is
// done at the end of its range or when `fn` returns false for one of its
// records. DEADLINE_EXCEEDED when not every partition was done in `timeout`.
absl::Status ScanPartitions(
    RdKafka::KafkaConsumer* consumer, const std::string& topic,
    const std::map<int32_t, OffsetRange>& ranges, absl::Duration timeout,
    const std::function<bool(const RdKafka::Message&)>& fn);

}  // namespace kwq::tracker
