#pragma once

#include <atomic>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/node_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "librdkafka/rdkafkacpp.h"
#include "server/kafka/kafka_cluster.h"
#include "server/kafka/task_log.h"

namespace kwq {

// The scheduler's view of Kafka (see TaskLog): consumes the priority topics in
// a consumer group (never auto-committing), produces records with the
// idempotent producer (acks=all) and reports when a batch is durable, commits
// offsets it is told are decided, and pauses topics for backpressure while
// polling goes on. Thread-safe; callbacks run on its own threads.
class KafkaTaskLog final : public TaskLog {
 public:
  // A non-empty `static_member` joins the group as a static member of that
  // name (group.instance.id): after every session timed out at once (the
  // coordinator's broker stalled or died), the members that come back get the
  // same partitions (roundrobin over members sorted by that name), so what an
  // instance decided but could not commit is not run again elsewhere. A static
  // member never sends LeaveGroup: its partitions move one session timeout
  // after it stops or leaves. A member fenced by another of the same name
  // starts a new consumer (librdkafka 2.0 also fences a member whose join
  // timed out at a stalled coordinator); fenced more than 4 times a minute (a
  // real twin), the process exits (status 3).
  static absl::StatusOr<std::unique_ptr<KafkaTaskLog>> Open(
      const KafkaCluster& cluster, const std::string& group,
      std::vector<std::string> topics, Callbacks callbacks,
      const std::string& static_member = "");
  ~KafkaTaskLog() override;

  // Starts consuming.
  void Start() override;
  // Leaves the group without committing anything undecided, and flushes the
  // producer (bounded by `timeout`).
  void Stop(absl::Duration timeout) override;

  void Produce(std::vector<LogRecord> records, DoneFn done) override;
  // `next_offset` of (topic, partition) may be committed (committed in the
  // background).
  void Commit(const std::string& topic, int32_t partition, int64_t next_offset,
              const std::string& metadata) override;
  // Pauses or resumes every assigned partition of `topic` (polling continues).
  void SetTopicPaused(const std::string& topic, bool paused) override;
  // Joins (subscribes) or leaves (unsubscribes: the partitions are revoked
  // and go to the other members) the group, on the consume thread.
  void SetGroupMember(bool member) override { want_member_ = member; }
  // Fetches producer metadata for `topics` (measured: the first record to a
  // topic the producer had not seen waited about a second, the p99 of idle
  // submit-to-start).
  void WarmUp(const std::vector<std::string>& topics) override;

  // The consumer lag is the records in this member's partitions past the
  // group's committed offsets (tasks not decided yet, whether still in Kafka,
  // buffered here or running), refreshed every 2 s; -1 before the first
  // refresh.
  Stats GetStats() const override {
    return {produce_errors_, commit_errors_, consumer_lag_};
  }
  int64_t commits_ok() const { return commits_ok_; }
  int64_t commit_errors() const { return commit_errors_; }

 private:
  class Rebalancer;
  class DeliveryReporter;
  class CommitReporter;
  struct Batch;

  KafkaTaskLog() = default;
  void ConsumeLoop();
  void PollProducerLoop(RdKafka::Producer* producer);
  // Sends the queued commits; false (and queued again) when they failed
  // (`sync`: known at once; async: reported to the CommitReporter).
  bool FlushCommits(bool sync);
  // The metadata last sent with `offset` of a partition ("" if another
  // offset was sent since): a failed async commit is retried with it.
  std::string SentMetadata(const std::string& topic, int32_t partition,
                           int64_t offset);
  // Queues the last commit sent for each of `partitions` again (see the
  // revoke).
  void RecommitLastSent(
      const std::vector<std::pair<std::string, int32_t>>& partitions);
  void ApplyPauses();
  void LagLoop();
  // After a fatal error of the consumer (a fenced static member): drops what
  // it owned as lost and starts a new consumer. False when fenced too often
  // (another instance really has the same name).
  bool RecoverFromFencing();

  Callbacks callbacks_;
  std::vector<std::string> topics_;
  std::unique_ptr<Rebalancer> rebalancer_;
  std::unique_ptr<DeliveryReporter> reporter_;
  std::unique_ptr<CommitReporter> commit_reporter_;
  std::unique_ptr<RdKafka::KafkaConsumer> consumer_;
  std::unique_ptr<RdKafka::Conf> consumer_conf_;  // to start a new consumer
  std::deque<absl::Time> fencings_;               // consume thread only
  // Urgent records (and every record to a consumed topic) go through
  // producer_ (linger 0); the rest through bulk_producer_ (linger 10 ms).
  std::unique_ptr<RdKafka::Producer> producer_;
  std::unique_ptr<RdKafka::Producer> bulk_producer_;
  std::set<std::string> consumed_topics_;
  // Where a record to a topic goes: the producer and its handle of the topic,
  // made once (producing by topic name made librdkafka find the topic among
  // its own, under its lock, and copy the name, for every record). Declared
  // after the producers: the handles go before them.
  struct TopicRoute {
    RdKafka::Producer* producer = nullptr;
    std::unique_ptr<RdKafka::Topic> topic;  // null: produce by name
  };
  struct TopicRoutes {
    bool consumed = false;  // in consumed_topics_
    TopicRoute fast;        // through producer_
    TopicRoute bulk;        // through bulk_producer_
  };
  // The route of a record (producer_ or bulk_producer_, as documented there).
  TopicRoute& RouteLocked(const LogRecord& record)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(routes_mu_);
  absl::Mutex routes_mu_;
  absl::node_hash_map<std::string, TopicRoutes> routes_  // nodes stay put
      ABSL_GUARDED_BY(routes_mu_);
  std::atomic<bool> stopping_{false};
  std::atomic<bool> want_member_{true};
  bool member_ = false;  // consume thread only
  // Background commits wait until then (a cooperative rebalance in progress;
  // consume thread only).
  absl::Time commits_held_until_ = absl::InfinitePast();
  std::atomic<int64_t> produce_errors_{0};
  std::atomic<int64_t> commits_ok_{0};
  std::atomic<int64_t> commit_errors_{0};
  std::thread consume_thread_;
  std::thread poll_thread_;
  std::thread bulk_poll_thread_;
  std::thread lag_thread_;
  std::unique_ptr<RdKafka::KafkaConsumer> lag_client_;  // see Open
  std::atomic<int64_t> consumer_lag_{-1};
  absl::Mutex owned_mu_;
  // A copy of owned_ for the lag thread.
  std::vector<std::pair<std::string, int32_t>> owned_copy_
      ABSL_GUARDED_BY(owned_mu_);

  absl::Mutex mu_;
  // Offset and metadata to commit per partition.
  std::map<std::pair<std::string, int32_t>, std::pair<int64_t, std::string>>
      to_commit_ ABSL_GUARDED_BY(mu_);
  // The last offset and metadata sent per partition.
  std::map<std::pair<std::string, int32_t>, std::pair<int64_t, std::string>>
      sent_metadata_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> paused_topics_ ABSL_GUARDED_BY(mu_);
  // Partitions assigned now; read and written only on the consume thread
  // (rebalance and commit callbacks run there).
  std::set<std::pair<std::string, int32_t>> owned_;
  // Partitions paused in the consumer now (consume thread only).
  std::set<std::pair<std::string, int32_t>> applied_paused_;
  bool pauses_dirty_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace kwq
