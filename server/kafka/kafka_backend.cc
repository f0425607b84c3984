// SchedulerBackend on Kafka: the control reader, the parked replayer and
// KafkaTaskLog over one KafkaCluster.
#include "server/kafka/control_reader.h"
#include "server/kafka/kafka_task_log.h"
#include "server/kafka/scheduler_backend.h"

namespace kwq {

namespace {

class KafkaFeed final : public TopicFeed {
 public:
  explicit KafkaFeed(std::unique_ptr<ControlReader> r)
      : reader_(std::move(r)) {}
  void Stop() override { reader_->Stop(); }

 private:
  std::unique_ptr<ControlReader> reader_;
};

class KafkaParked final : public ParkedPasses {
 public:
  explicit KafkaParked(std::unique_ptr<ParkedReplayer> r)
      : replayer_(std::move(r)) {}
  void RequestPass() override { replayer_->RequestPass(); }
  void Stop() override { replayer_->Stop(); }

 private:
  std::unique_ptr<ParkedReplayer> replayer_;
};

class KafkaBackend final : public SchedulerBackend {
 public:
  KafkaBackend(const KafkaCluster* cluster, KafkaBackendOptions options)
      : cluster_(cluster), options_(std::move(options)) {}

  absl::Status EnsureTopics(const std::vector<TopicSpec>& topics) override {
    return cluster_->EnsureTopics(topics, absl::Seconds(30));
  }
  absl::StatusOr<std::unique_ptr<TopicFeed>> Follow(
      const std::string& topic, OnRecord on_record,
      absl::Duration catch_up) override {
    auto r =
        ControlReader::Start(*cluster_, topic, std::move(on_record), catch_up);
    if (!r.ok()) return r.status();
    return std::unique_ptr<TopicFeed>(new KafkaFeed(std::move(*r)));
  }
  absl::StatusOr<std::unique_ptr<ParkedPasses>> StartParked(
      ParkedReplayerOptions options) override {
    auto r = ParkedReplayer::Start(*cluster_, std::move(options));
    if (!r.ok()) return r.status();
    return std::unique_ptr<ParkedPasses>(new KafkaParked(std::move(*r)));
  }
  absl::StatusOr<std::unique_ptr<TaskLog>> OpenTaskLog(
      const std::string& group, const std::vector<std::string>& topics,
      TaskLog::Callbacks callbacks) override {
    auto log = KafkaTaskLog::Open(*cluster_, group, topics,
                                  std::move(callbacks), options_.static_member);
    if (!log.ok()) return log.status();
    return std::unique_ptr<TaskLog>(std::move(*log));
  }

 private:
  const KafkaCluster* cluster_;
  const KafkaBackendOptions options_;
};

}  // namespace

std::unique_ptr<SchedulerBackend> MakeKafkaBackend(
    const KafkaCluster* cluster, KafkaBackendOptions options) {
  return std::make_unique<KafkaBackend>(cluster, std::move(options));
}

}  // namespace kwq
