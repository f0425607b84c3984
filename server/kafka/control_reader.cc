#include "server/kafka/control_reader.h"

#include <map>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "glog/logging.h"

namespace kwq {

absl::StatusOr<std::unique_ptr<ControlReader>> ControlReader::Start(
    const KafkaCluster& cluster, const std::string& topic, OnRecord on_record,
    absl::Duration catch_up) {
  std::unique_ptr<ControlReader> r(new ControlReader());
  r->on_record_ = std::move(on_record);
  auto conf = MakeKafkaConf(cluster.ConsumerConfig(
      absl::StrCat(topic, ".reader-", absl::ToUnixNanos(absl::Now()))));
  if (!conf.ok()) return conf.status();
  std::string err;
  r->consumer_.reset(RdKafka::KafkaConsumer::create(conf->get(), err));
  if (!r->consumer_)
    return absl::InternalError(absl::StrCat("control reader: ", err));

  const absl::Time deadline = absl::Now() + catch_up;
  // The partitions and where they end now.
  std::unique_ptr<RdKafka::Topic> t(
      RdKafka::Topic::create(r->consumer_.get(), topic, nullptr, err));
  if (!t) return absl::InternalError(err);
  std::map<int32_t, int64_t> end;
  while (end.empty() && absl::Now() < deadline) {
    RdKafka::Metadata* md = nullptr;
    if (r->consumer_->metadata(false, t.get(), &md, 2000) ==
            RdKafka::ERR_NO_ERROR &&
        md != nullptr && !md->topics()->empty()) {
      for (const auto* p : *md->topics()->at(0)->partitions())
        end[p->id()] = -1;
    }
    delete md;
    if (end.empty())
      absl::SleepFor(absl::Milliseconds(100));  // topic just created
  }
  if (end.empty())
    return absl::UnavailableError(absl::StrCat("no metadata for ", topic));
  std::vector<RdKafka::TopicPartition*> parts;
  for (auto& [p, high] : end) {
    int64_t low = 0;
    RdKafka::ErrorCode code;
    // A topic created a moment ago may have no leader yet: ask again until it
    // answers.
    while ((code = r->consumer_->query_watermark_offsets(
                topic, p, &low, &high, 2000)) != RdKafka::ERR_NO_ERROR) {
      if (absl::Now() > deadline) {
        return absl::UnavailableError(absl::StrCat(
            "end offsets of ", topic, ": ", RdKafka::err2str(code)));
      }
      absl::SleepFor(absl::Milliseconds(100));
    }
    parts.push_back(RdKafka::TopicPartition::create(
        topic, p, RdKafka::Topic::OFFSET_BEGINNING));
  }
  r->consumer_->assign(parts);
  RdKafka::TopicPartition::destroy(parts);
  // Catch up: deliver until every partition's position reached its end at
  // start.
  while (true) {
    std::vector<RdKafka::TopicPartition*> pos;
    for (auto& [p, high] : end)
      pos.push_back(RdKafka::TopicPartition::create(topic, p));
    r->consumer_->position(pos);
    bool caught_up = true;
    for (auto* tp : pos) {
      const int64_t high = end[tp->partition()];
      if (high > 0 && (tp->offset() < 0 || tp->offset() < high))
        caught_up = false;
    }
    RdKafka::TopicPartition::destroy(pos);
    if (caught_up) break;
    if (absl::Now() > deadline) {
      return absl::UnavailableError(
          absl::StrCat("could not read ", topic, " to its end within ",
                       absl::FormatDuration(catch_up)));
    }
    r->Poll(100);
  }
  r->thread_ = std::thread([p = r.get()] {
    while (!p->stop_) p->Poll(100);
  });
  return r;
}

bool ControlReader::Poll(int timeout_ms) {
  std::unique_ptr<RdKafka::Message> msg(consumer_->consume(timeout_ms));
  if (msg->err() != RdKafka::ERR_NO_ERROR) return false;
  const std::string key = msg->key() ? *msg->key() : "";
  const std::string value =
      msg->payload()
          ? std::string(static_cast<const char*>(msg->payload()), msg->len())
          : "";
  if (!key.empty()) on_record_(key, value);
  return true;
}

ControlReader::~ControlReader() { Stop(); }

void ControlReader::Stop() {
  if (stop_.exchange(true)) return;
  if (thread_.joinable()) thread_.join();
  if (consumer_) consumer_->close();
}

}  // namespace kwq
