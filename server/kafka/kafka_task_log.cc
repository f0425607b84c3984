#include "server/kafka/kafka_task_log.h"

#include <pthread.h>

#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "glog/logging.h"
#include "librdkafka/rdkafka.h"

namespace kwq {

struct KafkaTaskLog::Batch {
  // One per record: the delivery report's opaque, naming the record.
  struct Ref {
    Batch* batch;
    size_t index;
  };
  std::vector<Ref> refs;
  std::atomic<int> remaining{0};
  absl::Mutex mu;
  std::string error;           // the first
  std::vector<size_t> failed;  // records not durable
  DoneFn done;

  void Fail(size_t index, std::string why) {
    absl::MutexLock lock(&mu);
    if (failed.empty()) error = std::move(why);
    failed.push_back(index);
  }
  // The last record reported: hands the outcome over and deletes the batch.
  void Finish() {
    ProduceResult result;
    {
      absl::MutexLock lock(&mu);
      if (!failed.empty()) {
        result.status = absl::UnavailableError(error);
        result.failed = std::move(failed);
      }
    }
    done(result);
    delete this;
  }
};

class KafkaTaskLog::DeliveryReporter : public RdKafka::DeliveryReportCb {
 public:
  explicit DeliveryReporter(KafkaTaskLog* log) : log_(log) {}
  void dr_cb(RdKafka::Message& msg) override {
    auto* ref = static_cast<Batch::Ref*>(msg.msg_opaque());
    if (ref == nullptr) return;
    Batch* batch = ref->batch;
    if (msg.err() != RdKafka::ERR_NO_ERROR) {
      ++log_->produce_errors_;
      batch->Fail(ref->index,
                  absl::StrCat(msg.topic_name(), ": ", msg.errstr()));
    }
    if (--batch->remaining == 0) batch->Finish();
  }

 private:
  KafkaTaskLog* log_;
};

// Counts the outcome of every offset commit (async ones report only here).
class KafkaTaskLog::CommitReporter : public RdKafka::OffsetCommitCb {
 public:
  explicit CommitReporter(KafkaTaskLog* log) : log_(log) {}
  void offset_commit_cb(
      RdKafka::ErrorCode err,
      std::vector<RdKafka::TopicPartition*>& offsets) override {
    if (err == RdKafka::ERR_NO_ERROR || err == RdKafka::ERR__NO_OFFSET) {
      ++log_->commits_ok_;
      VLOG(1) << "committed " << offsets.size() << " partition offsets";
    } else {
      ++log_->commit_errors_;
      LOG(WARNING) << "offset commit failed: " << RdKafka::err2str(err)
                   << "; retrying with the next commit";
      // Commit again later, unless the partition moved away meanwhile
      // (committing for it then could move the new owner's offset backwards).
      for (auto* tp : offsets) {
        if (log_->owned_.count({tp->topic(), tp->partition()}) &&
            tp->offset() >= 0) {
          // With the metadata it was sent with: the records decided above
          // the offset must not run again after a crash.
          log_->Commit(
              tp->topic(), tp->partition(), tp->offset(),
              log_->SentMetadata(tp->topic(), tp->partition(), tp->offset()));
        }
      }
    }
  }

 private:
  KafkaTaskLog* log_;
};

class KafkaTaskLog::Rebalancer : public RdKafka::RebalanceCb {
 public:
  explicit Rebalancer(KafkaTaskLog* log) : log_(log) {}

