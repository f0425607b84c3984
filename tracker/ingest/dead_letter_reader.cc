#include "tracker/ingest/dead_letter_reader.h"

#include <algorithm>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "glog/logging.h"
#include "tracker/ingest/partition_scan.h"

namespace kwq::tracker {

absl::StatusOr<std::unique_ptr<DeadLetterReader>> DeadLetterReader::Create(
    const KafkaCluster& cluster, Options options) {
  std::unique_ptr<DeadLetterReader> r(new DeadLetterReader());
  r->options_ = std::move(options);
  r->options_.scan_per_partition =
      std::clamp(r->options_.scan_per_partition, 1, 100000);
  auto consumer = ScanConsumer(cluster, r->options_.topic);
  if (!consumer.ok()) return consumer.status();
  absl::MutexLock lock(&r->mu_);
  r->consumer_ = std::move(*consumer);
  return r;
}

DeadLetterReader::~DeadLetterReader() {
  absl::MutexLock lock(&mu_);
  if (consumer_) consumer_->close();
}

absl::Status DeadLetterReader::Scan(const std::function<void(Letter)>& fn) {
  auto ranges = Watermarks(consumer_.get(), options_.topic, options_.timeout);
  if (absl::IsNotFound(ranges.status())) {
    return absl::OkStatus();  // nothing was ever dead-lettered
  }
  if (!ranges.ok()) return ranges.status();
  for (auto& [p, r] : *ranges) {
    r.from = std::max(r.from, r.end - options_.scan_per_partition);
  }
  return ScanPartitions(
      consumer_.get(), options_.topic, *ranges, options_.timeout,
      [&](const RdKafka::Message& m) {
        Letter l;
        l.position =
            absl::StrCat(options_.topic, "/", m.partition(), "/", m.offset());
        if (!l.dead_letter.ParseFromArray(m.payload(),
                                          static_cast<int>(m.len()))) {
          l.dead_letter.Clear();
          l.dead_letter.set_reason("(this record is not a kwq.v1.DeadLetter)");
        }
        fn(std::move(l));
        return true;
      });
}

namespace {
// A letter for a list: the task's payload and the raw record left out (a
// thousand of them must not hold megabytes), long texts cut.
void Trim(DeadLetterReader::Letter* l) {
  kwq::v1::DeadLetter& d = l->dead_letter;
  d.clear_raw_value();
  d.mutable_task()->clear_payload();
  if (d.reason().size() > 1024) d.mutable_reason()->resize(1024);
  if (d.task().last_error().size() > 1024) {
    d.mutable_task()->mutable_last_error()->resize(1024);
  }
}

bool Newer(const DeadLetterReader::Letter& a,
           const DeadLetterReader::Letter& b) {
  const auto& ta = a.dead_letter.time();
  const auto& tb = b.dead_letter.time();
  if (ta.seconds() != tb.seconds()) return ta.seconds() > tb.seconds();
  if (ta.nanos() != tb.nanos()) return ta.nanos() > tb.nanos();
  return a.position > b.position;
}
}  // namespace

absl::StatusOr<std::vector<DeadLetterReader::Letter>> DeadLetterReader::Newest(
    const std::string& job, size_t limit, size_t* scanned) {
  absl::MutexLock lock(&mu_);
  if (absl::Now() - read_at_ > options_.max_age) {
    std::vector<Letter> fresh;
    absl::Status s = Scan([&](Letter l) {
      Trim(&l);
      fresh.push_back(std::move(l));
    });
    if (!s.ok()) return s;
    std::sort(fresh.begin(), fresh.end(), Newer);
    letters_ = std::move(fresh);
    read_at_ = absl::Now();
  }
  if (scanned != nullptr) *scanned = letters_.size();
  std::vector<Letter> out;
  for (const Letter& l : letters_) {
    if (out.size() >= limit) break;
    if (!job.empty() && l.dead_letter.task().job_id() != job) continue;
    out.push_back(l);
  }
  return out;
}

absl::StatusOr<std::optional<DeadLetterReader::Letter>> DeadLetterReader::Find(
    const std::string& task_id) {
  absl::MutexLock lock(&mu_);
  std::optional<Letter> found;
  absl::Status s = Scan([&](Letter l) {
    if (l.dead_letter.task().id() != task_id) return;
    if (!found || Newer(l, *found)) found = std::move(l);
  });
  if (!s.ok()) return s;
  return found;
}

}  // namespace kwq::tracker
