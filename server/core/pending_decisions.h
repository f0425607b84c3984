#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <tuple>
#include <variant>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "kwq/v1/task.pb.h"
#include "kwq/v1/worker.pb.h"
#include "server/core/effects.h"
#include "server/core/task_queues.h"

namespace kwq::scheduler {

// A decision about a task record whose records are being made durable; when
// they are (OnDurable), the record is decided.
struct Decision {
  // The attempt completed: its COMPLETED event and result (the lease stays
  // until then; the worker is acknowledged once they are durable).
  struct Completion {};
  // The attempt ended and the task goes on: the next attempt's record and
  // events. Kept so that a failed hand-off runs the task here instead.
  struct Retry {
    kwq::v1::Task task;
  };
  // The record ends here without running again: dead-lettered (used up its
  // attempts, or not a valid task) or cancelled. Written again if the write
  // fails (the records fit the broker's limit: see SchedulerCore).
  struct Final {
    std::vector<OutRecord> records;
  };
  // A paused job's task copied to the parked topic; kept in memory again if
  // that fails.
  struct Park {
    QueuedTask q;
  };

  RecordPosition pos;
  std::string task_id;
  ConnId ack_conn = 0;  // 0: nobody to acknowledge
  kwq::v1::FencingToken ack_token;
  std::variant<Completion, Retry, Final, Park> what;
};

// The decisions waiting for Kafka, by the cookie of their produce batch.
// Owned by the core; single-threaded.
class PendingDecisions {
 public:
  // Returns the cookie to produce the decision's records with.
  uint64_t Add(Decision d);
  std::optional<Decision> Take(uint64_t cookie);
  // Whether a decision about this record is in flight.
  bool Deciding(const RecordPosition& pos) const {
    return positions_.contains(Key(pos));
  }
  size_t size() const { return by_cookie_.size(); }
  // Decisions in flight about records of these partitions.
  size_t CountIn(
      const std::vector<std::pair<std::string, int32_t>>& partitions) const;

 private:
  using PosKey = std::tuple<std::string, int32_t, int64_t>;
  static PosKey Key(const RecordPosition& p) {
    return {p.topic, p.partition, p.offset};
  }
  uint64_t next_cookie_ = 1;
  absl::flat_hash_map<uint64_t, Decision> by_cookie_;
  absl::flat_hash_map<PosKey, int> positions_;  // decisions per record
};

}  // namespace kwq::scheduler
