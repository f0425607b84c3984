#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "server/kafka/kafka_cluster.h"

namespace kwq::devgrid {

// The sum over `topics` x partitions [0, partitions) of the offsets committed
// by consumer `group` (a partition with no commit counts 0): how many records
// the group decided. Reads only (OffsetFetch); it does not join the group.
absl::StatusOr<int64_t> SumCommittedOffsets(
    const KafkaCluster& cluster, const std::string& group,
    const std::vector<std::string>& topics, int partitions);

// What consumer `group` committed for (topic, partition): offset (-1: nothing)
// and commit metadata. Reads only (OffsetFetch); does not join the group.
absl::StatusOr<std::pair<int64_t, std::string>> CommittedWithMetadata(
    const KafkaCluster& cluster, const std::string& group,
    const std::string& topic, int32_t partition);

}  // namespace kwq::devgrid