  // What the group committed for `partitions`, metadata included (C API).
  static std::vector<CommittedPosition> Committed(
      RdKafka::KafkaConsumer* consumer,
      const std::vector<RdKafka::TopicPartition*>& partitions) {
    std::vector<CommittedPosition> out;
    rd_kafka_topic_partition_list_t* list =
        rd_kafka_topic_partition_list_new(static_cast<int>(partitions.size()));
    for (auto* tp : partitions) {
      rd_kafka_topic_partition_list_add(list, tp->topic().c_str(),
                                        tp->partition());
    }
    const rd_kafka_resp_err_t err =
        rd_kafka_committed(consumer->c_ptr(), list, 10000);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      LOG(WARNING) << "committed offsets unknown (" << rd_kafka_err2str(err)
                   << "): decided records above them will run again";
    }
    for (int i = 0; i < list->cnt; ++i) {
      const rd_kafka_topic_partition_t& p = list->elems[i];
      CommittedPosition c;
      c.topic = p.topic;
      c.partition = p.partition;
      c.offset = err == RD_KAFKA_RESP_ERR_NO_ERROR &&
                         p.err == RD_KAFKA_RESP_ERR_NO_ERROR
                     ? p.offset
                     : -1;
      if (c.offset >= 0 && p.metadata != nullptr && p.metadata_size > 0) {
        c.metadata.assign(static_cast<const char*>(p.metadata),
                          p.metadata_size);
      }
      out.push_back(std::move(c));
    }
    rd_kafka_topic_partition_list_destroy(list);
    return out;
  }
  // Both protocols: eager (the default, see Open) revokes every partition at
  // each rebalance; cooperative (cooperative-sticky in --kafka_config, on a
  // librdkafka without bug #4059) moves only the partitions that change owner.
  void rebalance_cb(
      RdKafka::KafkaConsumer* consumer, RdKafka::ErrorCode err,
      std::vector<RdKafka::TopicPartition*>& partitions) override {
    const bool cooperative = consumer->rebalance_protocol() == "COOPERATIVE";
    if (err == RdKafka::ERR__ASSIGN_PARTITIONS) {
      LOG(INFO) << "assigned " << partitions.size() << " partitions"
                << (cooperative ? " (incremental)" : "") << ": "
                << Names(partitions);
      if (log_->callbacks_.on_assigned && !partitions.empty()) {
        log_->callbacks_.on_assigned(Committed(consumer, partitions));
      }
      for (auto* tp : partitions) {
        log_->owned_.insert({tp->topic(), tp->partition()});
        log_->applied_paused_.erase({tp->topic(), tp->partition()});
      }
      PublishOwned();
      if (cooperative) {
        log_->commits_held_until_ = absl::InfinitePast();  // rebalance done
        if (RdKafka::Error* e = consumer->incremental_assign(partitions)) {
          LOG(ERROR) << "incremental assign failed: " << e->str();
          delete e;
        }
      } else {
        // Every partition was revoked, and resumed, before this.
        log_->applied_paused_.clear();
        consumer->assign(partitions);
      }
      {
        absl::MutexLock lock(&log_->mu_);
        log_->pauses_dirty_ = true;
      }
      log_->ApplyPauses();
    } else {
      const bool lost = consumer->assignment_lost();
      LOG(INFO) << (lost ? "lost " : "revoking ") << partitions.size()
                << " partitions: " << Names(partitions);
      std::vector<std::pair<std::string, int32_t>> revoked;
      for (auto* tp : partitions) {
        revoked.emplace_back(tp->topic(), tp->partition());
      }
      // The owner makes what it decided durable and commits it before the
      // partitions go (on_revoked returns once they are dropped).
      if (log_->callbacks_.on_revoked) log_->callbacks_.on_revoked(revoked);
      if (!lost) {
        // The last commit sent for each partition is sent again, synchronously:
        // an async one still in flight may be refused once the partition is
        // revoked (the generation changes), and the next owner would run what
        // it covered again.
        log_->RecommitLastSent(revoked);
        // A commit that fails here (the group coordinator moving after a
        // broker died) is tried again for up to 3 s: once the partitions
        // move, what it covers would run again at the next owner.
        const absl::Time until = absl::Now() + absl::Seconds(3);
        while (!log_->FlushCommits(/*sync=*/true) && absl::Now() < until) {
          absl::SleepFor(absl::Milliseconds(200));
        }
      }
      // librdkafka keeps a partition's pause through a revoke and a later
      // assignment (confluentinc/librdkafka#1849). A partition revoked while
      // paused for backpressure, and given back after the backpressure
      // lifted (the revoke empties its queue), would stay paused with
      // nothing here to resume it: its records never read (the 50M soak
      // stalled so). Revoked partitions leave unpaused; resuming one that
      // was not paused is harmless, as it is unassigned next.
      consumer->resume(partitions);
      for (const auto& tp : revoked) {
        log_->owned_.erase(tp);
        log_->applied_paused_.erase(tp);
      }
      PublishOwned();
      {
        absl::MutexLock lock(&log_->mu_);
        for (auto& tp : revoked) log_->to_commit_.erase(tp);
      }
      if (cooperative) {
        // A second join follows a cooperative revoke; a commit sent during
        // it can make librdkafka 2.0 drop the whole assignment on
        // ILLEGAL_GENERATION (confluentinc/librdkafka#4059, fixed in 2.6.1),
        // which re-runs every running task of it elsewhere. Background commits
        // wait for the assignment that ends the rebalance (at most 10 s).
        log_->commits_held_until_ = absl::Now() + absl::Seconds(10);
        if (RdKafka::Error* e = consumer->incremental_unassign(partitions)) {
          LOG(ERROR) << "incremental unassign failed: " << e->str();
          delete e;
        }
      } else {
        consumer->unassign();
      }
    }
  }

