#include "server/kafka/memory_backend.h"

#include <atomic>
#include <map>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "glog/logging.h"
#include "kwq/v1/task.pb.h"

namespace kwq {

namespace {

// Delivers a topic's records from its beginning, then follows appends.
class MemoryFeed final : public TopicFeed {
 public:
  MemoryFeed(MemoryBroker* broker, std::string topic,
             SchedulerBackend::OnRecord on_record)
      : broker_(broker), topic_(std::move(topic)), on_record_(on_record) {}
  ~MemoryFeed() override { Stop(); }

  void CatchUp() { DeliverNew(); }
  void StartFollowing() {
    thread_ = std::thread([this] {
      while (!stop_) {
        const int64_t seen = broker_->appended();
        DeliverNew();
        broker_->AwaitAppend(seen, absl::Milliseconds(20));
      }
    });
  }
  void Stop() override {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }

 private:
  void DeliverNew() {
    for (int32_t p = 0; p < broker_->partitions(topic_); ++p) {
      int64_t end = 0;
      int64_t& next = next_[p];
      for (const auto& r : broker_->Read(topic_, p, next, 10000, &end)) {
        ++next;
        if (!r.key.empty()) on_record_(r.key, r.value);
      }
    }
  }

  MemoryBroker* broker_;
  const std::string topic_;
  SchedulerBackend::OnRecord on_record_;
  std::map<int32_t, int64_t> next_;  // one thread at a time
  std::thread thread_;
  std::atomic<bool> stop_{false};
};

// The parked replay of ParkedReplayer, on the broker: a pass (options.settle
// after a request) reads each parked partition from the group's committed
// offset to its end, puts tasks of jobs no longer paused back into their
// priority topic (and a tombstone into the parked topic), writes still-paused
// ones again, and commits.
class MemoryParked final : public ParkedPasses {
 public:
  MemoryParked(MemoryBroker* broker, ParkedReplayerOptions options)
      : broker_(broker), options_(std::move(options)) {
    thread_ = std::thread([this] { Loop(); });
  }
  ~MemoryParked() override { Stop(); }
  void RequestPass() override {
    absl::MutexLock lock(&mu_);
    requested_ = true;
  }
  void Stop() override {
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
    }
    if (thread_.joinable()) thread_.join();
  }

 private:
  void Loop() {
    while (true) {
      {
        absl::MutexLock lock(&mu_);
        auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
          return stopping_ || requested_;
        };
        mu_.Await(absl::Condition(&ready));
        if (stopping_) return;
      }
      absl::SleepFor(options_.settle);  // let more requests join this pass
      {
        absl::MutexLock lock(&mu_);
        if (stopping_) return;
        requested_ = false;
      }
      Pass();
    }
  }

  void Pass() {
    const std::set<std::string> paused = options_.paused_jobs();
    const std::string& topic = options_.parked_topic;
    for (int32_t p = 0; p < broker_->partitions(topic); ++p) {
      const int64_t from = broker_->Committed(options_.group, topic, p);
      int64_t end = 0;
      const auto records = broker_->Read(topic, p, from, SIZE_MAX, &end);
      for (const auto& r : records) {
        if (r.value.empty()) continue;  // a tombstone
        kwq::v1::Task task;
        if (!task.ParseFromString(r.value) || task.id().empty()) continue;
        if (paused.count(task.job_id())) {
          (void)broker_->Append({topic, task.id(), r.value});
        } else {
          (void)broker_->Append({options_.topic_for_priority(task.priority()),
                                 task.id(), r.value});
          (void)broker_->Append({topic, task.id(), ""});
        }
      }
      broker_->Commit(options_.group, topic, p, end);
    }
  }

  MemoryBroker* broker_;
  const ParkedReplayerOptions options_;
  absl::Mutex mu_;
  bool requested_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

class MemoryBackend final : public SchedulerBackend {
 public:
  explicit MemoryBackend(MemoryBroker* broker) : broker_(broker) {}

  absl::Status EnsureTopics(const std::vector<TopicSpec>& topics) override {
    for (const auto& t : topics) broker_->CreateTopic(t.name, t.partitions);
    return absl::OkStatus();
  }
  absl::StatusOr<std::unique_ptr<TopicFeed>> Follow(const std::string& topic,
                                                    OnRecord on_record,
                                                    absl::Duration) override {
    auto feed =
        std::make_unique<MemoryFeed>(broker_, topic, std::move(on_record));
    feed->CatchUp();
    feed->StartFollowing();
    return std::unique_ptr<TopicFeed>(std::move(feed));
  }
  absl::StatusOr<std::unique_ptr<ParkedPasses>> StartParked(
      ParkedReplayerOptions options) override {
    return std::unique_ptr<ParkedPasses>(
        new MemoryParked(broker_, std::move(options)));
  }
  absl::StatusOr<std::unique_ptr<TaskLog>> OpenTaskLog(
      const std::string& group, const std::vector<std::string>& topics,
      TaskLog::Callbacks callbacks) override {
    return std::unique_ptr<TaskLog>(
        new MemoryTaskLog(broker_, group, topics, std::move(callbacks)));
  }

 private:
  MemoryBroker* broker_;
};

}  // namespace

std::unique_ptr<SchedulerBackend> MakeMemoryBackend(MemoryBroker* broker) {
  return std::make_unique<MemoryBackend>(broker);
}

}  // namespace kwq
