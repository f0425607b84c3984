#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/kafka/kafka_cluster.h"
#include "server/kafka/parked_replayer.h"
#include "server/kafka/task_log.h"

namespace kwq {

// A topic read from its beginning and followed (the control and jobs topics).
class TopicFeed {
 public:
  virtual ~TopicFeed() = default;
  virtual void Stop() = 0;
};

// The pass that puts parked tasks of resumed jobs back (see ParkedReplayer).
class ParkedPasses {
 public:
  virtual ~ParkedPasses() = default;
  virtual void RequestPass() = 0;
  virtual void Stop() = 0;
};

// Everything the scheduler service needs from its log: topics, the task log
// of its consumer group, feeds of the compacted topics, parked replay. Kafka
// in production (KafkaBackend), memory in fast tests (MemoryBackend).
class SchedulerBackend {
 public:
  using OnRecord =
      std::function<void(const std::string& key, const std::string& value)>;
  virtual ~SchedulerBackend() = default;
  virtual absl::Status EnsureTopics(const std::vector<TopicSpec>& topics) = 0;
  // Delivers every record of `topic` (key, value; an empty value is a
  // tombstone) and keeps following it; returns once the records present at
  // the call were delivered, or UNAVAILABLE after `catch_up`.
  virtual absl::StatusOr<std::unique_ptr<TopicFeed>> Follow(
      const std::string& topic, OnRecord on_record,
      absl::Duration catch_up) = 0;
  virtual absl::StatusOr<std::unique_ptr<ParkedPasses>> StartParked(
      ParkedReplayerOptions options) = 0;
  virtual absl::StatusOr<std::unique_ptr<TaskLog>> OpenTaskLog(
      const std::string& group, const std::vector<std::string>& topics,
      TaskLog::Callbacks callbacks) = 0;
};

struct KafkaBackendOptions {
  // Non-empty: the task log joins its consumer group as this static member
  // (group.instance.id, KIP-345; see KafkaTaskLog::Open).
  std::string static_member;
};

// On a Kafka cluster (not owned).
std::unique_ptr<SchedulerBackend> MakeKafkaBackend(
    const KafkaCluster* cluster, KafkaBackendOptions options = {});

}  // namespace kwq
