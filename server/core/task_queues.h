#pragma once

#include <array>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "kwq/v1/task.pb.h"
#include "server/api/priorities.h"
#include "server/core/effects.h"

namespace kwq::scheduler {

// A task record held here and not running.
struct QueuedTask {
  RecordPosition pos;
  kwq::v1::Task task;
  // When dispatch first passed it over to wait for a worker holding one of its
  // affinity keys (the wait counts from there); InfiniteFuture: not yet.
  absl::Time hold_start = absl::InfiniteFuture();
  // A PENDING event saying why it cannot run was written (ReportWaiting).
  bool waiting_reported = false;
  // The task as a worker receives it, serialised: the record's own bytes when
  // the core changed nothing in it (the usual case), so that an assignment
  // carries them as they are instead of copying and re-serialising `task`.
  // Empty: serialise `task` (a retry kept here after a failed hand-off, a
  // record the core completed).
  std::string wire;
};

// The tasks this instance holds and does not run, per priority: ready (in
// arrival order, what dispatch scans), delayed (waiting for their retry
// backoff) and parked in memory (of paused jobs, out of the dispatch scan),
// with the backpressure state of each priority. Owned by the core;
// single-threaded.
class TaskQueues {
 public:
  enum class Where { kReady, kDelayed, kParked };
  using Pred = std::function<bool(const QueuedTask&)>;

  std::deque<QueuedTask>& ready(int p) { return ready_[p]; }
  const std::deque<QueuedTask>& ready(int p) const { return ready_[p]; }
  void PushReady(QueuedTask q);
  void PushDelayed(absl::Time due, QueuedTask q);
  void Park(QueuedTask q);
  // Moves the delayed tasks due by `now` to the end of their ready queues.
  void ReleaseDue(absl::Time now);
  // Moves a resumed job's parked tasks back to their ready queues.
  void Unpark(const std::string& job_id);

  // Removes every task for which `pred` is true, wherever it waits.
  struct Removed {
    Where where;
    QueuedTask q;
  };
  std::vector<Removed> RemoveIf(const Pred& pred);
  // Removes and returns the first ready or parked task (not a delayed one)
  // with this id and attempt.
  std::optional<QueuedTask> Take(const std::string& task_id, int attempt);
  // The task with this id, wherever it waits (delayed first: a retry's newer
  // attempt), or nullopt.
  struct Found {
    Where where;
    const QueuedTask* q;
    absl::Time due;  // kDelayed: when its backoff ends
  };
  std::optional<Found> Find(const std::string& task_id) const;

  // Ready plus delayed tasks of a priority (what backpressure bounds; parked
  // ones have their own cap).
  size_t buffered(int p) const { return ready_[p].size() + delayed_count_[p]; }
  size_t buffered() const;
  int parked(int p) const { return parked_count_[p]; }
  // Pauses a priority's partitions at `limit` buffered tasks and resumes them
  // at half of it: the new state when it changes.
  std::optional<bool> UpdateBackpressure(int p, int limit);

 private:
  std::array<std::deque<QueuedTask>, api::kNumPriorities> ready_;
  std::multimap<absl::Time, QueuedTask> delayed_;
  std::array<int, api::kNumPriorities> delayed_count_{};
  std::map<std::string, std::deque<QueuedTask>> parked_;  // by job
  std::array<int, api::kNumPriorities> parked_count_{};
  std::array<bool, api::kNumPriorities> backpressured_{};
};

}  // namespace kwq::scheduler
