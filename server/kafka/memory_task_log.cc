#include "server/kafka/memory_task_log.h"

#include <functional>

#include "absl/strings/str_cat.h"

namespace kwq {

void MemoryBroker::CreateTopic(const std::string& topic, int partitions) {
  absl::MutexLock lock(&mu_);
  auto& t = topics_[topic];
  if (t.empty()) t.resize(static_cast<size_t>(std::max(1, partitions)));
}

absl::StatusOr<std::pair<int32_t, int64_t>> MemoryBroker::Append(
    const LogRecord& record) {
  absl::MutexLock lock(&mu_);
  auto it = topics_.find(record.topic);
  if (it == topics_.end()) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown topic ", record.topic));
  }
  const size_t n = it->second.size();
  const auto p = static_cast<int32_t>(std::hash<std::string>()(record.key) % n);
  auto& log = it->second[static_cast<size_t>(p)];
  log.push_back({record.key, record.value});
  ++appended_;
  return std::make_pair(p, static_cast<int64_t>(log.size() - 1));
}

std::vector<MemoryBroker::Stored> MemoryBroker::Read(const std::string& topic,
                                                     int32_t partition,
                                                     int64_t from, size_t max,
                                                     int64_t* end) const {
  absl::MutexLock lock(&mu_);
  std::vector<Stored> out;
  *end = 0;
  auto it = topics_.find(topic);
  if (it == topics_.end() || partition < 0 ||
      static_cast<size_t>(partition) >= it->second.size()) {
    return out;
  }
  const auto& log = it->second[static_cast<size_t>(partition)];
  *end = static_cast<int64_t>(log.size());
  for (int64_t o = std::max<int64_t>(0, from); o < *end && out.size() < max;
       ++o) {
    out.push_back(log[static_cast<size_t>(o)]);
  }
  return out;
}

int64_t MemoryBroker::appended() const {
  absl::MutexLock lock(&mu_);
  return appended_;
}

void MemoryBroker::AwaitAppend(int64_t seen, absl::Duration timeout) const {
  absl::MutexLock lock(&mu_);
  auto changed = [this, seen]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return appended_ != seen;
  };
  mu_.AwaitWithTimeout(absl::Condition(&changed), timeout);
}

int MemoryBroker::partitions(const std::string& topic) const {
  absl::MutexLock lock(&mu_);
  auto it = topics_.find(topic);
  return it == topics_.end() ? 0 : static_cast<int>(it->second.size());
}

int64_t MemoryBroker::Committed(const std::string& group,
                                const std::string& topic,
                                int32_t partition) const {
  absl::MutexLock lock(&mu_);
  auto it = committed_.find({group, topic, partition});
  return it == committed_.end() ? 0 : it->second;
}

void MemoryBroker::Commit(const std::string& group, const std::string& topic,
                          int32_t partition, int64_t next_offset,
                          const std::string& metadata) {
  absl::MutexLock lock(&mu_);
  int64_t& slot = committed_[{group, topic, partition}];
  if (next_offset >= slot) {
    slot = next_offset;
    metadata_[{group, topic, partition}] = metadata;
  }
}

std::string MemoryBroker::CommittedMetadata(const std::string& group,
                                            const std::string& topic,
                                            int32_t partition) const {
  absl::MutexLock lock(&mu_);
  auto it = metadata_.find({group, topic, partition});
  return it == metadata_.end() ? "" : it->second;
}

MemoryTaskLog::MemoryTaskLog(MemoryBroker* broker, std::string group,
                             std::vector<std::string> topics,
                             Callbacks callbacks)
    : broker_(broker),
      group_(std::move(group)),
      topics_(std::move(topics)),
      callbacks_(std::move(callbacks)) {
  done_thread_ = std::thread([this] { DoneLoop(); });
}

MemoryTaskLog::~MemoryTaskLog() { Stop(absl::Seconds(1)); }

