#pragma once

#include <cstddef>
#include <string>
#include <string_view>

// The size limits kwq applies to what clients, workers and producers send,
// chosen so that whatever kwq accepts it can also store in Kafka (see
// proto/README.md, "Limits"). The record limit itself comes from the
// producer's message.max.bytes and the topics' max.message.bytes at start.
namespace kwq::api {

// Ids: task, job, worker, lease (1-128 of [A-Za-z0-9._:-]).
inline constexpr size_t kMaxIdBytes = 128;
// Error text of an attempt kept in events, dead letters and the tracker;
// longer text is cut with a marker.
inline constexpr size_t kMaxErrorBytes = 16 * 1024;
// Labels and affinity keys a worker may announce, and each one's length.
inline constexpr int kMaxWorkerLabels = 64;
inline constexpr int kMaxWorkerAffinityKeys = 256;
// The most tokens a hello may list in `in_flight`: what a worker still runs
// (at most slots + prefetch) plus the completions it holds unacknowledged
// (under load, tens per slot wait for durability when the scheduler dies),
// never more than 10,000 (a hello's memory stays bounded). A worker with
// more lists its running tasks first (proto/README.md).
inline int MaxHelloInFlight(int slots, int prefetch) {
  const long long n = 16LL * (static_cast<long long>(slots) + prefetch) + 1024;
  return static_cast<int>(n < 10000 ? n : 10000);
}
inline constexpr size_t kMaxKeyBytes = 128;
// Room a record needs besides its payload or result (ids, tags, keys, times,
// error text): a payload or result may use the record limit minus this.
inline constexpr size_t kRecordOverheadBytes = 64 * 1024;
// librdkafka's default message.max.bytes, the record limit when nothing
// larger is configured.
inline constexpr size_t kDefaultMaxRecordBytes = 1'000'000;

// `text` cut to at most `max` bytes (at a UTF-8 character boundary), ending
// with a marker that says how many bytes were cut; `text` itself when it fits.
std::string Truncated(std::string_view text, size_t max);

}  // namespace kwq::api
