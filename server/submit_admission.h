#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/numeric/int128.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "google/protobuf/timestamp.pb.h"
#include "kwq/v1/scheduler.pb.h"
#include "server/api/task_validation.h"
#include "server/api/topics.h"
#include "server/kafka/task_log.h"

namespace kwq::scheduler {

// What a Submit writes, decided before anything is produced: the new tasks
// (ids made where missing, ids seen within the dedup window left out), the
// first registration of each job in <prefix>.jobs, and the records in the
// order they go out. No I/O; thread-safe.
class SubmitAdmission {
 public:
  struct Options {
    std::string scheduler_id;
    std::string topic_prefix = "kwq";
    api::ValidationLimits limits;
    size_t dedup_window_ids = 1'000'000;
    size_t known_jobs = 100'000;  // job registrations remembered
    // Submits of at least this many tasks are produced batched (one request
    // per partition rather than one per record).
    int batched_from_tasks = 64;
  };
  explicit SubmitAdmission(Options options);

  struct Plan {
    // Written first: job registrations and the task records.
    std::vector<LogRecord> first;
    // The new tasks' ids, and the index in `first` of each one's record.
    std::vector<std::string> ids;
    std::vector<size_t> task_record;
    // Each new task's PENDING event (same order as `ids`), written once its
    // record is durable, so that no PENDING names a task Kafka refused.
    std::vector<LogRecord> pending_events;
    // Jobs registered by this Submit.
    std::vector<std::string> new_jobs;
  };

  // INVALID_ARGUMENT / RESOURCE_EXHAUSTED for a bad batch or task (naming
  // it); otherwise the plan, with `response` filled (task_ids, duplicate_ids).
  // `submitter` goes into the job registrations.
  absl::Status Admit(const kwq::v1::SubmitRequest& request,
                     const std::string& submitter,
                     const google::protobuf::Timestamp& now,
                     kwq::v1::SubmitResponse* response, Plan* plan);

  // The records of `ids` (and `jobs`' registrations) were not durable: a retry
  // with the same ids must queue them again.
  void Forget(const std::vector<std::string>& ids,
              const std::vector<std::string>& jobs);

 private:
  using IdFingerprint = absl::uint128;
  std::string NewTaskId();
  // Whether `id` was seen recently; remembers it.
  bool SeenRecentlyLocked(const std::string& id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool FirstSubmitOfJob(const std::string& job);

  const Options options_;
  const api::Topics topics_;
  std::atomic<uint64_t> next_id_{0};
  absl::Mutex mu_;
  // The dedup window holds 128-bit fingerprints of the ids, not each id
  // twice as a string (submit_admission_bench, 1.2M ids through a window of
  // a million: peak RSS 206 -> 86 MB). Two ids share one with a chance of
  // ~1e-33 per id in a full window (then the second is answered a duplicate).
  absl::flat_hash_set<IdFingerprint> seen_ ABSL_GUARDED_BY(mu_);
  std::deque<IdFingerprint> seen_order_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<std::string> registered_ ABSL_GUARDED_BY(mu_);
  std::deque<std::string> registered_order_ ABSL_GUARDED_BY(mu_);
};

}  // namespace kwq::scheduler
