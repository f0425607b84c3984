#include "tracker/ingest/event_ingestor.h"

#include <pthread.h>

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "glog/logging.h"

namespace kwq::tracker {

absl::StatusOr<std::unique_ptr<EventIngestor>> EventIngestor::Start(
    const KafkaCluster& cluster, TrackerStore* store, IngestOptions options) {
  std::unique_ptr<EventIngestor> in(new EventIngestor());
  in->store_ = store;
  in->options_ = std::move(options);
  TopicSpec spec;
  spec.name = in->options_.topic;
  spec.partitions = in->options_.partitions;
  if (absl::Status s = cluster.EnsureTopics({spec}, absl::Seconds(15));
      !s.ok()) {
    return s;
  }
  auto conf = MakeKafkaConf(MergeConfig(
      cluster.ConsumerConfig(in->options_.topic + ".tracker"),
      {{"queued.max.messages.kbytes", "65536"},
       // Events are applied in batches anyway: the broker may
       // gather 64 KiB (or wait a batch period) per fetch, which
       // saves it thousands of small fetches a second.
       {"fetch.min.bytes", "65536"},
       {"fetch.wait.max.ms",
        absl::StrCat(absl::ToInt64Milliseconds(in->options_.max_batch_wait))},
       {"statistics.interval.ms", "0"}}));
  if (!conf.ok()) return conf.status();
  std::string err;
  in->consumer_.reset(RdKafka::KafkaConsumer::create(conf->get(), err));
  if (!in->consumer_)
    return absl::InternalError(absl::StrCat("tracker consumer: ", err));
  if (absl::Status s = in->AssignNewPartitions(absl::Seconds(15)); !s.ok())
    return s;
  in->thread_ = std::thread([p = in.get()] {
    pthread_setname_np(pthread_self(), "kwq-ingest");
    p->Loop();
  });
  return in;
}

absl::Status EventIngestor::AssignNewPartitions(absl::Duration wait) {
  // The partitions of the topic, from metadata.
  RdKafka::Metadata* raw = nullptr;
  std::string err;
  std::unique_ptr<RdKafka::Topic> topic(
      RdKafka::Topic::create(consumer_.get(), options_.topic, nullptr, err));
  if (!topic) return absl::InternalError(err);
  RdKafka::ErrorCode code = RdKafka::ERR_UNKNOWN;
  const absl::Time deadline = absl::Now() + wait;
  do {
    code = consumer_->metadata(false, topic.get(), &raw, 2000);
    if (code == RdKafka::ERR_NO_ERROR && raw != nullptr &&
        !raw->topics()->empty() &&
        !raw->topics()->at(0)->partitions()->empty()) {
      break;
    }
    delete raw;
    raw = nullptr;
    if (absl::Now() >= deadline) break;
    absl::SleepFor(
        absl::Milliseconds(100));  // the topic was just created: poll metadata
  } while (true);
  if (raw == nullptr) {
    return absl::UnavailableError(absl::StrCat(
        "no metadata for ", options_.topic, ": ", RdKafka::err2str(code)));
  }
  std::unique_ptr<RdKafka::Metadata> md(raw);
  std::vector<int32_t> added;
  for (const auto* p : *md->topics()->at(0)->partitions()) {
    if (std::find(partitions_.begin(), partitions_.end(), p->id()) ==
        partitions_.end()) {
      added.push_back(p->id());
    }
  }
  if (added.empty()) return absl::OkStatus();
  const auto offsets = store_->Offsets(options_.topic);
  std::vector<RdKafka::TopicPartition*> parts;
  for (int32_t id : added) {
    auto it = offsets.find(id);
    if (it != offsets.end()) next_expected_[id] = it->second;
    parts.push_back(RdKafka::TopicPartition::create(
        options_.topic, id,
        it == offsets.end() ? RdKafka::Topic::OFFSET_BEGINNING : it->second));
  }
  LOG(INFO) << "tracker reads " << parts.size()
            << (partitions_.empty() ? "" : " more") << " partitions of "
            << options_.topic
            << (offsets.empty() ? " from the beginning"
                                : " from its stored offsets or the beginning");
  RdKafka::Error* error = consumer_->incremental_assign(parts);
  RdKafka::TopicPartition::destroy(parts);
  if (error != nullptr) {
    const std::string what = error->str();
    delete error;
    return absl::InternalError(absl::StrCat("assign: ", what));
  }
  partitions_.insert(partitions_.end(), added.begin(), added.end());
  return absl::OkStatus();
}

void EventIngestor::CheckContiguous(int32_t partition, int64_t offset) {
  auto it = next_expected_.find(partition);
  if (it == next_expected_.end()) {
    next_expected_[partition] = offset + 1;  // read from the start
    return;
  }
  if (offset > it->second) {
    unread_events_ += offset - it->second;
    LOG(ERROR) << options_.topic << "/" << partition << ": events ["
               << it->second << ", " << offset
               << ") were deleted by the broker (retention.ms or "
                  "DeleteRecords) before this tracker read them; the view "
                  "misses them. Keep the events topic's retention above the "
                  "longest time the tracker may be down or behind.";
  }
  it->second = std::max(it->second, offset + 1);
}

EventIngestor::~EventIngestor() { Stop(); }

void EventIngestor::Stop() {
  if (stop_.exchange(true)) return;
  if (thread_.joinable()) thread_.join();
  if (consumer_) consumer_->close();
}

double EventIngestor::lag_seconds() const {
  const int64_t newest = newest_applied_ms_;
  if (lag_ == 0 || newest <= 0) return 0;
  return std::max(
      0.0, absl::ToDoubleSeconds(absl::Now() - absl::FromUnixMillis(newest)));
}

int64_t EventIngestor::BrokerLag() {
  std::vector<RdKafka::TopicPartition*> parts;
  for (int32_t p : partitions_) {
    parts.push_back(RdKafka::TopicPartition::create(options_.topic, p));
  }
  int64_t lag = 0;
  if (consumer_->position(parts) == RdKafka::ERR_NO_ERROR) {
    for (auto* tp : parts) {
      int64_t low = 0, high = 0;
      // Cached by the client from fetch responses: no broker round trip.
      if (consumer_->get_watermark_offsets(options_.topic, tp->partition(),
                                           &low,
                                           &high) == RdKafka::ERR_NO_ERROR &&
          high >= 0) {
        const int64_t pos = tp->offset() >= 0 ? tp->offset() : low;
        lag += std::max<int64_t>(0, high - pos);
      }
    }
  }
  RdKafka::TopicPartition::destroy(parts);
  return lag;
}

bool EventIngestor::AtEndOffsets() {
  std::vector<RdKafka::TopicPartition*> parts;
  for (int32_t p : partitions_) {
    parts.push_back(RdKafka::TopicPartition::create(options_.topic, p));
  }
  bool at_end =
      !parts.empty() && consumer_->position(parts) == RdKafka::ERR_NO_ERROR;
  const auto stored =
      at_end ? store_->Offsets(options_.topic) : std::map<int32_t, int64_t>();
  for (auto* tp : parts) {
    if (!at_end) break;
    int64_t low = 0, high = 0;
    // Asked of the broker (one ListOffsets per partition): the client's
    // cached watermarks are stale after a broker restart.
    if (consumer_->query_watermark_offsets(options_.topic, tp->partition(),
                                           &low, &high,
                                           1000) != RdKafka::ERR_NO_ERROR) {
      at_end = false;
      break;
    }
    int64_t pos = tp->offset();
    if (pos < 0) {  // nothing consumed from it yet: where the store is
      auto it = stored.find(tp->partition());
      pos = it != stored.end() ? it->second : low;
    }
    if (pos < high) at_end = false;
  }
  RdKafka::TopicPartition::destroy(parts);
  return at_end;
}

absl::Status EventIngestor::status() const {
  absl::MutexLock lock(&mu_);
  return status_;
}

void EventIngestor::Loop() {
  std::vector<EventRecord> batch;
  batch.reserve(static_cast<size_t>(options_.max_batch_events));
  absl::Time batch_start = absl::Now();
  int64_t batch_newest_ms = 0;  // newest Kafka timestamp seen (applied or not)
  absl::Time next_lag = absl::Now();
  absl::Time next_current_check = absl::Now();
  absl::Time next_partition_check =
      absl::Now() + options_.partition_check_period;
  while (!stop_) {
    // An open batch waits for more events until it is max_batch_wait old:
    // applying what arrived in one fetch at a time would write a task's record
    // once per event instead of once per batch.
    int timeout_ms = 100;
    if (!batch.empty()) {
      timeout_ms = static_cast<int>(std::max<int64_t>(
          0, absl::ToInt64Milliseconds(options_.max_batch_wait -
                                       (absl::Now() - batch_start))));
    }
    std::unique_ptr<RdKafka::Message> msg(consumer_->consume(timeout_ms));
    switch (msg->err()) {
      case RdKafka::ERR_NO_ERROR:
        if (batch.empty()) batch_start = absl::Now();
        batch_newest_ms = std::max(batch_newest_ms, msg->timestamp().timestamp);
        CheckContiguous(msg->partition(), msg->offset());
        batch.push_back({msg->partition(), msg->offset(),
                         std::string(static_cast<const char*>(msg->payload()),
                                     msg->len())});
        break;
      case RdKafka::ERR__TIMED_OUT:
      case RdKafka::ERR__PARTITION_EOF:
        break;
      default:
        LOG_EVERY_N(WARNING, 100) << "events consumer: " << msg->errstr();
        break;
    }
    const bool full =
        static_cast<int>(batch.size()) >= options_.max_batch_events;
    if (!batch.empty() &&
        (full || absl::Now() - batch_start >= options_.max_batch_wait)) {
      absl::Status s = store_->ApplyBatch(options_.topic, batch);
      if (!s.ok()) {
        LOG(ERROR) << "tracker ingest stopped: " << s;
        absl::MutexLock lock(&mu_);
        status_ = s;
        return;
      }
      batch.clear();
      newest_applied_ms_ = batch_newest_ms;
    }
    if (absl::Now() >= next_lag) {
      next_lag = absl::Now() + absl::Milliseconds(200);
      lag_ = static_cast<int64_t>(batch.size()) + BrokerLag();
    }
    if (absl::Now() >= next_current_check) {
      next_current_check = absl::Now() + absl::Milliseconds(500);
      store_->SetViewCurrent(batch.empty() && AtEndOffsets());
    }
    if (absl::Now() >= next_partition_check) {
      // Partitions added to the topic since (an operator raised its count):
      // read them too.
      next_partition_check = absl::Now() + options_.partition_check_period;
      if (absl::Status st = AssignNewPartitions(absl::ZeroDuration());
          !st.ok()) {
        LOG_EVERY_N(WARNING, 10) << "events partitions check: " << st;
      }
    }
  }
}

}  // namespace kwq::tracker
