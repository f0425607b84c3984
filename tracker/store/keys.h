#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "kwq/v1/task.pb.h"

// clang-format off
// RocksDB key layout of the tracker. Ids never contain '\0' (they are validated
// to [A-Za-z0-9._:-] by the scheduler; the tracker rejects others), so '\0'
// separates parts and a prefix scan over "<kind>\0<job>\0" sees exactly one
// job.
//
//   t\0<task>                    kwq.v1.TaskStatus
//   x\0<job>\0<task>             (empty)  every task of a job
//   s\0<job>\0<state><task>      (empty)  tasks of a job by current state (one byte)
//   g\0<job>\0<tag>\0<task>      (empty)  tasks of a job by tag "key=value"
//   j\0<job>                     Aggregate of the job
//   a\0<job>\0<tag>              Aggregate of (job, tag)
//   l\0<inverted time><job>      (empty)  jobs, newest first (16 hex digits)
//   h\0<second>                  ThroughputCount (16 hex digits, event time)
//   o\0<topic>\0<partition>      next offset to consume (decimal)
//   c\0                          IngestCounters
// clang-format on
namespace kwq::tracker::keys {

std::string Task(std::string_view task);
std::string JobTask(std::string_view job, std::string_view task);
std::string JobTaskPrefix(std::string_view job);
std::string StateTask(std::string_view job, kwq::v1::TaskState state,
                      std::string_view task);
std::string StateTaskPrefix(std::string_view job, kwq::v1::TaskState state);
std::string TagTask(std::string_view job, std::string_view tag,
                    std::string_view task);
std::string TagTaskPrefix(std::string_view job, std::string_view tag);
std::string Job(std::string_view job);
std::string JobTag(std::string_view job, std::string_view tag);
std::string JobTagPrefix(std::string_view job);
std::string JobList(int64_t first_seen_micros, std::string_view job);
inline constexpr std::string_view kJobListPrefix{"l\0", 2};
std::string Second(int64_t second);
inline constexpr std::string_view kSecondPrefix{"h\0", 2};
std::string Offset(std::string_view topic, int32_t partition);
std::string OffsetPrefix(std::string_view topic);
inline constexpr std::string_view kCounters{"c\0", 2};

// 16 lowercase hex digits, so that keys sort numerically.
std::string Hex16(uint64_t v);
uint64_t ParseHex16(std::string_view s);

}  // namespace kwq::tracker::keys
