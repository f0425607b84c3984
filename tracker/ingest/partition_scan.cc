#include "tracker/ingest/partition_scan.h"

#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace kwq::tracker {

absl::StatusOr<std::unique_ptr<RdKafka::KafkaConsumer>> ScanConsumer(
    const KafkaCluster& cluster, const std::string& topic) {
  auto conf =
      MakeKafkaConf(MergeConfig(cluster.ConsumerConfig(topic + ".console"),
                                {{"enable.auto.commit", "false"},
                                 {"enable.partition.eof", "true"},
                                 {"statistics.interval.ms", "0"}}));
  if (!conf.ok()) return conf.status();
  std::string err;
  std::unique_ptr<RdKafka::KafkaConsumer> c(
      RdKafka::KafkaConsumer::create(conf->get(), err));
  if (!c) {
    return absl::InternalError(absl::StrCat("consumer of ", topic, ": ", err));
  }
  return c;
}

absl::StatusOr<std::map<int32_t, OffsetRange>> Watermarks(
    RdKafka::KafkaConsumer* consumer, const std::string& topic,
    absl::Duration timeout) {
  const int timeout_ms = static_cast<int>(absl::ToInt64Milliseconds(timeout));
  std::string err;
  std::unique_ptr<RdKafka::Topic> t(
      RdKafka::Topic::create(consumer, topic, nullptr, err));
  if (!t) return absl::InternalError(absl::StrCat(topic, ": ", err));
  RdKafka::Metadata* raw = nullptr;
  const RdKafka::ErrorCode code =
      consumer->metadata(false, t.get(), &raw, timeout_ms);
  std::unique_ptr<RdKafka::Metadata> md(raw);
  if (code != RdKafka::ERR_NO_ERROR || !md || md->topics()->empty()) {
    return absl::UnavailableError(
        absl::StrCat("no metadata for ", topic, ": ", RdKafka::err2str(code)));
  }
  const RdKafka::TopicMetadata* tm = md->topics()->at(0);
  if (tm->err() == RdKafka::ERR_UNKNOWN_TOPIC_OR_PART) {
    return absl::NotFoundError(absl::StrCat("no topic ", topic));
  }
  std::map<int32_t, OffsetRange> out;
  for (const RdKafka::PartitionMetadata* p : *tm->partitions()) {
    OffsetRange r;
    if (consumer->query_watermark_offsets(topic, p->id(), &r.from, &r.end,
                                          timeout_ms) !=
        RdKafka::ERR_NO_ERROR) {
      return absl::UnavailableError(
          absl::StrCat("no offsets for ", topic, "/", p->id()));
    }
    out[p->id()] = r;
  }
  return out;
}

absl::Status ScanPartitions(
    RdKafka::KafkaConsumer* consumer, const std::string& topic,
    const std::map<int32_t, OffsetRange>& ranges, absl::Duration timeout,
    const std::function<bool(const RdKafka::Message&)>& fn) {
  std::vector<RdKafka::TopicPartition*> parts;
  std::map<int32_t, int64_t> open;  // partition -> end of its range
  for (const auto& [p, r] : ranges) {
    if (r.from >= r.end) continue;
    open[p] = r.end;
    parts.push_back(RdKafka::TopicPartition::create(topic, p, r.from));
  }
  if (parts.empty()) return absl::OkStatus();
  consumer->assign(parts);
  RdKafka::TopicPartition::destroy(parts);
  const absl::Time deadline = absl::Now() + timeout;
  while (!open.empty() && absl::Now() < deadline) {
    std::unique_ptr<RdKafka::Message> m(consumer->consume(100));
    auto it = open.find(m->partition());
    if (it == open.end()) continue;
    if (m->err() == RdKafka::ERR__PARTITION_EOF) {
      if (m->offset() >= it->second) open.erase(it);
      continue;
    }
    if (m->err() != RdKafka::ERR_NO_ERROR) continue;
    if (m->offset() >= it->second || !fn(*m) || m->offset() + 1 >= it->second) {
      open.erase(it);
    }
  }
  consumer->unassign();
  if (!open.empty()) {
    return absl::DeadlineExceededError(
        absl::StrCat("read only part of ", topic, " within ",
                     absl::FormatDuration(timeout)));
  }
  return absl::OkStatus();
}

}  // namespace kwq::tracker
