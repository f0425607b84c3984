#include "tracker/ingest/result_reader.h"

#include <algorithm>
#include <map>
#include <optional>
#include <vector>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"
#include "tracker/ingest/partition_scan.h"

namespace kwq::tracker {

absl::StatusOr<std::unique_ptr<ResultReader>> ResultReader::Create(
    const KafkaCluster& cluster, Options options) {
  std::unique_ptr<ResultReader> r(new ResultReader());
  r->options_ = std::move(options);
  r->options_.scan_per_partition =
      std::clamp(r->options_.scan_per_partition, 1, 1000000);
  auto consumer = ScanConsumer(cluster, r->options_.topic);
  if (!consumer.ok()) return consumer.status();
  absl::MutexLock lock(&r->mu_);
  r->consumer_ = std::move(*consumer);
  return r;
}

ResultReader::~ResultReader() {
  absl::MutexLock lock(&mu_);
  if (consumer_) consumer_->close();
}

absl::StatusOr<ResultReader::Found> ResultReader::Find(
    const std::string& task_id, int attempt, absl::Time finished) {
  absl::MutexLock lock(&mu_);
  auto ranges = Watermarks(consumer_.get(), options_.topic, options_.timeout);
  if (absl::IsNotFound(ranges.status())) {
    return absl::NotFoundError("no results were ever written");
  }
  if (!ranges.ok()) return ranges.status();
  // Where the window starts in each partition; without an answer (a broker
  // that cannot look up times), the newest scan_per_partition records.
  std::vector<RdKafka::TopicPartition*> times;
  for (const auto& [p, r] : *ranges) {
    times.push_back(RdKafka::TopicPartition::create(
        options_.topic, p, absl::ToUnixMillis(finished - options_.before)));
  }
  const bool by_time =
      consumer_->offsetsForTimes(
          times,
          static_cast<int>(absl::ToInt64Milliseconds(options_.timeout))) ==
      RdKafka::ERR_NO_ERROR;
  for (auto* tp : times) {
    OffsetRange& r = (*ranges)[tp->partition()];
    if (by_time && tp->err() == RdKafka::ERR_NO_ERROR && tp->offset() >= 0) {
      r.from = std::max(r.from, tp->offset());
    } else {
      // No record at or after the time (or no answer: librdkafka's mock
      // cluster does not look up times): the newest records.
      r.from = std::max(r.from, r.end - options_.scan_per_partition);
    }
    r.end = std::min(r.end, r.from + options_.scan_per_partition);
    VLOG(1) << "result of " << task_id << ": " << options_.topic << "/"
            << tp->partition() << " from " << r.from << " to " << r.end
            << (by_time ? " (offset for time " : " (no time lookup ")
            << tp->offset() << ")";
  }
  RdKafka::TopicPartition::destroy(times);
  const int64_t until_ms = absl::ToUnixMillis(finished + options_.after);
  std::optional<Found> found;
  absl::Status s = ScanPartitions(
      consumer_.get(), options_.topic, *ranges, options_.timeout,
      [&](const RdKafka::Message& m) {
        if (found) return false;
        const auto ts = m.timestamp();
        if (by_time &&
            ts.type != RdKafka::MessageTimestamp::MSG_TIMESTAMP_NOT_AVAILABLE &&
            ts.timestamp > until_ms) {
          return false;  // past the window
        }
        kwq::v1::TaskResult r;
        if (!r.ParseFromArray(m.payload(), static_cast<int>(m.len())) ||
            r.task_id() != task_id || (attempt > 0 && r.attempt() != attempt)) {
          return true;
        }
        Found f;
        f.size = static_cast<int64_t>(r.result().size());
        if (r.result().size() > options_.preview_bytes) {
          r.mutable_result()->resize(options_.preview_bytes);
        }
        f.result = std::move(r);
        f.position =
            absl::StrCat(options_.topic, "/", m.partition(), "/", m.offset());
        found = std::move(f);
        return false;
      });
  if (found) return *found;
  if (!s.ok()) return s;
  return absl::NotFoundError(
      absl::StrCat("no result of ", task_id,
                   " among the results written around its finish"));
}

}  // namespace kwq::tracker
