#pragma once

#include <atomic>
#include <functional>
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

namespace kwq {

struct ParkedReplayerOptions {
  // The compacted topic holding tasks of paused jobs, keyed by task id.
  std::string parked_topic;
  // Consumer group of the scheduler instances (each replays its partitions).
  std::string group;
  // Where a task of priority p goes back to.
  std::function<std::string(int priority)> topic_for_priority;
  // The job ids paused now; read once at the start of each pass.
  std::function<std::set<std::string>()> paused_jobs;
  // A requested pass starts this much later (requests in between join it), so
  // that tasks other instances were parking when the job resumed are durable
  // in the parked topic before it is read.
  absl::Duration settle = absl::Seconds(1);
};

// Moves tasks of resumed (or cancelled) jobs out of the parked topic. A pass
// reads this instance's parked partitions from their committed offsets up to
// their end as of the pass start: a task whose job is no longer paused goes
// back to its priority topic (and a tombstone removes it from the parked
// topic); a task whose job is still paused is written to the parked topic
// again (compaction keeps the newest copy per task id). When all of that is
// acknowledged the pass commits the end offsets. Memory does not grow with the
// number of parked tasks. Passes run on RequestPass() (a job resumed or was
// cancelled) and when partitions are assigned. At least once: a crash in the
// middle of a pass re-reads its records, so a task may go back twice.
class ParkedReplayer {
 public:
  static absl::StatusOr<std::unique_ptr<ParkedReplayer>> Start(
      const KafkaCluster& cluster, ParkedReplayerOptions options);
  ~ParkedReplayer();  // stops

  void RequestPass();
  void Stop();

  int64_t passes() const { return passes_; }
  int64_t replayed() const { return replayed_; }
  int64_t rotated() const { return rotated_; }

 private:
  class Rebalancer;
  class DeliveryCounter;
  ParkedReplayer() = default;
  void Loop();
  void RunPass();
  // Replays one partition from `start` to `end`; false when it did not finish.
  bool ReplayPartition(const std::string& topic, int32_t partition,
                       int64_t start, int64_t end,
                       const std::set<std::string>& paused);

  ParkedReplayerOptions options_;
  std::unique_ptr<Rebalancer> rebalancer_;
  std::unique_ptr<DeliveryCounter> deliveries_;
  std::unique_ptr<RdKafka::KafkaConsumer> consumer_;
  std::unique_ptr<RdKafka::Producer> producer_;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  std::atomic<int64_t> passes_{0}, replayed_{0}, rotated_{0};
  // Owned partitions (loop thread only; the rebalance callback runs there).
  std::vector<int32_t> owned_;
  absl::Mutex mu_;
  absl::Time pass_due_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
};

}  // namespace kwq
