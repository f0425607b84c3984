#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "librdkafka/rdkafkacpp.h"
#include "server/kafka/kafka_cluster.h"
#include "tracker/store/tracker_store.h"

namespace kwq::tracker {

struct IngestOptions {
  std::string topic = "kwq.events";
  // Partitions of the topic when the tracker has to create it (same default as
  // the scheduler's --partitions).
  int partitions = 4;
  // A batch is applied when it has this many events or is this old, whichever
  // first. The wait is also the longest the broker holds a fetch for the
  // tracker, so a lone event is applied within about twice this.
  int max_batch_events = 10000;
  absl::Duration max_batch_wait = absl::Milliseconds(50);
  // How often the topic's metadata is checked for partitions added since
  // (read from their start).
  absl::Duration partition_check_period = absl::Seconds(10);
};

// Reads every partition of the events topic from the offsets the store holds
// (or the beginning), and partitions added to it later (checked every
// partition_check_period), and applies the events to the store in batches,
// each batch together with the offsets after it. Partitions are assigned
// explicitly: one tracker reads all partitions (the group id is only a label;
// nothing is committed to Kafka). Thread-safe.
class EventIngestor {
 public:
  static absl::StatusOr<std::unique_ptr<EventIngestor>> Start(
      const KafkaCluster& cluster, TrackerStore* store, IngestOptions options);
  ~EventIngestor();
  void Stop();
  // OK while ingest runs; the error that stopped it otherwise.
  absl::Status status() const;
  // Events consumed but not yet applied, plus the distance of each partition's
  // position to its end as last reported by the broker (0 when caught up).
  // Updated every 200 ms.
  int64_t lag() const { return lag_; }
  // Seconds between now and the Kafka timestamp of the newest event applied,
  // while lag() > 0 (0 when caught up): how far behind the view is in time.
  double lag_seconds() const;
  // Events the broker deleted (retention.ms, DeleteRecords) before this
  // tracker read them: offsets skipped after the stored offset or between two
  // events (the topic's offsets are contiguous). The view then misses their
  // effects; each gap is logged as an error.
  int64_t unread_events() const { return unread_events_; }

 private:
  EventIngestor() = default;
  void Loop();
  // Assigns the topic's partitions not assigned yet, each from its stored
  // offset or its start; waits up to `wait` for the topic's metadata.
  absl::Status AssignNewPartitions(absl::Duration wait);
  int64_t BrokerLag();
  // Counts the offsets skipped before `offset` in `partition` (unread_events).
  void CheckContiguous(int32_t partition, int64_t offset);
  // Whether every partition's position reached its end offset (asked of the
  // broker now): the store's view is current (TrackerStore::SetViewCurrent).
  bool AtEndOffsets();
  std::vector<int32_t> partitions_;  // assigned (all of the topic's)

  TrackerStore* store_ = nullptr;
  IngestOptions options_;
  std::unique_ptr<RdKafka::KafkaConsumer> consumer_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> lag_{0};
  std::atomic<int64_t> newest_applied_ms_{0};  // Kafka timestamp, ms
  std::atomic<int64_t> unread_events_{0};
  // Per partition read from a stored offset: the offset its next event should
  // have (the ingest thread's, and Start's before that thread runs).
  std::map<int32_t, int64_t> next_expected_;
  mutable absl::Mutex mu_;
  absl::Status status_ ABSL_GUARDED_BY(mu_);
};

}  // namespace kwq::tracker
