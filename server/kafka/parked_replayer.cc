#include "server/kafka/parked_replayer.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "glog/logging.h"
#include "kwq/v1/task.pb.h"

namespace kwq {

class ParkedReplayer::DeliveryCounter : public RdKafka::DeliveryReportCb {
 public:
  void dr_cb(RdKafka::Message& msg) override {
    if (msg.err() != RdKafka::ERR_NO_ERROR) {
      ++failed;
      LOG(WARNING) << "parked replay: " << msg.topic_name() << ": "
                   << msg.errstr();
    }
  }
  std::atomic<int64_t> failed{0};
};

class ParkedReplayer::Rebalancer : public RdKafka::RebalanceCb {
 public:
  explicit Rebalancer(ParkedReplayer* r) : r_(r) {}
  void rebalance_cb(RdKafka::KafkaConsumer* consumer, RdKafka::ErrorCode err,
                    std::vector<RdKafka::TopicPartition*>& parts) override {
    if (err == RdKafka::ERR__ASSIGN_PARTITIONS) {
      consumer->assign(parts);
      consumer->pause(parts);  // read only during a pass
      r_->owned_.clear();
      for (auto* tp : parts) r_->owned_.push_back(tp->partition());
      r_->RequestPass();  // jobs may have resumed while nobody owned these
    } else {
      consumer->unassign();
      r_->owned_.clear();
    }
  }

