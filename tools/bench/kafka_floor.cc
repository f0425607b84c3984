// kafka_floor: the Kafka work kwq does per task, without gRPC or scheduling:
// the floor kwq's throughput is compared against. Per task it
//   submit:   produces the task record (key: id) and a PENDING event (key:
//             job), acks=all, idempotent;
//   dispatch: consumes the task record in a consumer group (manual offsets),
//             produces its stage events (--stage_events: 1, the one COMPLETED
//             event carrying the earlier stages that kwq writes for a short
//             task; 3, ALLOCATED, RUNNING and COMPLETED, as kwq with
//             --event_fold_ms=0 or for a long task) and a result record, and
//             commits (every 100 ms, like kwq) the offsets whose records are
//             all acknowledged, without waiting for them in the
//             loop (kwq does not stop dispatching while its events are in
//             flight either);
//   track:    reads every event back, as kwq's tracker does (all partitions
//             of the events topic, 64 KiB / 50 ms fetches); the run ends when
//             all were read (kwq's run ends when its tracker has counted every
//             task done). --read_events=false leaves this out.
// With --rate R the submitter sends one task at a time at R tasks/s (linger 0,
// as kwq's urgent producer) and the dispatcher fetches as kwq's does (waits of
// up to 100 ms, answered when data arrives): submit_to_consume_p50_ms / p99 /
// p999 are the Kafka part of kwq's idle submit-to-start latency (the first
// second is left out, as kwqctl simulate does). With --rate R
// --submit_batch N --task_topics 10 it sends Submits of N tasks at R tasks/s
// over ten task topics (kwq's priority topics), both producers lingering as
// kwq's do: the floor's work at kwq's throughput and layout, where the broker's
// cost per task is what kwq's compares with (tools/bench/README.md).
// Prints one JSON line: tasks, seconds, tasks_per_second, and a correctness
// verdict (every task record consumed exactly once, every produce
// acknowledged, every event read).
#include <algorithm>
#include <atomic>
#include <deque>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "gflags/gflags.h"
#include "glog/logging.h"
#include "librdkafka/rdkafka.h"
#include "librdkafka/rdkafkacpp.h"
#include "server/kafka/kafka_cluster.h"
#include "server/util/mutex_mode.h"
#include "tools/ctl/measure.h"

DEFINE_string(bootstrap_servers, "", "Kafka (required)");
DEFINE_int64(tasks, 200000, "tasks");
DEFINE_int32(payload_bytes, 128, "bytes of each task record's payload");
DEFINE_int32(partitions, 4, "partitions of the task and event topics");
DEFINE_int32(task_topics, 1,
             "task topics: 1, or kwq's layout of one topic per priority (10): "
             "task i goes to topic i % N, as kwqctl simulate spreads its "
             "tasks over priorities, and the dispatcher's consumer reads all "
             "of them");
DEFINE_int32(cpu_of_pid, 0,
             "also report this process's CPU seconds in the measured window "
             "(e.g. the Kafka broker's)");
DEFINE_double(rate, 0,
              "tasks/s, one at a time (latency); 0: as fast as possible");
DEFINE_int32(submit_batch, 1,
             "with --rate: tasks sent together, as one Submit of that many "
             "(kwqctl simulate's is 1000), at the paced rate; both producers "
             "then linger 10 ms, as kwq's for Submits of 64+ tasks and for "
             "events and results; no latency is measured. 1: one task at a "
             "time, linger 0 (latency)");
DEFINE_int32(stage_events, 1,
             "events the dispatcher writes per task: 1 (a folded COMPLETED, "
             "as kwq for a short task) or 3 (ALLOCATED, RUNNING, COMPLETED)");
DEFINE_bool(read_events, true,
            "read every event back, as kwq's tracker does (the run ends when "
            "all were read)");

