// event_tally: the soak's independent count of what the events topic says
// (tools/bench/soak). Follows <prefix>.events from its beginning and counts,
// for task ids "<id_prefix><n>" with n < --tasks, the distinct tasks with a
// COMPLETED event and the COMPLETED events beyond the first (two bitmaps: 2
// bits per task, 12.5 MB for 50M); any other completed id is "unexpected".
// Every --report_ms it prints one JSON line on stdout:
//   {"events":N,"end":N,"completed":N,"duplicates":N,"unexpected":N}
// ("end": the sum of the partitions' high watermarks it last saw). It exits 0
// once every task completed and it read up to the end, or on SIGTERM.
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "gflags/gflags.h"
#include "glog/logging.h"
#include "kwq/v1/task.pb.h"
#include "librdkafka/rdkafkacpp.h"
#include "server/kafka/kafka_flags.h"
#include "server/util/main_prologue.h"

DEFINE_string(kafka, "", "unused here except 'embedded' is refused");
DEFINE_string(bootstrap_servers, "", "the Kafka cluster (host:port,...)");
DEFINE_string(topic, "", "the events topic, e.g. kwq.events");
DEFINE_string(id_prefix, "", "task ids are <id_prefix><n>");
DEFINE_int64(tasks, 0, "n runs from 0 to tasks - 1");
DEFINE_int32(report_ms, 2000, "how often a JSON line is printed");

namespace {

std::atomic<bool> g_stop{false};
void OnSignal(int) { g_stop = true; }

class Bitmap {
 public:
  explicit Bitmap(int64_t n) : words_((n + 63) / 64, 0) {}
  // Sets bit i; returns whether it was set before.
  bool TestAndSet(int64_t i) {
    uint64_t& w = words_[i / 64];
    const uint64_t bit = uint64_t{1} << (i % 64);
    const bool was = (w & bit) != 0;
    w |= bit;
    return was;
  }

 private:
  std::vector<uint64_t> words_;
};

}  // namespace

int main(int argc, char** argv) {
  kwq::InitBinary(
      "event_tally --bootstrap_servers=H:P --topic=kwq.events "
      "--id_prefix=soak- --tasks=N\n"
      "Counts distinct completed tasks in an events topic (tools/bench/soak).",
      &argc, &argv);
  if (FLAGS_topic.empty() || FLAGS_tasks <= 0 || FLAGS_report_ms <= 0) {
    std::cerr << "event_tally: need --topic, --tasks > 0 and --report_ms > 0\n";
    return 2;
  }
  if (std::string e =
          kwq::CheckKafkaFlags(FLAGS_kafka, FLAGS_bootstrap_servers);
      !e.empty()) {
    std::cerr << "event_tally: " << e << "\n";
    return 2;
  }
  auto cluster =
      kwq::OpenKafka(FLAGS_kafka, FLAGS_bootstrap_servers, absl::Seconds(60));
  if (!cluster.ok()) {
    std::cerr << "event_tally: " << cluster.status().message() << "\n";
    return 1;
  }
  auto conf = kwq::MakeKafkaConf(
      kwq::MergeConfig((*cluster)->ConsumerConfig(absl::StrCat(
                           "kwq-event-tally-", absl::ToUnixNanos(absl::Now()))),
                       {{"fetch.wait.max.ms", "100"}}));
  if (!conf.ok()) {
    std::cerr << "event_tally: " << conf.status() << "\n";
    return 1;
  }
  std::string err;
  std::unique_ptr<RdKafka::KafkaConsumer> consumer(
      RdKafka::KafkaConsumer::create(conf->get(), err));
  if (!consumer ||
      consumer->subscribe({FLAGS_topic}) != RdKafka::ERR_NO_ERROR) {
    std::cerr << "event_tally: consumer: " << err << "\n";
    return 1;
  }
  signal(SIGTERM, OnSignal);
  signal(SIGINT, OnSignal);

  Bitmap completed(FLAGS_tasks), repeated(FLAGS_tasks);
  int64_t events = 0, distinct = 0, duplicates = 0, unexpected = 0;
  std::vector<int64_t> next_offset;  // per partition: each record counted once
  absl::Time next_report = absl::Now();
  kwq::v1::TaskEvent ev;
  for (;;) {
    std::unique_ptr<RdKafka::Message> msg(consumer->consume(100));
    if (msg->err() == RdKafka::ERR_NO_ERROR) {
      const int32_t p = msg->partition();
      if (p >= static_cast<int32_t>(next_offset.size()))
        next_offset.resize(p + 1, 0);
      if (msg->offset() >= next_offset[p]) {
        next_offset[p] = msg->offset() + 1;
        ++events;
        if (ev.ParseFromArray(msg->payload(), static_cast<int>(msg->len())) &&
            ev.state() == kwq::v1::COMPLETED) {
          int64_t n = -1;
          absl::string_view id = ev.task_id();
          if (absl::StartsWith(id, FLAGS_id_prefix) &&
              absl::SimpleAtoi(id.substr(FLAGS_id_prefix.size()), &n) &&
              n >= 0 && n < FLAGS_tasks) {
            if (!completed.TestAndSet(n)) {
              ++distinct;
            } else {
              ++duplicates;
              repeated.TestAndSet(n);
            }
          } else {
            ++unexpected;
          }
        }
      }
    }
    const bool stop = g_stop.load();
    if (absl::Now() >= next_report || stop) {
      next_report = absl::Now() + absl::Milliseconds(FLAGS_report_ms);
      int64_t end = 0;
      bool caught_up = !next_offset.empty();
      for (size_t p = 0; p < next_offset.size(); ++p) {
        int64_t low = 0, high = 0;
        if (consumer->get_watermark_offsets(FLAGS_topic,
                                            static_cast<int32_t>(p), &low,
                                            &high) == RdKafka::ERR_NO_ERROR) {
          end += std::max(high, next_offset[p]);
          caught_up = caught_up && next_offset[p] >= high;
        } else {
          caught_up = false;
        }
      }
      std::cout << "{\"events\":" << events << ",\"end\":" << end
                << ",\"completed\":" << distinct
                << ",\"duplicates\":" << duplicates
                << ",\"unexpected\":" << unexpected << "}" << std::endl;
      if (stop || (distinct == FLAGS_tasks && caught_up)) break;
    }
  }
  consumer->close();
  return 0;
}
