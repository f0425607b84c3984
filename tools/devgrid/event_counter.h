#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "librdkafka/rdkafkacpp.h"
#include "server/kafka/kafka_cluster.h"

namespace kwq::devgrid {

// Reads `<prefix>.events` from the beginning in the background and counts, per
// task, the COMPLETED and FAILED events, and submit-to-start latencies.
// Thread-safe.
class EventCounter {
 public:
  static absl::StatusOr<std::unique_ptr<EventCounter>> Start(
      const KafkaCluster& cluster, const std::string& topic);
  ~EventCounter();

  int64_t completed_tasks() const;  // tasks with at least one COMPLETED event
  int64_t duplicates() const;  // COMPLETED events beyond the first per task
  int64_t failed_tasks() const;
  int64_t cancelled_tasks() const;
  int64_t retries() const;  // PENDING events with attempt > 1
  int64_t events() const;
  // Submit (PENDING attempt 1) to first RUNNING, in milliseconds, of tasks seen
  // so far.
  std::vector<double> StartLatenciesMs() const;
  // Tasks that completed more than once, by id.
  std::map<std::string, int> CompletedCounts() const;
  std::set<std::string> FailedIds() const;
  // The latest "waiting" note (why a queued task cannot run) per task.
  std::map<std::string, std::string> Waiting() const;
  // Tasks seen (any event) with no COMPLETED or FAILED event yet, with the
  // states their events went through, e.g. "PENDING/1 ALLOCATED/1 RUNNING/1".
  // For failure messages.
  std::map<std::string, std::string> Unfinished() const;
  // Blocks until `pred` holds or `timeout` passes; returns whether it held.
  bool WaitFor(const std::function<bool(const EventCounter&)>& pred,
               absl::Duration timeout);

 private:
  EventCounter() = default;
  void Loop();
  std::unique_ptr<RdKafka::KafkaConsumer> consumer_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  mutable absl::Mutex mu_;
  std::map<std::string, int> completed_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> failed_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> cancelled_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::string> waiting_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int64_t> submit_us_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, double> start_ms_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::string> open_
      ABSL_GUARDED_BY(mu_);                 // see Unfinished()
  std::map<int32_t, int64_t> next_offset_;  // per partition; Loop() only
  int64_t retries_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t events_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace kwq::devgrid
