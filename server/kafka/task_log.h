#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace kwq {

// What a consumer group committed for a partition.
struct CommittedPosition {
  std::string topic;
  int32_t partition = 0;
  int64_t offset = -1;  // -1: nothing committed
  std::string metadata;
};

struct LogRecord {
  std::string topic;
  std::string key;
  std::string value;
  // Sent at once: someone waits for it (a Submit, a control request). Records
  // to the consumed topics are always urgent; the rest (status events,
  // results) may wait a few ms to share a request with others (on Kafka:
  // a second producer with linger, measured -20% broker CPU per task).
  bool urgent = false;
  // Part of a large batch whose sender waits for all of it anyway (a Submit of
  // many tasks): shares requests with others even when it goes to a consumed
  // topic (a 1,000-task Submit sent at once took ~50 produce requests).
  bool batched = false;
};

// What the scheduler needs from a log of records: consume a set of topics as
// one member of a consumer group (records in order per partition; nothing
// committed unless told), produce batches and hear once per batch whether all
// of it is durable, commit decided offsets, pause topics while consumption goes
// on. Implemented on Kafka (KafkaTaskLog) and in memory (MemoryTaskLog);
// task_log_contract_test holds both to the same contract. Thread-safe;
// callbacks run on the log's own threads.
class TaskLog {
 public:
  struct Callbacks {
    // A record of a subscribed topic.
    std::function<void(const std::string& topic, int32_t partition,
                       int64_t offset, std::string value)>
        on_record;
    // Partitions are about to be taken away; returns only when the owner
    // dropped them.
    std::function<void(const std::vector<std::pair<std::string, int32_t>>&)>
        on_revoked;
    // Partitions were assigned, with what the group committed for them (offset
    // -1: nothing); called before any of their records, and returns before they
    // come.
    std::function<void(const std::vector<CommittedPosition>&)> on_assigned;
  };
  // How a Produce batch ended: OK when every record is durable; otherwise the
  // first error, and which records (indexes into the batch) are not.
  struct ProduceResult {
    absl::Status status;
    std::vector<size_t> failed;
    bool ok() const { return status.ok(); }
  };
  // Called once per Produce batch, on one of the log's threads.
  using DoneFn = std::function<void(const ProduceResult&)>;

  virtual ~TaskLog() = default;
  // Starts consuming.
  virtual void Start() = 0;
  // Leaves the group without committing anything undecided; flushes produced
  // records (bounded by `timeout`). Idempotent.
  virtual void Stop(absl::Duration timeout) = 0;
  virtual void Produce(std::vector<LogRecord> records, DoneFn done) = 0;
  // `next_offset` of (topic, partition) may be committed (in the background).
  // `metadata` rides with the offset (Kafka's offset commit metadata, < 4 KiB).
  virtual void Commit(const std::string& topic, int32_t partition,
                      int64_t next_offset, const std::string& metadata) = 0;
  // Pauses or resumes delivery from every partition of `topic`.
  virtual void SetTopicPaused(const std::string& topic, bool paused) = 0;
  // Counters for metrics.
  struct Stats {
    int64_t produce_errors = 0;
    int64_t commit_errors = 0;
    // Records in this member's partitions past the group's committed offsets;
    // -1: unknown.
    int64_t consumer_lag = -1;
  };
  virtual Stats GetStats() const { return {}; }
  // Whether this log is a member of its consumer group (takes partitions):
  // an instance with no workers gives its partitions to instances that have
  // some. A member by default; may be called before Start().
  virtual void SetGroupMember(bool member) {}
  // Gets ready to produce to `topics` (so that the first record to each does
  // not wait for metadata). Optional.
  virtual void WarmUp(const std::vector<std::string>& topics) {}
};

}  // namespace kwq