 private:
  // "topic/partition topic/partition ..." for the log.
  static std::string Names(
      const std::vector<RdKafka::TopicPartition*>& partitions) {
    std::string out;
    for (auto* tp : partitions) {
      absl::StrAppend(&out, out.empty() ? "" : " ", tp->topic(), "/",
                      tp->partition());
    }
    return out;
  }
  // The lag thread reads its own copy of the owned partitions.
  void PublishOwned() {
    absl::MutexLock lock(&log_->owned_mu_);
    log_->owned_copy_.assign(log_->owned_.begin(), log_->owned_.end());
  }

  KafkaTaskLog* log_;
};

absl::StatusOr<std::unique_ptr<KafkaTaskLog>> KafkaTaskLog::Open(
    const KafkaCluster& cluster, const std::string& group,
    std::vector<std::string> topics, Callbacks callbacks,
    const std::string& static_member) {
  std::unique_ptr<KafkaTaskLog> log(new KafkaTaskLog());
  log->callbacks_ = std::move(callbacks);
  log->topics_ = std::move(topics);
  log->rebalancer_ = std::make_unique<Rebalancer>(log.get());
  log->reporter_ = std::make_unique<DeliveryReporter>(log.get());
  log->commit_reporter_ = std::make_unique<CommitReporter>(log.get());

  auto cconf = MakeKafkaConf(
      MergeConfig(cluster.ConsumerConfig(group),
                  {{"queued.max.messages.kbytes", "16384"},
                   // The broker answers a waiting fetch when data arrives.
                   // Measured at 20 tasks/s (idle grid): 100 ms gave p50
                   // 1.0-1.1 ms and p99 2.0-3.1 ms, 5 ms p50 1.0 ms and p99
                   // 2.5-5.1 ms (20x the idle fetches, busier broker); 500 ms
                   // cost +0.25 ms p50 in an earlier run. Under load 100 ms
                   // was within noise (-4%?) of 5 ms.
                   {"fetch.wait.max.ms", "100"},
                   // Eager, not cooperative-sticky: librdkafka 2.0 (Debian
                   // 12) drops a cooperative member's whole assignment when a
                   // commit meets the second join of a rebalance
                   // (confluentinc/librdkafka#4059, fixed in 2.6.1); the
                   // chaos checker saw 133-507 re-runs per instance kill with
                   // it, 0-9 with eager rebalancing and the revoke's wait for
                   // what runs (server/README.md).
                   {"partition.assignment.strategy", "roundrobin"}}));
  if (!cconf.ok()) return cconf.status();
  std::string err;
  if (!static_member.empty() &&
      (*cconf)->set("group.instance.id", static_member, err) !=
          RdKafka::Conf::CONF_OK) {
    return absl::InvalidArgumentError(err);
  }
  if ((*cconf)->set("rebalance_cb", log->rebalancer_.get(), err) !=
      RdKafka::Conf::CONF_OK) {
    return absl::InternalError(err);
  }
  if ((*cconf)->set("offset_commit_cb", log->commit_reporter_.get(), err) !=
      RdKafka::Conf::CONF_OK) {
    return absl::InternalError(err);
  }
  log->consumer_.reset(RdKafka::KafkaConsumer::create(cconf->get(), err));
  log->consumer_conf_ = std::move(*cconf);
  if (!log->consumer_)
    return absl::InternalError(absl::StrCat("consumer: ", err));
  // The lag queries' own client (same group, never subscribed, so never a
  // member): on the dispatcher's connection they would queue behind its
  // long-polling fetch and hold back the next one.
  auto lconf = MakeKafkaConf(cluster.ConsumerConfig(group));
  if (!lconf.ok()) return lconf.status();
  log->lag_client_.reset(RdKafka::KafkaConsumer::create(lconf->get(), err));
  if (!log->lag_client_)
    return absl::InternalError(absl::StrCat("lag client: ", err));

  // Two idempotent producers (acks=all). Urgent records, linger.ms 0: sent at
  // once (idle submit-to-start p50 2.2 -> 1.2 ms against 0.5 ms). Status events
  // and results, linger.ms 10: fewer, larger requests (8x16 no-op: 0 -> 5 ms,
  // broker CPU per task 28 -> 23 us, kwq's 114 -> 103 us, throughput +12%;
  // 5 -> 10 ms, seven interleaved pairs: broker median 0.82x, kwq 0.96x,
  // throughput unchanged; 20 ms cost throughput).
  for (const auto& [linger, slot] :
       {std::pair<const char*, std::unique_ptr<RdKafka::Producer>*>{
            "0", &log->producer_},
        {"10", &log->bulk_producer_}}) {
    auto pconf = MakeKafkaConf(MergeConfig(cluster.ClientConfig(),
                                           {{"enable.idempotence", "true"},
                                            {"acks", "all"},
                                            {"linger.ms", linger},
                                            {"delivery.timeout.ms", "30000"}}));
    if (!pconf.ok()) return pconf.status();
    if ((*pconf)->set("dr_cb", log->reporter_.get(), err) !=
        RdKafka::Conf::CONF_OK) {
      return absl::InternalError(err);
    }
    slot->reset(RdKafka::Producer::create(pconf->get(), err));
    if (!*slot) return absl::InternalError(absl::StrCat("producer: ", err));
  }
  log->consumed_topics_.insert(log->topics_.begin(), log->topics_.end());
  log->poll_thread_ =
      std::thread([l = log.get()] { l->PollProducerLoop(l->producer_.get()); });
  log->bulk_poll_thread_ = std::thread(
      [l = log.get()] { l->PollProducerLoop(l->bulk_producer_.get()); });
  return log;
}

