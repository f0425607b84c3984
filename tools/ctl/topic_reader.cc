#include "tools/ctl/topic_reader.h"

#include <algorithm>
#include <map>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/kafka/kafka_cluster.h"

namespace kwq::ctl {

int ReadTopicToEnd(const Context& c, const std::string& topic,
                   const std::function<void(const RdKafka::Message&)>& fn) {
  const std::string bootstrap = c.args.Get("bootstrap_servers");
  if (bootstrap.empty()) {
    return Fail(kExitUsage, "this command reads " + topic +
                                " in Kafka: give --bootstrap-servers HOST:PORT "
                                "(and --topic-prefix if not kwq)");
  }
  KafkaConfigMap properties;
  if (const std::string file = c.args.Get("kafka_config"); !file.empty()) {
    auto read = ReadKafkaProperties(file);
    if (!read.ok())
      return Fail(kExitUsage, std::string(read.status().message()));
    properties = std::move(*read);
  }
  auto cluster = KafkaCluster::Connect(bootstrap, absl::Seconds(c.timeout_s),
                                       std::move(properties));
  if (!cluster.ok())
    return Fail(kExitFailure, std::string(cluster.status().message()));
  auto conf = MakeKafkaConf((*cluster)->ConsumerConfig(
      absl::StrCat("kwqctl-read-", absl::ToUnixNanos(absl::Now()))));
  if (!conf.ok())
    return Fail(kExitFailure, std::string(conf.status().message()));
  std::string err;
  std::unique_ptr<RdKafka::KafkaConsumer> consumer(
      RdKafka::KafkaConsumer::create(conf->get(), err));
  if (!consumer) return Fail(kExitFailure, err);
  std::unique_ptr<RdKafka::Topic> t(
      RdKafka::Topic::create(consumer.get(), topic, nullptr, err));
  RdKafka::Metadata* md = nullptr;
  if (!t ||
      consumer->metadata(false, t.get(), &md, c.timeout_s * 1000) !=
          RdKafka::ERR_NO_ERROR ||
      md == nullptr || md->topics()->empty() ||
      md->topics()->at(0)->partitions()->empty()) {
    delete md;
    return Fail(kExitFailure, "no topic " + topic + " at " + bootstrap);
  }
  // Read each partition up to where it ends now.
  std::map<int32_t, int64_t> end;
  std::vector<RdKafka::TopicPartition*> parts;
  for (const auto* p : *md->topics()->at(0)->partitions()) {
    int64_t low = 0, high = 0;
    consumer->query_watermark_offsets(topic, p->id(), &low, &high,
                                      c.timeout_s * 1000);
    if (high > low) {
      end[p->id()] = high;
      parts.push_back(RdKafka::TopicPartition::create(topic, p->id(), low));
    }
  }
  delete md;
  consumer->assign(parts);
  RdKafka::TopicPartition::destroy(parts);
  const absl::Time deadline =
      absl::Now() + absl::Seconds(std::max(60, c.timeout_s));
  while (!end.empty() && absl::Now() < deadline) {
    std::unique_ptr<RdKafka::Message> m(consumer->consume(200));
    if (m->err() != RdKafka::ERR_NO_ERROR) continue;
    if (m->offset() + 1 >= end[m->partition()]) end.erase(m->partition());
    fn(*m);
  }
  consumer->close();
  if (!end.empty()) return Fail(kExitFailure, "timed out reading " + topic);
  return kExitOk;
}

}  // namespace kwq::ctl
