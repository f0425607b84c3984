// kwqctl job results JOB: the results of a job's completed tasks, read from
// <prefix>.results (keyed by job id) from its beginning to its end at the time
// of the call.
#include <algorithm>
#include <iostream>
#include <map>
#include <memory>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "kwq/v1/task.pb.h"
#include "librdkafka/rdkafkacpp.h"
#include "server/api/topics.h"
#include "server/kafka/kafka_cluster.h"
#include "tools/ctl/commands.h"

namespace kwq::ctl {

int JobResults(const Context& c, const std::string& job) {
  const std::string bootstrap = c.args.Get("bootstrap_servers");
  if (bootstrap.empty()) {
    return Fail(
        kExitUsage,
        "job results reads Kafka: give --bootstrap-servers HOST:PORT (and "
        "--topic-prefix if not kwq)");
  }
  const std::string topic =
      api::Topics(c.args.Get("topic_prefix", "kwq")).Results();
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
      absl::StrCat("kwqctl-results-", absl::ToUnixNanos(absl::Now()))));
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
  long long found = 0;
  const absl::Time deadline =
      absl::Now() + absl::Seconds(std::max(60, c.timeout_s));
  while (!end.empty() && absl::Now() < deadline) {
    std::unique_ptr<RdKafka::Message> m(consumer->consume(200));
    if (m->err() != RdKafka::ERR_NO_ERROR) continue;
    if (m->offset() + 1 >= end[m->partition()]) end.erase(m->partition());
    if (!m->key() || *m->key() != job) continue;
    kwq::v1::TaskResult r;
    if (!r.ParseFromArray(m->payload(), static_cast<int>(m->len()))) continue;
    ++found;
    if (c.format == Format::kTable) {
      const bool printable =
          std::all_of(r.result().begin(), r.result().end(), [](char ch) {
            return ch == '\n' || ch == '\t' || (ch >= 32 && ch < 127);
          });
      std::cout << r.task_id() << "\t" << r.attempt() << "\t" << r.worker_id()
                << "\t"
                << (printable ? r.result()
                              : "base64:" + absl::Base64Escape(r.result()))
                << "\n";
    } else {
      std::cout << ToJson(r) << "\n";  // bytes are base64 in proto JSON
    }
  }
  consumer->close();
  if (!end.empty()) return Fail(kExitFailure, "timed out reading " + topic);
  if (found == 0) {
    return Fail(kExitFailure, "no results for job " + job + " in " + topic);
  }
  return kExitOk;
}

}  // namespace kwq::ctl
