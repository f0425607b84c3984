#pragma once

#include <deque>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "server/kafka/task_log.h"

namespace kwq {

// Topics of partitioned records and consumer-group offsets in memory: the
// broker behind MemoryTaskLog, for fast tests of code that talks to a TaskLog.
// One member per group at a time (no rebalancing). Thread-safe.
class MemoryBroker {
 public:
  void CreateTopic(const std::string& topic, int partitions);
  // Appends to the key's partition (a stable hash of the key, like Kafka's
  // default partitioner in spirit); INVALID_ARGUMENT for an unknown topic.
  absl::StatusOr<std::pair<int32_t, int64_t>> Append(const LogRecord& record);
  int partitions(const std::string& topic) const;
  // One stored record.
  struct Stored {
    std::string key;
    std::string value;  // empty: a tombstone
  };
  // Records of (topic, partition) from `from` (at most `max`), and the
  // partition's end offset.
  std::vector<Stored> Read(const std::string& topic, int32_t partition,
                           int64_t from, size_t max, int64_t* end) const;
  // Blocks until something is appended after `seen` (a value of appended()) or
  // `timeout` passes.
  int64_t appended() const;
  void AwaitAppend(int64_t seen, absl::Duration timeout) const;
  // Committed next offset of (group, topic, partition), or 0.
  int64_t Committed(const std::string& group, const std::string& topic,
                    int32_t partition) const;
  void Commit(const std::string& group, const std::string& topic,
              int32_t partition, int64_t next_offset,
              const std::string& metadata = "");
  std::string CommittedMetadata(const std::string& group,
                                const std::string& topic,
                                int32_t partition) const;

 private:
  friend class MemoryTaskLog;
  mutable absl::Mutex mu_;
  std::map<std::string, std::vector<std::vector<Stored>>> topics_
      ABSL_GUARDED_BY(mu_);
  std::map<std::tuple<std::string, std::string, int32_t>, int64_t> committed_
      ABSL_GUARDED_BY(mu_);
  std::map<std::tuple<std::string, std::string, int32_t>, std::string> metadata_
      ABSL_GUARDED_BY(mu_);
  int64_t appended_ ABSL_GUARDED_BY(mu_) =
      0;  // changes on every append (for waiting)
};

// TaskLog in memory over a MemoryBroker: one consumer thread delivers records
// of the group's topics in order per partition from the committed offsets;
// Produce appends and reports durability on a separate callback thread, as
// Kafka does.
class MemoryTaskLog final : public TaskLog {
 public:
  MemoryTaskLog(MemoryBroker* broker, std::string group,
                std::vector<std::string> topics, Callbacks callbacks);
  ~MemoryTaskLog() override;
  void Start() override;
  void Stop(absl::Duration timeout) override;
  void Produce(std::vector<LogRecord> records, DoneFn done) override;
  void Commit(const std::string& topic, int32_t partition, int64_t next_offset,
              const std::string& metadata) override;
  void SetTopicPaused(const std::string& topic, bool paused) override;

 private:
  void ConsumeLoop();
  void DoneLoop();

  MemoryBroker* broker_;
  const std::string group_;
  const std::vector<std::string> topics_;
  Callbacks callbacks_;
  std::thread consume_thread_, done_thread_;
  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::set<std::string> paused_ ABSL_GUARDED_BY(mu_);
  std::deque<std::pair<DoneFn, ProduceResult>> done_queue_ ABSL_GUARDED_BY(mu_);
};

}  // namespace kwq