namespace {

// Counts deliveries. A record produced with an opaque pointing into
// `remaining` also counts down its consumed task's outstanding produces.
class Counter : public RdKafka::DeliveryReportCb {
 public:
  void dr_cb(RdKafka::Message& m) override {
    if (m.err() == RdKafka::ERR_NO_ERROR) {
      ++ok;
      if (m.msg_opaque() != nullptr) --*static_cast<int*>(m.msg_opaque());
    } else {
      ++failed;
    }
  }
  std::atomic<int64_t> ok{0}, failed{0};
};

std::unique_ptr<RdKafka::Producer> MakeProducer(const kwq::KafkaCluster& c,
                                                Counter* dr,
                                                const char* linger = "2") {
  auto conf = kwq::MakeKafkaConf(
      kwq::MergeConfig(c.ClientConfig(), {{"enable.idempotence", "true"},
                                          {"acks", "all"},
                                          {"linger.ms", linger}}));
  std::string err;
  (*conf)->set("dr_cb", dr, err);
  return std::unique_ptr<RdKafka::Producer>(
      RdKafka::Producer::create(conf->get(), err));
}

void Produce(RdKafka::Producer* p, const std::string& topic,
             const std::string& key, const std::string& value,
             int* remaining = nullptr) {
  while (p->produce(topic, RdKafka::Topic::PARTITION_UA,
                    RdKafka::Producer::RK_MSG_COPY,
                    const_cast<char*>(value.data()), value.size(), key.data(),
                    key.size(), 0, remaining) == RdKafka::ERR__QUEUE_FULL) {
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
  kwq::DisableMutexDeadlockDetection();
  if (FLAGS_bootstrap_servers.empty() || FLAGS_tasks < 1) {
    std::cerr << "kafka_floor: need --bootstrap_servers and --tasks >= 1\n";
    return 2;
  }
  if (FLAGS_task_topics < 1 || FLAGS_task_topics > 10) {
    std::cerr << "kafka_floor: --task_topics must be 1-10\n";
    return 2;
  }
  if (FLAGS_submit_batch < 1) {
    std::cerr << "kafka_floor: --submit_batch must be >= 1\n";
    return 2;
  }
  if (FLAGS_stage_events != 1 && FLAGS_stage_events != 3) {
    std::cerr << "kafka_floor: --stage_events must be 1 or 3\n";
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
  const std::string events = prefix + ".events", results = prefix + ".results";
  std::vector<std::string> task_topics;
  for (int t = 0; t < FLAGS_task_topics; ++t) {
    task_topics.push_back(FLAGS_task_topics == 1
                              ? prefix + ".tasks"
                              : absl::StrCat(prefix, ".tasks.p", t));
  }
  std::vector<kwq::TopicSpec> specs = {{events, FLAGS_partitions, {}},
                                       {results, FLAGS_partitions, {}}};
  for (const auto& t : task_topics) specs.push_back({t, FLAGS_partitions, {}});
  if (auto s = (*cluster)->EnsureTopics(specs, absl::Seconds(30)); !s.ok()) {
    std::cerr << "kafka_floor: " << s << "\n";
    return 1;
  }
  Counter submit_dr, dispatch_dr;
  // Paced Submits of several tasks: kwq's throughput run at its own rate.
  const bool paced_batches = FLAGS_rate > 0 && FLAGS_submit_batch > 1;
  auto submitter =
      MakeProducer(**cluster, &submit_dr,
                   FLAGS_rate > 0 ? (paced_batches ? "10" : "0") : "2");
  auto dispatcher =
      MakeProducer(**cluster, &dispatch_dr, paced_batches ? "10" : "2");
  auto cconf = kwq::MakeKafkaConf(
      kwq::MergeConfig((*cluster)->ConsumerConfig(prefix + ".g"),
                       {{"fetch.wait.max.ms", "100"}}));  // kwq's dispatcher
  std::string err;
  std::unique_ptr<RdKafka::KafkaConsumer> consumer(
      RdKafka::KafkaConsumer::create(cconf->get(), err));
  consumer->subscribe(task_topics);
  // The clock starts once each client is warm: the group join, the first
  // fetches of new topics and an idempotent producer's id (each about a
  // second here; the dispatcher's producer sent nothing for 0.9 s) are not the
  // throughput. kwqctl simulate runs a warm-up task before its clock the same
  // way. Each producer sends two warm-up records to each topic it writes, one
  // of 8 KiB and a small one: the second's append writes the partition's first
  // index entry (a fresh partition's first index write cost 5-9 ms on this VM;
  // kwqctl simulate warms its partitions the same way). The tracker's reads
  // count the four warm-up events too; the consumer's are the first two task
  // records of each task topic.
  {
    const std::string big(8192, 'w'), small("warm-up");
    for (const std::string* value : {&big, &small}) {
      Produce(submitter.get(), events, "warm-up", *value);
      Produce(dispatcher.get(), events, "warm-up", *value);
      Produce(dispatcher.get(), results, "warm-up", *value);
      for (const auto& t : task_topics) {
        Produce(submitter.get(), t, "warm-up", *value);
      }
      submitter->flush(30000);
      dispatcher->flush(30000);
    }
    submit_dr.ok = 0;
    dispatch_dr.ok = 0;
    const absl::Time until = absl::Now() + absl::Seconds(30);
    int through = 0;
    const int warm_ups = 2 * FLAGS_task_topics;
    while (through < warm_ups && absl::Now() < until) {
      std::unique_ptr<RdKafka::Message> m(consumer->consume(50));
      if (m->err() == RdKafka::ERR_NO_ERROR) ++through;
    }
    if (through < warm_ups) {
      std::cerr
          << "kafka_floor: the warm-up records were not consumed in 30 s\n";
      return 1;
    }
  }

  // The tracker's reads: every partition of the events topic, assigned.
  // PENDING and the stage events of every task, + the warm-ups.
  const int64_t expected_events = FLAGS_tasks * (1 + FLAGS_stage_events) + 4;
  std::atomic<int64_t> events_read{0};
  std::unique_ptr<RdKafka::KafkaConsumer> tracker;
  if (FLAGS_read_events) {
    auto tconf = kwq::MakeKafkaConf(
        kwq::MergeConfig((*cluster)->ConsumerConfig(prefix + ".tracker"),
                         {{"queued.max.messages.kbytes", "65536"},
                          {"fetch.min.bytes", "65536"},
                          {"fetch.wait.max.ms", "50"}}));
    tracker.reset(RdKafka::KafkaConsumer::create(tconf->get(), err));
    std::vector<RdKafka::TopicPartition*> parts;
    for (int p = 0; p < FLAGS_partitions; ++p) {
      parts.push_back(RdKafka::TopicPartition::create(
          events, p, RdKafka::Topic::OFFSET_BEGINNING));
    }
    tracker->assign(parts);
    RdKafka::TopicPartition::destroy(parts);
  }

  const std::string payload(static_cast<size_t>(FLAGS_payload_bytes), 'x');
  const std::string event(96, 'e');  // about the size of a kwq TaskEvent
  const absl::Time start = absl::Now();
  const double cpu_start = kwq::ctl::OwnCpuSeconds();
  const double other_cpu_start =
      FLAGS_cpu_of_pid > 0 ? kwq::ctl::CpuSecondsOf(FLAGS_cpu_of_pid) : -1;
  std::thread submit([&] {
    for (int64_t i = 0; i < FLAGS_tasks; ++i) {
      const std::string id = absl::StrCat("t", i);
      const std::string& topic = task_topics[i % FLAGS_task_topics];
      if (FLAGS_rate > 0 && i % FLAGS_submit_batch == 0) {  // pacing
        const absl::Time due =
            start + absl::Seconds(static_cast<double>(i) / FLAGS_rate);
        if (due > absl::Now()) absl::SleepFor(due - absl::Now());
      }
      if (FLAGS_rate > 0 && !paced_batches) {
        // The send time leads the payload (same host, same clock).
        Produce(submitter.get(), topic, id,
                absl::StrCat(absl::GetCurrentTimeNanos(), ";", payload));
      } else {
        Produce(submitter.get(), topic, id, payload);
      }
      Produce(submitter.get(), events, "job", event);
    }
    submitter->flush(120000);
  });
  std::vector<double> latency_ms;  // submit to consume, with --rate
  std::thread track;
  if (tracker) {
    track = std::thread([&] {
      const absl::Time until = start + absl::Minutes(10);
      while (events_read < expected_events && absl::Now() < until) {
        std::unique_ptr<RdKafka::Message> m(tracker->consume(100));
        if (m->err() == RdKafka::ERR_NO_ERROR) ++events_read;
      }
    });
  }
  std::set<std::tuple<int, int32_t, int64_t>> seen;
  // The task topic of a consumed record, as an index into task_topics (by its
  // topic handle: no name copied per record).
  std::vector<std::pair<const rd_kafka_topic_t*, int>> topic_index;
  auto index_of = [&](RdKafka::Message* m) {
    const rd_kafka_topic_t* rkt = m->c_ptr()->rkt;
    for (const auto& [k, i] : topic_index) {
      if (k == rkt) return i;
    }
    const std::string name = m->topic_name();
    const int i = static_cast<int>(
        std::find(task_topics.begin(), task_topics.end(), name) -
        task_topics.begin());
    topic_index.push_back({rkt, i});
    return i;
  };
  int64_t duplicates = 0;
  // Per consumed record, its produces not yet acknowledged (counted down by
  // the delivery reports; a deque keeps the counters where they are), and
  // per partition the records in offset order: the acknowledged prefix is
  // committed.
  std::deque<int> remaining;
  std::map<std::pair<int, int32_t>, std::deque<std::pair<int64_t, int*>>>
      in_flight;
  auto commit = [&] {
    std::vector<RdKafka::TopicPartition*> offs;
    for (auto& [tp, q] : in_flight) {
      int64_t next = -1;
      while (!q.empty() && *q.front().second == 0) {
        next = q.front().first + 1;
        q.pop_front();
      }
      if (next >= 0) {
        offs.push_back(RdKafka::TopicPartition::create(task_topics[tp.first],
                                                       tp.second, next));
      }
    }
    if (!offs.empty()) consumer->commitAsync(offs);
    RdKafka::TopicPartition::destroy(offs);
  };
  auto all_acknowledged = [&] {
    for (auto& [tp, q] : in_flight) {
      if (!q.empty()) return false;
    }
    return true;
  };
  absl::Time next_commit = absl::Now() + absl::Milliseconds(100);
  const absl::Time deadline = start + absl::Minutes(10);
  while ((static_cast<int64_t>(seen.size()) < FLAGS_tasks ||
          !all_acknowledged()) &&
         absl::Now() < deadline) {
    std::unique_ptr<RdKafka::Message> m(consumer->consume(
        static_cast<int64_t>(seen.size()) < FLAGS_tasks ? 50 : 0));
    if (m->err() == RdKafka::ERR_NO_ERROR) {
      const int topic = index_of(m.get());
      if (!seen.insert({topic, m->partition(), m->offset()}).second) {
        ++duplicates;
      }
      if (FLAGS_rate > 0 && !paced_batches &&
          absl::Now() - start > absl::Seconds(1)) {  // warm-up second left out
        const std::string v(static_cast<const char*>(m->payload()), m->len());
        int64_t sent = 0;
        if (absl::SimpleAtoi(v.substr(0, v.find(';')), &sent)) {
          latency_ms.push_back(
              static_cast<double>(absl::GetCurrentTimeNanos() - sent) / 1e6);
        }
      }
      const std::string key = m->key() ? *m->key() : "";
      remaining.push_back(FLAGS_stage_events + 1);
      int* left = &remaining.back();
      in_flight[{topic, m->partition()}].push_back({m->offset(), left});
      for (int i = 0; i < FLAGS_stage_events; ++i) {
        Produce(dispatcher.get(), events, "job", event, left);
      }
      Produce(dispatcher.get(), results, "job", key, left);  // the result
    } else {
      dispatcher->poll(static_cast<int64_t>(seen.size()) < FLAGS_tasks ? 0
                                                                       : 10);
    }
    if (absl::Now() >= next_commit) {
      commit();  // what is durable, as in kwq; the loop does not wait for it
      next_commit = absl::Now() + absl::Milliseconds(100);
    }
  }
  commit();
  dispatcher->flush(120000);
  submit.join();
  if (track.joinable()) track.join();
  const double secs = absl::ToDoubleSeconds(absl::Now() - start);
  const double cpu_window = kwq::ctl::OwnCpuSeconds() - cpu_start;
  const double other_cpu_window =
      other_cpu_start >= 0
          ? kwq::ctl::CpuSecondsOf(FLAGS_cpu_of_pid) - other_cpu_start
          : -1;
  consumer->close();
  const int64_t expected_acks = FLAGS_tasks * 2;
  const bool correct =
      static_cast<int64_t>(seen.size()) == FLAGS_tasks && duplicates == 0 &&
      submit_dr.ok == expected_acks && submit_dr.failed == 0 &&
      dispatch_dr.ok == FLAGS_tasks * (FLAGS_stage_events + 1) &&
      dispatch_dr.failed == 0 && (!tracker || events_read == expected_events);
  std::cout << absl::StrFormat(
                   "{\"tasks\":%d,\"seconds\":%.3f,\"tasks_per_second\":%.1f,"
                   "\"consumed\":%d,\"events_read\":%d,"
                   "\"duplicates\":%d,\"produce_failures\":%d,\"correct\":%s,"
                   "\"cpu_seconds\":%.3f%s%s}",
                   FLAGS_tasks, secs, static_cast<double>(FLAGS_tasks) / secs,
                   static_cast<int64_t>(seen.size()), events_read.load(),
                   duplicates,
                   static_cast<int64_t>(submit_dr.failed + dispatch_dr.failed),
                   correct ? "true" : "false", cpu_window,
                   other_cpu_window >= 0
                       ? absl::StrFormat(",\"cpu_seconds_of_pid\":%.3f",
                                         other_cpu_window)
                       : "",
                   latency_ms.empty()
                       ? ""
                       : absl::StrFormat(
                             ",\"submit_to_consume_p50_ms\":%.3f,"
                             "\"submit_to_consume_p99_ms\":%.3f,"
                             "\"submit_to_consume_p999_ms\":%.3f",
                             kwq::ctl::Percentile(latency_ms, 0.5),
                             kwq::ctl::Percentile(latency_ms, 0.99),
                             kwq::ctl::Percentile(latency_ms, 0.999)))
            << std::endl;
  // Its topics go, so that runs do not pile up topics on the broker. The
  // clients go first: a consumer handle destroyed after its topics were
  // deleted hung in rd_kafka_destroy (librdkafka 2.0.2, seen here).
  consumer.reset();
  if (tracker) tracker->close();
  tracker.reset();
  submitter.reset();
  dispatcher.reset();
  if (auto d =
          (*cluster)->DeleteTopicsWithPrefix(prefix + ".", absl::Seconds(10));
      !d.ok()) {
    LOG(WARNING) << "could not delete " << prefix << ".*: " << d.status();
  }
  return correct ? 0 : 1;
}