 private:
  ParkedReplayer* r_;
};

absl::StatusOr<std::unique_ptr<ParkedReplayer>> ParkedReplayer::Start(
    const KafkaCluster& cluster, ParkedReplayerOptions options) {
  std::unique_ptr<ParkedReplayer> r(new ParkedReplayer());
  r->options_ = std::move(options);
  r->rebalancer_ = std::make_unique<Rebalancer>(r.get());
  r->deliveries_ = std::make_unique<DeliveryCounter>();
  std::string err;
  auto cconf = MakeKafkaConf(cluster.ConsumerConfig(r->options_.group));
  if (!cconf.ok()) return cconf.status();
  if ((*cconf)->set("rebalance_cb", r->rebalancer_.get(), err) !=
      RdKafka::Conf::CONF_OK) {
    return absl::InternalError(err);
  }
  r->consumer_.reset(RdKafka::KafkaConsumer::create(cconf->get(), err));
  if (!r->consumer_) return absl::InternalError("parked consumer: " + err);
  auto pconf = MakeKafkaConf(MergeConfig(
      cluster.ClientConfig(),
      {{"enable.idempotence", "true"}, {"acks", "all"}, {"linger.ms", "5"}}));
  if (!pconf.ok()) return pconf.status();
  if ((*pconf)->set("dr_cb", r->deliveries_.get(), err) !=
      RdKafka::Conf::CONF_OK) {
    return absl::InternalError(err);
  }
  r->producer_.reset(RdKafka::Producer::create(pconf->get(), err));
  if (!r->producer_) return absl::InternalError("parked producer: " + err);
  if (RdKafka::ErrorCode e =
          r->consumer_->subscribe({r->options_.parked_topic});
      e != RdKafka::ERR_NO_ERROR) {
    return absl::InternalError(
        absl::StrCat("subscribe parked topic: ", RdKafka::err2str(e)));
  }
  r->thread_ = std::thread([p = r.get()] { p->Loop(); });
  return r;
}

ParkedReplayer::~ParkedReplayer() { Stop(); }

void ParkedReplayer::Stop() {
  if (stopping_.exchange(true)) return;
  if (thread_.joinable()) thread_.join();
  if (consumer_) consumer_->close();
  if (producer_) producer_->flush(5000);
}

void ParkedReplayer::RequestPass() {
  absl::MutexLock lock(&mu_);
  pass_due_ = std::min(pass_due_, absl::Now() + options_.settle);
}

void ParkedReplayer::Loop() {
  while (!stopping_) {
    // Keeps the group membership (and runs the rebalance callback); every
    // owned partition is paused outside a pass, so nothing arrives here.
    std::unique_ptr<RdKafka::Message> msg(consumer_->consume(100));
    producer_->poll(0);
    bool due = false;
    {
      absl::MutexLock lock(&mu_);
      if (absl::Now() >= pass_due_) {
        pass_due_ = absl::InfiniteFuture();
        due = true;
      }
    }
    if (due) RunPass();
  }
}

void ParkedReplayer::RunPass() {
  const std::set<std::string> paused = options_.paused_jobs();
  const std::string& topic = options_.parked_topic;
  ++passes_;
  for (int32_t partition : std::vector<int32_t>(owned_)) {
    std::vector<RdKafka::TopicPartition*> one = {
        RdKafka::TopicPartition::create(topic, partition)};
    int64_t committed = -1;
    if (consumer_->committed(one, 10000) == RdKafka::ERR_NO_ERROR) {
      committed = one[0]->offset();
    }
    RdKafka::TopicPartition::destroy(one);
    int64_t low = 0, high = 0;
    if (consumer_->query_watermark_offsets(topic, partition, &low, &high,
                                           5000) != RdKafka::ERR_NO_ERROR) {
      LOG(WARNING) << "parked replay: no watermarks for " << topic << "/"
                   << partition << "; retried with the next pass";
      RequestPass();
      continue;
    }
    const int64_t start = std::max(committed, low);
    if (start >= high) continue;
    if (!ReplayPartition(topic, partition, start, high, paused)) {
      RequestPass();
      continue;
    }
    std::vector<RdKafka::TopicPartition*> offsets = {
        RdKafka::TopicPartition::create(topic, partition, high)};
    if (RdKafka::ErrorCode e = consumer_->commitSync(offsets);
        e != RdKafka::ERR_NO_ERROR) {
      LOG(WARNING) << "parked replay: commit failed: " << RdKafka::err2str(e);
      RequestPass();
    }
    RdKafka::TopicPartition::destroy(offsets);
  }
}

bool ParkedReplayer::ReplayPartition(const std::string& topic,
                                     int32_t partition, int64_t start,
                                     int64_t end,
                                     const std::set<std::string>& paused) {
  std::vector<RdKafka::TopicPartition*> tp = {
      RdKafka::TopicPartition::create(topic, partition, start)};
  consumer_->resume(tp);
  consumer_->seek(*tp[0], 5000);
  const int64_t failed_before = deliveries_->failed;
  int64_t next = start;
  absl::Time idle_deadline = absl::Now() + absl::Seconds(30);
  auto produce = [&](const std::string& to, const std::string& key,
                     const std::string* value) {
    while (true) {
      RdKafka::ErrorCode e = producer_->produce(
          to, RdKafka::Topic::PARTITION_UA, RdKafka::Producer::RK_MSG_COPY,
          value ? const_cast<char*>(value->data()) : nullptr,
          value ? value->size() : 0, key.data(), key.size(), 0, nullptr);
      if (e != RdKafka::ERR__QUEUE_FULL) {
        if (e != RdKafka::ERR_NO_ERROR) ++deliveries_->failed;
        return;
      }
      producer_->poll(10);
    }
  };
  while (next < end && !stopping_ && absl::Now() < idle_deadline) {
    std::unique_ptr<RdKafka::Message> msg(consumer_->consume(200));
    producer_->poll(0);
    if (msg->err() != RdKafka::ERR_NO_ERROR || msg->partition() != partition ||
        msg->topic_name() != topic) {
      continue;
    }
    idle_deadline = absl::Now() + absl::Seconds(30);
    next = msg->offset() + 1;
    if (msg->len() == 0) continue;  // a tombstone
    const std::string value(static_cast<const char*>(msg->payload()),
                            msg->len());
    kwq::v1::Task task;
    if (!task.ParseFromString(value) || task.id().empty()) {
      LOG(WARNING) << "parked replay: dropping a record that is not a task at "
                   << topic << "/" << partition << "@" << msg->offset();
      continue;
    }
    if (paused.count(task.job_id())) {
      produce(topic, task.id(), &value);  // still paused: keep it parked
      ++rotated_;
    } else {
      produce(options_.topic_for_priority(task.priority()), task.id(), &value);
      produce(topic, task.id(), nullptr);  // out of the parked topic
      ++replayed_;
    }
  }
  consumer_->pause(tp);
  RdKafka::TopicPartition::destroy(tp);
  producer_->flush(30000);
  const bool ok = next >= end && producer_->outq_len() == 0 &&
                  deliveries_->failed == failed_before;
  if (!ok) {
    LOG(WARNING) << "parked replay of " << topic << "/" << partition
                 << " stopped at " << next << " of " << end
                 << "; not committed, retried with the next pass";
  }
  return ok;
}

}  // namespace kwq