KafkaTaskLog::~KafkaTaskLog() { Stop(absl::Seconds(10)); }

void KafkaTaskLog::Start() {
  if (consume_thread_.joinable() || topics_.empty()) return;
  consume_thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "kwq-consume");
    ConsumeLoop();
  });
  lag_thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "kwq-lag");
    LagLoop();
  });
}

void KafkaTaskLog::LagLoop() {
  absl::Time next = absl::Now();
  while (!stopping_) {
    if (absl::Now() < next) {
      absl::SleepFor(absl::Milliseconds(50));  // a refresh period, in steps
      continue;
    }
    next = absl::Now() + absl::Seconds(2);
    std::vector<std::pair<std::string, int32_t>> owned;
    {
      absl::MutexLock lock(&owned_mu_);
      owned = owned_copy_;
    }
    std::vector<RdKafka::TopicPartition*> parts;
    for (const auto& [topic, partition] : owned) {
      parts.push_back(RdKafka::TopicPartition::create(topic, partition));
    }
    // One OffsetFetch for the committed offsets, one ListOffsets per
    // partition for its end (cached watermarks go stale while paused).
    bool ok = parts.empty() ||
              lag_client_->committed(parts, 2000) == RdKafka::ERR_NO_ERROR;
    int64_t lag = 0;
    for (auto* tp : parts) {
      int64_t low = 0, high = 0;
      if (!ok || lag_client_->query_watermark_offsets(
                     tp->topic(), tp->partition(), &low, &high, 2000) !=
                     RdKafka::ERR_NO_ERROR) {
        ok = false;
        break;
      }
      lag += std::max<int64_t>(0, high - std::max(tp->offset(), low));
    }
    RdKafka::TopicPartition::destroy(parts);
    if (ok) consumer_lag_ = lag;
  }
}

void KafkaTaskLog::Stop(absl::Duration timeout) {
  if (stopping_.exchange(true)) return;
  if (consume_thread_.joinable()) consume_thread_.join();
  if (lag_thread_.joinable()) lag_thread_.join();
  if (lag_client_) lag_client_->close();
  if (consumer_) {
    FlushCommits(/*sync=*/true);
    consumer_->close();
  }
  for (auto* p : {producer_.get(), bulk_producer_.get()}) {
    if (p) p->flush(static_cast<int>(absl::ToInt64Milliseconds(timeout)));
  }
  if (poll_thread_.joinable()) poll_thread_.join();
  if (bulk_poll_thread_.joinable()) bulk_poll_thread_.join();
}