void MemoryTaskLog::Start() {
  if (consume_thread_.joinable()) return;
  consume_thread_ = std::thread([this] { ConsumeLoop(); });
}

void MemoryTaskLog::Stop(absl::Duration) {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  if (consume_thread_.joinable()) consume_thread_.join();
  if (done_thread_.joinable())
    done_thread_.join();  // delivers what is queued first
}

void MemoryTaskLog::Produce(std::vector<LogRecord> records, DoneFn done) {
  ProduceResult result;
  for (size_t i = 0; i < records.size(); ++i) {
    auto at = broker_->Append(records[i]);
    if (at.ok()) continue;
    if (result.failed.empty()) result.status = at.status();
    result.failed.push_back(i);
  }
  absl::MutexLock lock(&mu_);
  done_queue_.emplace_back(std::move(done), std::move(result));
}

void MemoryTaskLog::DoneLoop() {
  while (true) {
    std::pair<DoneFn, ProduceResult> next;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](MemoryTaskLog* l) ABSL_EXCLUSIVE_LOCKS_REQUIRED(l->mu_) {
            return l->stopping_ || !l->done_queue_.empty();
          },
          this));
      if (done_queue_.empty()) return;  // stopping, nothing left
      next = std::move(done_queue_.front());
      done_queue_.pop_front();
    }
    next.first(next.second);
  }
}

void MemoryTaskLog::Commit(const std::string& topic, int32_t partition,
                           int64_t next_offset, const std::string& metadata) {
  broker_->Commit(group_, topic, partition, next_offset, metadata);
}

void MemoryTaskLog::SetTopicPaused(const std::string& topic, bool paused) {
  absl::MutexLock lock(&mu_);
  if (paused) {
    paused_.insert(topic);
  } else {
    paused_.erase(topic);
  }
}

void MemoryTaskLog::ConsumeLoop() {
  std::map<std::pair<std::string, int32_t>, int64_t> position;
  std::vector<CommittedPosition> assigned;
  for (const auto& t : topics_) {
    for (int32_t p = 0; p < broker_->partitions(t); ++p) {
      position[{t, p}] = broker_->Committed(group_, t, p);
      assigned.push_back(
          {t, p, position[{t, p}], broker_->CommittedMetadata(group_, t, p)});
    }
  }
  if (callbacks_.on_assigned) callbacks_.on_assigned(assigned);
  while (true) {
    std::set<std::string> paused;
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
      paused = paused_;
    }
    // Take what is new, then deliver it without holding the broker's lock.
    std::vector<std::tuple<std::string, int32_t, int64_t, std::string>> batch;
    int64_t seen;
    {
      absl::MutexLock lock(&broker_->mu_);
      seen = broker_->appended_;
      for (auto& [tp, pos] : position) {
        if (paused.count(tp.first)) continue;
        const auto& log =
            broker_->topics_[tp.first][static_cast<size_t>(tp.second)];
        for (; pos < static_cast<int64_t>(log.size()) && batch.size() < 1000;
             ++pos) {
          batch.emplace_back(tp.first, tp.second, pos,
                             log[static_cast<size_t>(pos)].value);
        }
      }
    }
    for (auto& [topic, partition, offset, value] : batch) {
      callbacks_.on_record(topic, partition, offset, std::move(value));
    }
    if (batch.empty()) {
      // Nothing new: wait for an append (or a pause change / stop, seen within
      // 20 ms).
      std::pair<MemoryBroker*, int64_t> arg{broker_, seen};
      absl::MutexLock lock(&broker_->mu_);
      broker_->mu_.AwaitWithTimeout(
          absl::Condition(
              +[](std::pair<MemoryBroker*, int64_t>* a)
                   ABSL_NO_THREAD_SAFETY_ANALYSIS {
                     return a->first->appended_ != a->second;
                   },
              &arg),
          absl::Milliseconds(20));
    }
  }
}

}  // namespace kwq
