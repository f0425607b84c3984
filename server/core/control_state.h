#pragma once

#include <cstddef>
#include <deque>
#include <map>
#include <set>
#include <string>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "kwq/v1/control.pb.h"
#include "kwq/v1/task.pb.h"

namespace kwq::scheduler {

// The longest `requested_by` kept in a control record.
inline constexpr size_t kMaxRequestedByBytes = 256;

// One record of <prefix>.control, decoded and checked.
struct ControlChange {
  enum class Kind {
    kPauseAll,
    kPausePriority,
    kPauseJob,
    kCancelJob,
    kCancelTask
  };
  Kind kind = Kind::kPauseAll;
  bool set = false;   // false: lifted (a tombstone)
  int priority = -1;  // kPausePriority
  std::string id;     // the job or task id of the job and task kinds
  std::string requested_by;
};

// Pause and cancel state that every instance obeys (from <prefix>.control),
// the codec of its records, and the jobs this instance has seen. Owned by
// the core; single-threaded.
class ControlState {
 public:
  explicit ControlState(size_t known_jobs_cap)
      : known_jobs_cap_(known_jobs_cap) {}

  // The record key of a scope: "pause/all", "pause/p3", "pause/job/<id>",
  // "cancel/job/<id>", "cancel/task/<id>"; empty for an invalid scope.
  static std::string Key(const kwq::v1::Scope& scope, bool cancel);
  // INVALID_ARGUMENT naming what is wrong with a Pause/Resume (`cancel`
  // false) or Cancel request's scope and requested_by.
  static absl::Status ValidateRequest(const kwq::v1::Scope& scope, bool cancel,
                                      const std::string& requested_by);
  // Decodes a record of the control topic. An empty value is a tombstone;
  // anything else must be a ControlRecord whose scope and flags match the
  // key. Everything else (an unknown key, a value that does not parse or
  // contradicts its key) is an error: the record is ignored, never read as a
  // tombstone.
  static absl::StatusOr<ControlChange> Decode(const std::string& key,
                                              const std::string& value);

  void Apply(const ControlChange& change);

  bool IsPaused(const kwq::v1::Task& task) const {
    return paused_all_ || paused_priorities_.count(task.priority()) > 0 ||
           paused_jobs_.count(task.job_id()) > 0;
  }
  bool IsCancelled(const kwq::v1::Task& task) const {
    return cancelled_jobs_.count(task.job_id()) > 0 ||
           cancelled_tasks_.count(task.id()) > 0;
  }
  // Who cancelled the task (its own cancel first, then its job's); empty
  // when unknown.
  std::string CancelledBy(const kwq::v1::Task& task) const;
  bool all_paused() const { return paused_all_; }
  bool priority_paused(int p) const { return paused_priorities_.count(p) > 0; }
  bool job_paused(const std::string& job) const {
    return paused_jobs_.count(job) > 0;
  }
  const std::set<std::string>& paused_jobs() const { return paused_jobs_; }

  // Jobs seen (records, Submits, <prefix>.jobs): the last `known_jobs_cap`.
  void RememberJob(const std::string& job_id);
  bool KnowsJob(const std::string& job_id) const {
    return known_jobs_.count(job_id) > 0;
  }

 private:
  bool paused_all_ = false;
  std::set<int> paused_priorities_;
  std::set<std::string> paused_jobs_;
  std::map<std::string, std::string> cancelled_jobs_;   // job -> who
  std::map<std::string, std::string> cancelled_tasks_;  // task -> who
  size_t known_jobs_cap_;
  absl::flat_hash_set<std::string> known_jobs_;  // looked up per task
  std::deque<std::string> known_jobs_order_;
};

}  // namespace kwq::scheduler
