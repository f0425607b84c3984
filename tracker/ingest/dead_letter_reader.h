#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "kwq/v1/task.pb.h"
#include "librdkafka/rdkafkacpp.h"
#include "server/kafka/kafka_cluster.h"

namespace kwq::tracker {

// The newest records of the dead-letter topic (<prefix>.dlq), read on demand
// for the console: per partition at most `scan_per_partition` records back from
// its end (assign and seek; nothing is committed), so a request costs the same
// whatever the topic holds. The last read is reused for `max_age`. Thread-safe.
class DeadLetterReader {
 public:
  struct Letter {
    // Where the dead letter itself is: "topic/partition/offset".
    std::string position;
    kwq::v1::DeadLetter dead_letter;
  };
  struct Options {
    std::string topic;
    int scan_per_partition = 1000;
    absl::Duration max_age = absl::Seconds(2);
    absl::Duration timeout = absl::Seconds(5);
  };
  static absl::StatusOr<std::unique_ptr<DeadLetterReader>> Create(
      const KafkaCluster& cluster, Options options);
  ~DeadLetterReader();

  // Newest first, those of `job` when given (among the newest scanned), at
  // most `limit`. `scanned` (optional) gets how many records were read.
  absl::StatusOr<std::vector<Letter>> Newest(const std::string& job,
                                             size_t limit,
                                             size_t* scanned = nullptr);
  // The newest dead letter of task `task_id` among those scanned.
  absl::StatusOr<std::optional<Letter>> Find(const std::string& task_id);

 private:
  DeadLetterReader() = default;
  // Reads the newest records of every partition (up to where each ended when
  // the call began), calling `fn` for each; a record that is not a DeadLetter
  // comes as one with only a reason saying so.
  absl::Status Scan(const std::function<void(Letter)>& fn)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  Options options_;
  absl::Mutex mu_;
  std::unique_ptr<RdKafka::KafkaConsumer> consumer_ ABSL_GUARDED_BY(mu_);
  std::vector<Letter> letters_ ABSL_GUARDED_BY(mu_);
  absl::Time read_at_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

}  // namespace kwq::tracker