void KafkaTaskLog::ConsumeLoop() {
  absl::Time next_commit = absl::Now() + absl::Milliseconds(100);
  while (!stopping_) {
    if (want_member_ != member_) {
      const RdKafka::ErrorCode err = want_member_
                                         ? consumer_->subscribe(topics_)
                                         : consumer_->unsubscribe();
      if (err == RdKafka::ERR_NO_ERROR) {
        member_ = want_member_;
        LOG(INFO) << (member_ ? "joined" : "left") << " the consumer group";
      } else {
        LOG_EVERY_N(WARNING, 100)
            << (want_member_ ? "subscribe" : "unsubscribe")
            << " failed: " << RdKafka::err2str(err);
      }
    }
    std::unique_ptr<RdKafka::Message> msg(consumer_->consume(50));
    switch (msg->err()) {
      case RdKafka::ERR_NO_ERROR:
        callbacks_.on_record(
            msg->topic_name(), msg->partition(), msg->offset(),
            std::string(static_cast<const char*>(msg->payload()), msg->len()));
        break;
      case RdKafka::ERR__TIMED_OUT:
      case RdKafka::ERR__PARTITION_EOF:
        break;
      case RdKafka::ERR__FATAL:
        if (!RecoverFromFencing()) {
          google::FlushLogFiles(google::GLOG_INFO);
          std::_Exit(3);
        }
        break;
      default:
        LOG_EVERY_N(WARNING, 100) << "consume: " << msg->errstr();
    }
    ApplyPauses();
    if (absl::Now() >= next_commit && absl::Now() >= commits_held_until_) {
      FlushCommits(/*sync=*/false);
      next_commit = absl::Now() + absl::Milliseconds(100);
    }
  }
}

bool KafkaTaskLog::RecoverFromFencing() {
  // Only a static member's consumer gets a fatal error: the group fenced it
  // because a member joined under the same name. That is another instance
  // with the same --scheduler_id, or this one: librdkafka 2.0 retries a
  // JoinGroup that timed out at a stalled coordinator, and the retry fences
  // the member the first one created (the chaos checker saw all four
  // instances fenced at once during a broker stall). A new consumer rejoins;
  // a real twin fences it again and again, so more than 4 fencings a minute
  // end the process.
  std::string reason;
  consumer_->fatal_error(reason);
  const absl::Time now = absl::Now();
  fencings_.push_back(now);
  while (fencings_.front() < now - absl::Minutes(1)) fencings_.pop_front();
  if (fencings_.size() > 4) {
    LOG(ERROR) << "the consumer group fenced this instance " << fencings_.size()
               << " times in a minute (" << reason
               << "): another scheduler runs with the same --scheduler_id; "
                  "each instance needs its own. Exiting.";
    return false;
  }
  LOG(WARNING) << "the consumer group fenced this instance (" << reason
               << "); starting a new consumer with the same name";
  // What it owned is lost, as after a session timeout.
  std::vector<std::pair<std::string, int32_t>> lost(owned_.begin(),
                                                    owned_.end());
  if (!lost.empty()) {
    LOG(INFO) << "lost " << lost.size() << " partitions (fenced)";
    if (callbacks_.on_revoked) callbacks_.on_revoked(lost);
  }
  owned_.clear();
  applied_paused_.clear();
  {
    absl::MutexLock lock(&owned_mu_);
    owned_copy_.clear();
  }
  {
    absl::MutexLock lock(&mu_);
    to_commit_.clear();
  }
  consumer_->unassign();
  consumer_->close();
  std::string err;
  consumer_.reset(RdKafka::KafkaConsumer::create(consumer_conf_.get(), err));
  if (!consumer_) {
    LOG(ERROR) << "a new consumer could not be made: " << err << ". Exiting.";
    return false;
  }
  member_ = false;  // the loop subscribes again (if it should be a member)
  return true;
}

void KafkaTaskLog::PollProducerLoop(RdKafka::Producer* producer) {
  while (!stopping_ || producer->outq_len() > 0) {
    producer->poll(20);
    if (stopping_ && producer->outq_len() > 0) {
      producer->flush(5000);
      break;
    }
  }
  producer->poll(0);
}

