#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "kwq/v1/task.pb.h"
#include "librdkafka/rdkafkacpp.h"
#include "server/kafka/kafka_cluster.h"

namespace kwq::tracker {

// A finished task's result, for the console's preview. The tracker does not
// keep results; they are in <prefix>.results, keyed by job. The result record
// is written when the completion reaches the scheduler, with the COMPLETED
// event, so it is looked up near that time: in each partition from the first
// record at (finished - before) (Kafka's offsets for times) up to
// (finished + after), at most scan_per_partition records. Bounded whatever the
// topic holds; a result outside that window is not found (kwqctl job results
// reads them all). Thread-safe (one lookup at a time).
class ResultReader {
 public:
  struct Options {
    std::string topic;
    int scan_per_partition = 20000;
    absl::Duration before = absl::Seconds(2);
    absl::Duration after = absl::Seconds(10);
    absl::Duration timeout = absl::Seconds(5);
    size_t preview_bytes = 1024;
  };
  struct Found {
    kwq::v1::TaskResult result;  // result() cut to preview_bytes
    int64_t size = 0;            // the whole result's size
    std::string position;        // "topic/partition/offset"
  };
  static absl::StatusOr<std::unique_ptr<ResultReader>> Create(
      const KafkaCluster& cluster, Options options);
  ~ResultReader();

  // The result of `task_id`'s attempt `attempt` (0: any attempt) that finished
  // at `finished`. NOT_FOUND when it is not within the window.
  absl::StatusOr<Found> Find(const std::string& task_id, int attempt,
                             absl::Time finished);

 private:
  ResultReader() = default;
  Options options_;
  absl::Mutex mu_;
  std::unique_ptr<RdKafka::KafkaConsumer> consumer_ ABSL_GUARDED_BY(mu_);
};

}  // namespace kwq::tracker
