#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "server/core/effects.h"
#include "server/core/offset_tracker.h"

namespace kwq::scheduler {

// Which priority partitions this instance owns, and per partition which records
// it received and which of them are decided (their decision is durable): the
// commits (the decided prefix plus the decided records above it, in the commit
// metadata) and the records to skip when they come again. Owned by the core;
// single-threaded.
//
// A decision may become durable while its partition is away (revoked, not yet
// given back) or before its record came again after a re-assignment. Neither
// is lost: it is remembered (bounded) and the record is skipped when it
// arrives, here or after the partition comes back.
class PartitionLedger {
 public:
  using TopicPartition = std::pair<std::string, int32_t>;
  struct Assigned {
    std::string topic;
    int32_t partition = 0;
    int64_t committed = -1;  // -1: nothing committed
    std::string metadata;    // OffsetTracker::DecidedAboveMetadata
  };
  // At most this many decided offsets are remembered for partitions away or
  // records not come yet (beyond: the oldest are forgotten, and those records
  // run again; nothing is lost).
  static constexpr size_t kMaxRemembered = 1'000'000;

  // A record arrived. false: this owner has it already (a rewound consumer).
  bool Received(const RecordPosition& pos);
  // Whether an earlier owner (the commit metadata) or this instance (a
  // decision made durable while the partition was away) decided the record:
  // then it is decided now and must not run. Call after Received.
  bool DecidedBefore(const RecordPosition& pos);
  // The record's decision is durable.
  void Decide(const RecordPosition& pos);
  bool Owns(const std::string& topic, int32_t partition) const {
    return offsets_.count({topic, partition}) > 0;
  }
  // The commits due since the last call: one per partition whose decided
  // records changed (built once per tick: the metadata walks the partition's
  // open records).
  std::vector<Effects::Commit> TakeCommits();

  void OnAssigned(const std::vector<Assigned>& partitions);
  void OnRevoked(const std::vector<TopicPartition>& partitions);

  // For tests and metrics.
  size_t remembered() const { return remembered_; }
  // Records this instance never read: offsets skipped between where it started
  // a partition (the committed offset; unknown when nothing was committed) or
  // the last record it got, and the next record it got. kwq's topics have
  // contiguous offsets (no compaction, no transactions), so a gap means records
  // were deleted (retention.ms or DeleteRecords) before they were decided:
  // their tasks are lost. Each gap is logged as an error naming its offsets.
  int64_t unread_records() const { return unread_records_; }

 private:
  void Remember(const TopicPartition& tp, int64_t offset);

  // Owned partitions; looked up per record (a hash map: an ordered one
  // compared topic names' long common prefixes).
  absl::flat_hash_map<TopicPartition, OffsetTracker> offsets_;
  // Decided records not received (yet) by the current owner of their
  // partition, here: skipped when they come. For partitions away, kept until
  // they come back.
  std::map<TopicPartition, std::set<int64_t>> skip_;
  size_t remembered_ = 0;
  // The decided prefix of partitions taken away (its commit may have failed):
  // if one comes back with a lower committed offset, the records between are
  // skipped.
  std::map<TopicPartition, int64_t> revoked_prefix_;
  std::set<TopicPartition> commit_due_;
  int64_t unread_records_ = 0;
};

}  // namespace kwq::scheduler