void KafkaTaskLog::Produce(std::vector<LogRecord> records, DoneFn done) {
  if (records.empty()) {
    done(ProduceResult{});
    return;
  }
  auto* batch = new Batch();
  batch->remaining = static_cast<int>(records.size());
  batch->done = std::move(done);
  batch->refs.reserve(records.size());
  for (size_t i = 0; i < records.size(); ++i) batch->refs.push_back({batch, i});
  std::vector<const TopicRoute*> routes(records.size());
  {
    absl::MutexLock lock(&routes_mu_);
    for (size_t i = 0; i < records.size(); ++i) {
      routes[i] = &RouteLocked(records[i]);
    }
  }
  for (size_t i = 0; i < records.size(); ++i) {
    LogRecord& r = records[i];
    const TopicRoute& route = *routes[i];  // map nodes stay put
    RdKafka::Producer* producer = route.producer;
    // An empty value is produced as null: a tombstone (compacted topics).
    void* value = r.value.empty() ? nullptr : const_cast<char*>(r.value.data());
    RdKafka::ErrorCode err;
    while (true) {
      err = route.topic != nullptr
                ? producer->produce(
                      route.topic.get(), RdKafka::Topic::PARTITION_UA,
                      RdKafka::Producer::RK_MSG_COPY, value, r.value.size(),
                      r.key.data(), r.key.size(), &batch->refs[i])
                : producer->produce(r.topic, RdKafka::Topic::PARTITION_UA,
                                    RdKafka::Producer::RK_MSG_COPY, value,
                                    r.value.size(), r.key.data(), r.key.size(),
                                    0, &batch->refs[i]);
      if (err != RdKafka::ERR__QUEUE_FULL) break;
      producer->poll(10);  // the local queue is full: wait for deliveries
    }
    if (err != RdKafka::ERR_NO_ERROR) {
      // Not enqueued: report it as a failed delivery of this record.
      ++produce_errors_;
      batch->Fail(i, absl::StrCat(r.topic, ": ", RdKafka::err2str(err)));
      if (--batch->remaining == 0) batch->Finish();
    }
  }
}

KafkaTaskLog::TopicRoute& KafkaTaskLog::RouteLocked(const LogRecord& record) {
  auto it = routes_.find(record.topic);
  if (it == routes_.end()) {
    it = routes_.try_emplace(record.topic).first;
    it->second.consumed = consumed_topics_.count(record.topic) > 0;
  }
  TopicRoutes& routes = it->second;
  const bool fast = !record.batched && (record.urgent || routes.consumed);
  TopicRoute& route = fast ? routes.fast : routes.bulk;
  if (route.producer != nullptr) return route;
  route.producer = fast ? producer_.get() : bulk_producer_.get();
  std::string error;
  route.topic.reset(
      RdKafka::Topic::create(route.producer, record.topic, nullptr, error));
  if (route.topic == nullptr) {
    LOG(WARNING) << "no handle for topic " << record.topic << " (" << error
                 << "): producing to it by name";
  }
  return route;
}

void KafkaTaskLog::Commit(const std::string& topic, int32_t partition,
                          int64_t next_offset, const std::string& metadata) {
  absl::MutexLock lock(&mu_);
  auto [it, fresh] =
      to_commit_.try_emplace({topic, partition}, next_offset, metadata);
  if (!fresh && next_offset >= it->second.first) {
    it->second = {next_offset,
                  metadata};  // the latest decision of this partition
  }
}

void KafkaTaskLog::RecommitLastSent(
    const std::vector<std::pair<std::string, int32_t>>& partitions) {
  absl::MutexLock lock(&mu_);
  for (const auto& tp : partitions) {
    auto sent = sent_metadata_.find(tp);
    if (sent == sent_metadata_.end()) continue;
    to_commit_.try_emplace(tp, sent->second);  // a newer one queued wins
  }
}

std::string KafkaTaskLog::SentMetadata(const std::string& topic,
                                       int32_t partition, int64_t offset) {
  absl::MutexLock lock(&mu_);
  auto it = sent_metadata_.find({topic, partition});
  return it != sent_metadata_.end() && it->second.first == offset
             ? it->second.second
             : "";
}

