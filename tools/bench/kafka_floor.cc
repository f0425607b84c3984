// kafka_floor: the Kafka work kwq does per task, without gRPC or scheduling:
// the floor kwq's throughput is compared against. Per task it
//   submit:   produces the task record (key: id) and a PENDING event (key:
//   job), acks=all,
//             idempotent; then
//   dispatch: consumes the task record in a consumer group (manual offsets),
//   produces
//             ALLOCATED, RUNNING and COMPLETED events and a result record, and
//             commits the offset once they are acknowledged (every 100 ms, like
//             kwq).
// Prints one JSON line: tasks, seconds, tasks_per_second, and a correctness
// verdict (every task record consumed exactly once, every produce
// acknowledged).
#include <atomic>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "gflags/gflags.h"
#include "glog/logging.h"
#include "librdkafka/rdkafkacpp.h"
#include "server/kafka/kafka_cluster.h"

DEFINE_string(bootstrap_servers, "", "Kafka (required)");
DEFINE_int64(tasks, 200000, "tasks");
DEFINE_int32(payload_bytes, 128, "bytes of each task record's payload");
DEFINE_int32(partitions, 4, "partitions of the task and event topics");

namespace {

class Counter : public RdKafka::DeliveryReportCb {
 public:
  void dr_cb(RdKafka::Message& m) override {
    if (m.err() == RdKafka::ERR_NO_ERROR) {
      ++ok;
    } else {
      ++failed;
    }
  }
  std::atomic<int64_t> ok{0}, failed{0};
};

std::unique_ptr<RdKafka::Producer> MakeProducer(const kwq::KafkaCluster& c,
                                                Counter* dr) {
  auto conf = kwq::MakeKafkaConf(kwq::MergeConfig(
      c.ClientConfig(),
      {{"enable.idempotence", "true"}, {"acks", "all"}, {"linger.ms", "2"}}));
  std::string err;
  (*conf)->set("dr_cb", dr, err);
  return std::unique_ptr<RdKafka::Producer>(
      RdKafka::Producer::create(conf->get(), err));
}

void Produce(RdKafka::Producer* p, const std::string& topic,
             const std::string& key, const std::string& value) {
  while (p->produce(topic, RdKafka::Topic::PARTITION_UA,
                    RdKafka::Producer::RK_MSG_COPY,
                    const_cast<char*>(value.data()), value.size(), key.data(),
                    key.size(), 0, nullptr) == RdKafka::ERR__QUEUE_FULL) {
    p->poll(5);
  }
  p->poll(0);
}

}  // namespace

