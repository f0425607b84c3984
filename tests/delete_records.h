#pragma once

#include <cstdint>
#include <string>

namespace kwq::testing {

// Deletes the records of (topic, partition) below offset `before` with the
// admin API (DeleteRecords: what retention.ms does to old segments). Returns ""
// or what failed.
std::string DeleteRecordsBefore(const std::string& bootstrap,
                                const std::string& topic, int32_t partition,
                                int64_t before);

}  // namespace kwq::testing
