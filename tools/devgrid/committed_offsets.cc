#include "tools/devgrid/committed_offsets.h"

#include "absl/strings/str_cat.h"
#include "librdkafka/rdkafka.h"

namespace kwq::devgrid {

absl::StatusOr<int64_t> SumCommittedOffsets(
    const KafkaCluster& cluster, const std::string& group,
    const std::vector<std::string>& topics, int partitions) {
  auto conf = MakeKafkaConf(cluster.ConsumerConfig(group));
  if (!conf.ok()) return conf.status();
  std::string err;
  std::unique_ptr<RdKafka::KafkaConsumer> consumer(
      RdKafka::KafkaConsumer::create(conf->get(), err));
  if (!consumer) return absl::InternalError(err);
  std::vector<RdKafka::TopicPartition*> tps;
  for (const auto& t : topics) {
    for (int p = 0; p < partitions; ++p)
      tps.push_back(RdKafka::TopicPartition::create(t, p));
  }
  const RdKafka::ErrorCode code = consumer->committed(tps, 10000);
  int64_t sum = 0;
  for (auto* tp : tps) {
    if (tp->offset() >= 0) sum += tp->offset();
  }
  RdKafka::TopicPartition::destroy(tps);
  consumer->close();
  if (code != RdKafka::ERR_NO_ERROR) {
    return absl::UnavailableError(absl::StrCat("committed offsets of ", group,
                                               ": ", RdKafka::err2str(code)));
  }
  return sum;
}

absl::StatusOr<std::pair<int64_t, std::string>> CommittedWithMetadata(
    const KafkaCluster& cluster, const std::string& group,
    const std::string& topic, int32_t partition) {
  auto conf = MakeKafkaConf(cluster.ConsumerConfig(group));
  if (!conf.ok()) return conf.status();
  std::string err;
  std::unique_ptr<RdKafka::KafkaConsumer> consumer(
      RdKafka::KafkaConsumer::create(conf->get(), err));
  if (!consumer) return absl::InternalError(err);
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(list, topic.c_str(), partition);
  const rd_kafka_resp_err_t code =
      rd_kafka_committed(consumer->c_ptr(), list, 10000);
  std::pair<int64_t, std::string> out{-1, ""};
  if (code == RD_KAFKA_RESP_ERR_NO_ERROR) {
    const auto& p = list->elems[0];
    out.first = p.offset;
    if (p.metadata != nullptr) {
      out.second.assign(static_cast<const char*>(p.metadata), p.metadata_size);
    }
  }
  rd_kafka_topic_partition_list_destroy(list);
  consumer->close();
  if (code != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return absl::UnavailableError(rd_kafka_err2str(code));
  }
  return out;
}

}  // namespace kwq::devgrid