int main(int argc, char** argv) {
  gflags::SetUsageMessage(
      "kafka_floor --bootstrap_servers=HOST:PORT [--tasks N]");
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  FLAGS_logtostderr = true;
  google::InitGoogleLogging(argv[0]);
  if (FLAGS_bootstrap_servers.empty() || FLAGS_tasks < 1) {
    std::cerr << "kafka_floor: need --bootstrap_servers and --tasks >= 1\n";
    return 2;
  }
  auto cluster =
      kwq::KafkaCluster::Connect(FLAGS_bootstrap_servers, absl::Seconds(15));
  if (!cluster.ok()) {
    std::cerr << "kafka_floor: " << cluster.status() << "\n";
    return 1;
  }
  const std::string prefix =
      absl::StrCat("floor-", getpid(), "-", absl::ToUnixSeconds(absl::Now()));
  const std::string tasks = prefix + ".tasks", events = prefix + ".events",
                    results = prefix + ".results";
  if (auto s = (*cluster)->EnsureTopics({{tasks, FLAGS_partitions, {}},
                                         {events, FLAGS_partitions, {}},
                                         {results, FLAGS_partitions, {}}},
                                        absl::Seconds(30));
      !s.ok()) {
    std::cerr << "kafka_floor: " << s << "\n";
    return 1;
  }
  Counter submit_dr, dispatch_dr;
  auto submitter = MakeProducer(**cluster, &submit_dr);
  auto dispatcher = MakeProducer(**cluster, &dispatch_dr);
  auto cconf = kwq::MakeKafkaConf(
      kwq::MergeConfig((*cluster)->ConsumerConfig(prefix + ".g"), {}));
  std::string err;
  std::unique_ptr<RdKafka::KafkaConsumer> consumer(
      RdKafka::KafkaConsumer::create(cconf->get(), err));
  consumer->subscribe({tasks});

  const std::string payload(static_cast<size_t>(FLAGS_payload_bytes), 'x');
  const std::string event(96, 'e');  // about the size of a kwq TaskEvent
  const absl::Time start = absl::Now();
  std::thread submit([&] {
    for (int64_t i = 0; i < FLAGS_tasks; ++i) {
      const std::string id = absl::StrCat("t", i);
      Produce(submitter.get(), tasks, id, payload);
      Produce(submitter.get(), events, "job", event);
    }
    submitter->flush(120000);
  });
  std::set<std::pair<int32_t, int64_t>> seen;
  int64_t duplicates = 0;
  std::map<int32_t, int64_t> next;
  absl::Time next_commit = absl::Now() + absl::Milliseconds(100);
  const absl::Time deadline = start + absl::Minutes(10);
  while (static_cast<int64_t>(seen.size()) < FLAGS_tasks &&
         absl::Now() < deadline) {
    std::unique_ptr<RdKafka::Message> m(consumer->consume(50));
    if (m->err() == RdKafka::ERR_NO_ERROR) {
      if (!seen.insert({m->partition(), m->offset()}).second) ++duplicates;
      const std::string key = m->key() ? *m->key() : "";
      Produce(dispatcher.get(), events, "job", event);  // ALLOCATED
      Produce(dispatcher.get(), events, "job", event);  // RUNNING
      Produce(dispatcher.get(), events, "job", event);  // COMPLETED
      Produce(dispatcher.get(), results, "job", key);   // the result
      next[m->partition()] = m->offset() + 1;
    }
    if (absl::Now() >= next_commit) {
      dispatcher->flush(10000);  // decided only once durable, as in kwq
      std::vector<RdKafka::TopicPartition*> offs;
      for (auto& [p, o] : next)
        offs.push_back(RdKafka::TopicPartition::create(tasks, p, o));
      if (!offs.empty()) consumer->commitAsync(offs);
      RdKafka::TopicPartition::destroy(offs);
      next_commit = absl::Now() + absl::Milliseconds(100);
    }
  }
  dispatcher->flush(120000);
  submit.join();
  const double secs = absl::ToDoubleSeconds(absl::Now() - start);
  consumer->close();
  const int64_t expected_acks = FLAGS_tasks * 2;
  const bool correct =
      static_cast<int64_t>(seen.size()) == FLAGS_tasks && duplicates == 0 &&
      submit_dr.ok == expected_acks && submit_dr.failed == 0 &&
      dispatch_dr.ok == FLAGS_tasks * 4 && dispatch_dr.failed == 0;
  std::cout << absl::StrFormat(
                   "{\"tasks\":%d,\"seconds\":%.3f,\"tasks_per_second\":%.1f,"
                   "\"consumed\":%d,"
                   "\"duplicates\":%d,\"produce_failures\":%d,\"correct\":%s}",
                   FLAGS_tasks, secs, static_cast<double>(FLAGS_tasks) / secs,
                   static_cast<int64_t>(seen.size()), duplicates,
                   static_cast<int64_t>(submit_dr.failed + dispatch_dr.failed),
                   correct ? "true" : "false")
            << std::endl;
  // Its topics go, so that runs do not pile up topics on the broker. The
  // clients go first: a consumer handle destroyed after its topics were
  // deleted hung in rd_kafka_destroy (librdkafka 2.0.2, seen here).
  consumer.reset();
  submitter.reset();
  dispatcher.reset();
  if (auto d =
          (*cluster)->DeleteTopicsWithPrefix(prefix + ".", absl::Seconds(10));
      !d.ok()) {
    LOG(WARNING) << "could not delete " << prefix << ".*: " << d.status();
  }
  return correct ? 0 : 1;
}