bool KafkaTaskLog::FlushCommits(bool sync) {
  std::map<std::pair<std::string, int32_t>, std::pair<int64_t, std::string>>
      pending;
  {
    absl::MutexLock lock(&mu_);
    pending.swap(to_commit_);
  }
  if (pending.empty()) return true;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [tp, value] : pending) sent_metadata_[tp] = value;
  }
  // The C API: the C++ one has no commit metadata in this librdkafka.
  rd_kafka_topic_partition_list_t* list =
      rd_kafka_topic_partition_list_new(static_cast<int>(pending.size()));
  for (const auto& [tp, value] : pending) {
    rd_kafka_topic_partition_t* p =
        rd_kafka_topic_partition_list_add(list, tp.first.c_str(), tp.second);
    p->offset = value.first;
    if (!value.second.empty()) {
      p->metadata = malloc(value.second.size());  // freed by the list
      memcpy(p->metadata, value.second.data(), value.second.size());
      p->metadata_size = value.second.size();
    }
  }
  rd_kafka_resp_err_t err =
      rd_kafka_commit(consumer_->c_ptr(), list, sync ? 0 : 1);
  if (sync && err == RD_KAFKA_RESP_ERR_NO_ERROR) {
    for (int i = 0; i < list->cnt; ++i) {  // a partition may fail alone
      if (list->elems[i].err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        err = list->elems[i].err;
        break;
      }
    }
  }
  rd_kafka_topic_partition_list_destroy(list);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    LOG(WARNING) << "commit failed: " << rd_kafka_err2str(err)
                 << "; will retry";
    absl::MutexLock lock(&mu_);
    for (const auto& [tp, value] : pending) {
      auto [it, fresh] = to_commit_.try_emplace(tp, value);
      if (!fresh && value.first > it->second.first) it->second = value;
    }
    return false;
  }
  return true;
}

void KafkaTaskLog::WarmUp(const std::vector<std::string>& topics) {
  for (auto* producer : {producer_.get(), bulk_producer_.get()}) {
    for (const std::string& name : topics) {
      std::string err;
      std::unique_ptr<RdKafka::Topic> topic(
          RdKafka::Topic::create(producer, name, nullptr, err));
      if (!topic) continue;
      RdKafka::Metadata* md = nullptr;
      if (producer->metadata(false, topic.get(), &md, 5000) !=
          RdKafka::ERR_NO_ERROR) {
        LOG(WARNING) << "no producer metadata for " << name << " yet";
      }
      delete md;
    }
  }
}

void KafkaTaskLog::SetTopicPaused(const std::string& topic, bool paused) {
  absl::MutexLock lock(&mu_);
  if (paused) {
    paused_topics_.insert(topic);
  } else {
    paused_topics_.erase(topic);
  }
  pauses_dirty_ = true;
}

void KafkaTaskLog::ApplyPauses() {
  std::set<std::string> paused;
  {
    absl::MutexLock lock(&mu_);
    if (!pauses_dirty_) return;
    pauses_dirty_ = false;
    paused = paused_topics_;
  }
  // Only partitions whose state changes: resuming a partition that was never
  // paused makes librdkafka fetch it again from the consumed position (a
  // rewind).
  std::vector<RdKafka::TopicPartition*> assigned;
  if (consumer_->assignment(assigned) != RdKafka::ERR_NO_ERROR ||
      assigned.empty()) {
    // Not assigned yet (assign() is asynchronous in librdkafka 2): try again on
    // the next round of the consume loop.
    RdKafka::TopicPartition::destroy(assigned);
    if (!paused.empty()) {
      absl::MutexLock lock(&mu_);
      pauses_dirty_ = true;
    }
    return;
  }
  std::vector<RdKafka::TopicPartition*> to_pause, to_resume;
  for (auto* tp : assigned) {
    const std::pair<std::string, int32_t> key{tp->topic(), tp->partition()};
    const bool want = paused.count(tp->topic()) > 0;
    const bool is = applied_paused_.count(key) > 0;
    if (want && !is) {
      to_pause.push_back(tp);
      applied_paused_.insert(key);
    } else if (!want && is) {
      to_resume.push_back(tp);
      applied_paused_.erase(key);
    }
  }
  if (!to_pause.empty()) consumer_->pause(to_pause);
  if (!to_resume.empty()) consumer_->resume(to_resume);
  RdKafka::TopicPartition::destroy(assigned);
}

}  // namespace kwq
