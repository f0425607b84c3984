// tracker_bench: ingest speed, memory and disk of the tracker's model, and the
// time from restart to the first answered query. Prints a table, then one JSON
// line.
//
//   bazel run -c opt //tracker/bench:tracker_bench -- --tasks=1000000
//   ... --source=broker --bootstrap_servers=HOST:PORT   (through a real Kafka
//   topic)
#include <sys/resource.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "gflags/gflags.h"
#include "glog/logging.h"
#include "server/kafka/kafka_cluster.h"
#include "server/util/mutex_mode.h"
#include "tools/ctl/measure.h"
#include "tracker/ingest/event_ingestor.h"
#include "tracker/store/tracker_store.h"

DEFINE_int64(tasks, 1000000,
             "tasks in the synthetic job set (about 4.4 events each)");
DEFINE_string(source, "file",
              "'file': events read from a file of length-prefixed records; "
              "'broker': events "
              "produced to a real Kafka topic first, then consumed by the "
              "tracker's ingestor");
DEFINE_string(bootstrap_servers, "", "Kafka for --source=broker");
DEFINE_string(
    dir, "",
    "work directory (default: a fresh one under /tmp); deleted at the end");
DEFINE_int32(batch, 10000, "events per RocksDB write batch");
DEFINE_int32(jobs, 10, "jobs the tasks are spread over");
DEFINE_bool(universal_compaction, false,
            "RocksDB universal compaction (StoreOptions)");
DEFINE_int32(
    write_buffer_mb,
    static_cast<int32_t>(kwq::tracker::StoreOptions().write_buffer_bytes >> 20),
    "RocksDB memtable size (StoreOptions)");
DEFINE_int32(max_write_buffers, kwq::tracker::StoreOptions().max_write_buffers,
             "RocksDB memtables at most (StoreOptions)");
DEFINE_bool(write_ahead_log, kwq::tracker::StoreOptions().write_ahead_log,
            "RocksDB's write-ahead log (StoreOptions); the restart then "
            "replays it");
DEFINE_int32(query_samples, 500,
             "ListTasks pages and GetTask calls timed on the reopened store");
DEFINE_int64(pending_lead, 0,
             "how many tasks ahead of the rest of its events a task's PENDING "
             "event comes (0: a task's events back to back, so that most tasks "
             "are new and finished in one batch; a queue backlog puts "
             "submission and completion in different batches, e.g. 50000)");

DEFINE_int32(stage_events, 4,
             "events per successful attempt: 4 (PENDING, ALLOCATED, RUNNING, "
             "COMPLETED: a task that ran long) or 2 (PENDING, then COMPLETED "
             "with the ALLOCATED and RUNNING times folded in: what the "
             "scheduler writes for a short task, e.g. kwqctl simulate's)");
DEFINE_bool(scheduler_ids, false,
            "task ids as the scheduler makes them on Submit (<scheduler>-<unix "
            "micros>-<counter>: in time order) instead of bench-<n> (not "
            "zero-padded, so a batch's ids land all over the key space)");
DEFINE_bool(tags, true,
            "each task has one tag (kwqctl simulate's tasks have none)");

namespace {

using kwq::v1::TaskEvent;

std::string TaskId(int64_t n) {
  return FLAGS_scheduler_ids
             ? absl::StrCat("sched-1-", 1'700'000'000'000'000 + n * 40, "-", n)
             : absl::StrCat("bench-", n);
}

// The events of task n: PENDING, ALLOCATED, RUNNING, COMPLETED; every 10th has
// a failed first attempt and a retry; every 97th fails for good. Appends to
// `out`.
void TaskEvents(int64_t n, bool first_pending, bool the_rest,
                std::vector<std::string>* out) {
  const int64_t t0 = 1'700'000'000 + n / 20000;
  auto add = [&](kwq::v1::TaskState s, int attempt) {
    TaskEvent e;
    e.set_task_id(TaskId(n));
    e.set_job_id(absl::StrCat("bench-job-", n % FLAGS_jobs));
    e.set_state(s);
    e.set_attempt(attempt);
    e.mutable_time()->set_seconds(t0);
    e.mutable_time()->set_nanos(static_cast<int32_t>((n * 7919) % 1000000000));
    e.set_scheduler_id("sched-1");
    if (s != kwq::v1::PENDING) e.set_worker_id(absl::StrCat("worker-", n % 64));
    if (s == kwq::v1::PENDING && attempt == 1) {
      e.set_priority(static_cast<int32_t>(n % 10));
      if (FLAGS_tags) {
        (*e.mutable_tags())["book"] = absl::StrCat("book-", n % 50);
      }
    }
    if (s == kwq::v1::COMPLETED && FLAGS_stage_events == 2) {
      *e.mutable_allocated_time() = e.time();
      *e.mutable_running_time() = e.time();
    }
    if (s == kwq::v1::ERROR || s == kwq::v1::FAILED)
      e.set_error("simulated failure");
    out->push_back(e.SerializeAsString());
  };
  if (first_pending) add(kwq::v1::PENDING, 1);
  if (!the_rest) return;
  if (FLAGS_stage_events == 2 && n % 10 != 0) {
    add(kwq::v1::COMPLETED, 1);
    return;
  }
  add(kwq::v1::ALLOCATED, 1);
  add(kwq::v1::RUNNING, 1);
  if (n % 97 == 0) {
    add(kwq::v1::ERROR, 1);
    add(kwq::v1::FAILED, 1);
  } else if (n % 10 == 0) {
    add(kwq::v1::ERROR, 1);
    add(kwq::v1::PENDING, 2);
    add(kwq::v1::ALLOCATED, 2);
    add(kwq::v1::RUNNING, 2);
    add(kwq::v1::COMPLETED, 2);
  } else {
    add(kwq::v1::COMPLETED, 1);
  }
}

// The events of step n of the stream: the PENDING event of task n +
// --pending_lead (at step 0, of every task up to the lead), then the other
// events of task n.
void StepEvents(int64_t n, std::vector<std::string>* out) {
  const int64_t lead = std::min(FLAGS_pending_lead, FLAGS_tasks);
  if (lead == 0) {
    TaskEvents(n, true, true, out);
    return;
  }
  if (n == 0) {
    for (int64_t k = 0; k < lead; ++k) TaskEvents(k, true, false, out);
  }
  if (n + lead < FLAGS_tasks) TaskEvents(n + lead, true, false, out);
  TaskEvents(n, false, true, out);
}

int64_t PeakRssBytes() {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<int64_t>(ru.ru_maxrss) * 1024;
}

int64_t CurrentRssBytes() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6)) * 1024;
  }
  return 0;
}

int64_t DirBytes(const std::string& dir) {
  int64_t n = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    if (e.is_regular_file()) n += static_cast<int64_t>(e.file_size());
  }
  return n;
}

}  // namespace

int main(int argc, char** argv) {
  gflags::SetUsageMessage(
      "tracker_bench [--tasks N] [--source file|broker] (see --help)");
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  FLAGS_logtostderr = true;
  if (!getenv("GLOG_minloglevel")) FLAGS_minloglevel = 1;
  google::InitGoogleLogging(argv[0]);
  kwq::DisableMutexDeadlockDetection();
  if (FLAGS_tasks < 1 || FLAGS_batch < 1 || FLAGS_jobs < 1 ||
      FLAGS_pending_lead < 0 ||
      (FLAGS_stage_events != 2 && FLAGS_stage_events != 4) ||
      (FLAGS_source != "file" && FLAGS_source != "broker") ||
      (FLAGS_source == "broker" && FLAGS_bootstrap_servers.empty())) {
    std::cerr << "tracker_bench: need --tasks>=1, --pending_lead>=0, "
                 "--stage_events 2|4, --source file|broker (broker needs "
                 "--bootstrap_servers)\n";
    return 2;
  }
  const std::string dir =
      FLAGS_dir.empty() ? absl::StrCat("/tmp/kwq-tracker-bench-", getpid())
                        : FLAGS_dir;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string db = dir + "/db";
  const std::string topic = absl::StrCat("kwqbench-", getpid(), ".events");

  // 1. The events, outside the timed part.
  int64_t total_events = 0;
  const absl::Time gen_start = absl::Now();
  std::unique_ptr<kwq::KafkaCluster> cluster;
  if (FLAGS_source == "file") {
    std::ofstream out(dir + "/events.bin", std::ios::binary);
    std::vector<std::string> buf;
    for (int64_t n = 0; n < FLAGS_tasks; ++n) {
      buf.clear();
      StepEvents(n, &buf);
      for (const auto& v : buf) {
        const uint32_t len = static_cast<uint32_t>(v.size());
        out.write(reinterpret_cast<const char*>(&len), 4);
        out.write(v.data(), len);
        ++total_events;
      }
    }
  } else {
    auto c =
        kwq::KafkaCluster::Connect(FLAGS_bootstrap_servers, absl::Seconds(15));
    if (!c.ok()) {
      std::cerr << "tracker_bench: " << c.status() << "\n";
      return 1;
    }
    cluster = std::move(*c);
    kwq::TopicSpec spec;
    spec.name = topic;
    spec.partitions = 4;
    if (auto s = cluster->EnsureTopics({spec}, absl::Seconds(15)); !s.ok()) {
      std::cerr << "tracker_bench: " << s << "\n";
      return 1;
    }
    auto conf = kwq::MakeKafkaConf(kwq::MergeConfig(
        cluster->ClientConfig(), {{"linger.ms", "20"},
                                  {"batch.size", "1000000"},
                                  {"compression.type", "lz4"}}));
    std::string err;
    std::unique_ptr<RdKafka::Producer> producer(
        RdKafka::Producer::create(conf->get(), err));
    if (!producer) {
      std::cerr << "tracker_bench: " << err << "\n";
      return 1;
    }
    std::vector<std::string> buf;
    for (int64_t n = 0; n < FLAGS_tasks; ++n) {
      buf.clear();
      StepEvents(n, &buf);
      const std::string key = absl::StrCat("bench-job-", n % FLAGS_jobs);
      for (auto& v : buf) {
        while (producer->produce(topic, RdKafka::Topic::PARTITION_UA,
                                 RdKafka::Producer::RK_MSG_COPY, v.data(),
                                 v.size(), key.data(), key.size(), 0,
                                 nullptr) == RdKafka::ERR__QUEUE_FULL) {
          producer->poll(10);
        }
        ++total_events;
      }
      producer->poll(0);
    }
    producer->flush(120000);
  }
  const double gen_s = absl::ToDoubleSeconds(absl::Now() - gen_start);
  std::cerr << "generated " << total_events << " events of " << FLAGS_tasks
            << " tasks in " << gen_s << " s\n";

  // 2. Ingest, timed.
  const int64_t rss_before = CurrentRssBytes();
  kwq::tracker::StoreOptions so;
  so.universal_compaction = FLAGS_universal_compaction;
  so.write_buffer_bytes = static_cast<size_t>(FLAGS_write_buffer_mb) << 20;
  so.max_write_buffers = FLAGS_max_write_buffers;
  so.write_ahead_log = FLAGS_write_ahead_log;
  auto store = kwq::tracker::TrackerStore::Open(db, so, /*wipe=*/true);
  if (!store.ok()) {
    std::cerr << "tracker_bench: " << store.status() << "\n";
    return 1;
  }
  const absl::Time ingest_start = absl::Now();
  absl::Time last_progress = ingest_start;
  if (FLAGS_source == "file") {
    std::ifstream in(dir + "/events.bin", std::ios::binary);
    std::vector<kwq::tracker::EventRecord> batch;
    int64_t offset = 0;
    uint32_t len = 0;
    while (in.read(reinterpret_cast<char*>(&len), 4)) {
      kwq::tracker::EventRecord r;
      r.partition = 0;
      r.offset = offset++;
      r.value.resize(len);
      in.read(r.value.data(), len);
      batch.push_back(std::move(r));
      if (static_cast<int>(batch.size()) >= FLAGS_batch) {
        if (auto s = (*store)->ApplyBatch("bench.events", batch); !s.ok()) {
          std::cerr << "tracker_bench: " << s << "\n";
          return 1;
        }
        batch.clear();
        if (absl::Now() - last_progress > absl::Seconds(5)) {
          last_progress = absl::Now();
          std::cerr << "  " << offset << " / " << total_events
                    << " events, RSS " << CurrentRssBytes() / (1 << 20)
                    << " MiB\n";
        }
      }
    }
    if (auto s = (*store)->ApplyBatch("bench.events", batch); !s.ok()) {
      std::cerr << "tracker_bench: " << s << "\n";
      return 1;
    }
  } else {
    kwq::tracker::IngestOptions io;
    io.topic = topic;
    io.max_batch_events = FLAGS_batch;
    auto ingestor =
        kwq::tracker::EventIngestor::Start(*cluster, store->get(), io);
    if (!ingestor.ok()) {
      std::cerr << "tracker_bench: " << ingestor.status() << "\n";
      return 1;
    }
    while ((*store)->counters().events() < total_events) {
      if (!(*ingestor)->status().ok()) {
        std::cerr << "tracker_bench: " << (*ingestor)->status() << "\n";
        return 1;
      }
      absl::SleepFor(absl::Milliseconds(20));
      if (absl::Now() - last_progress > absl::Seconds(5)) {
        last_progress = absl::Now();
        std::cerr << "  " << (*store)->counters().events() << " / "
                  << total_events << " events, RSS "
                  << CurrentRssBytes() / (1 << 20) << " MiB\n";
      }
    }
    (*ingestor)->Stop();
  }
  const double ingest_s = absl::ToDoubleSeconds(absl::Now() - ingest_start);
  const auto counters = (*store)->counters();
  const bool correct =
      counters.events() == total_events && counters.unparsable() == 0;
  const int64_t peak_rss = PeakRssBytes();
  const int64_t rss_after = CurrentRssBytes();

  // 3. Restart to queryable.
  store->reset();
  const int64_t disk = DirBytes(db);
  const absl::Time reopen_start = absl::Now();
  auto reopened = kwq::tracker::TrackerStore::Open(db, so, /*wipe=*/false);
  if (!reopened.ok()) {
    std::cerr << "tracker_bench: " << reopened.status() << "\n";
    return 1;
  }
  (*reopened)->SetViewCurrent(true);  // applied directly, no ingest
  auto summary = (*reopened)->GetJobSummary("bench-job-0", 50, absl::Now());
  const double restart_s = absl::ToDoubleSeconds(absl::Now() - reopen_start);
  const int64_t expected_job0 = (FLAGS_tasks + FLAGS_jobs - 1) / FLAGS_jobs;
  const bool summary_ok =
      summary.ok() && summary->counts().total() == expected_job0;

  // 4. Queries on the reopened store (cold block cache at first): ListTasks
  // pages of 100 at random places in job 0 (the page token is a task id) and
  // GetTask of random tasks. Milliseconds, p50 / p99.
  std::mt19937_64 rng(42);
  std::vector<double> page_ms, get_ms;
  bool queries_ok = true;
  for (int i = 0; i < FLAGS_query_samples; ++i) {
    const int64_t n = static_cast<int64_t>(rng() % FLAGS_tasks);
    kwq::v1::ListTasksRequest req;
    req.set_job_id("bench-job-0");
    req.set_page_size(100);
    req.set_page_token(TaskId(n));
    absl::Time t = absl::Now();
    auto page = (*reopened)->ListTasks(req);
    page_ms.push_back(absl::ToDoubleMilliseconds(absl::Now() - t));
    queries_ok = queries_ok && page.ok();
    t = absl::Now();
    auto task = (*reopened)->GetTask(TaskId(n));
    get_ms.push_back(absl::ToDoubleMilliseconds(absl::Now() - t));
    queries_ok = queries_ok && task.ok();
  }
  reopened->reset();
  std::filesystem::remove_all(dir);

  const double eps = static_cast<double>(total_events) / ingest_s;
  std::cout << absl::StrFormat(
      "tracker ingest (%s): %lld tasks, %lld events in %.1f s = %.0f events/s\n"
      "  RSS peak %.0f MiB (before the store %.0f MiB, after ingest %.0f MiB)\n"
      "  disk %.1f MiB = %.0f bytes/task; restart to first query %.2f s\n"
      "  ListTasks page of 100 at a random place p50 %.2f p99 %.2f ms, "
      "GetTask p50 %.3f p99 %.3f ms (%d each)\n"
      "  duplicates %lld stale %lld conflicts %lld; %s\n",
      FLAGS_source, static_cast<long long>(FLAGS_tasks),
      static_cast<long long>(total_events), ingest_s, eps,
      static_cast<double>(peak_rss) / (1 << 20),
      static_cast<double>(rss_before) / (1 << 20),
      static_cast<double>(rss_after) / (1 << 20),
      static_cast<double>(disk) / (1 << 20),
      static_cast<double>(disk) / static_cast<double>(FLAGS_tasks), restart_s,
      kwq::ctl::Percentile(page_ms, 0.5), kwq::ctl::Percentile(page_ms, 0.99),
      kwq::ctl::Percentile(get_ms, 0.5), kwq::ctl::Percentile(get_ms, 0.99),
      FLAGS_query_samples, static_cast<long long>(counters.duplicates()),
      static_cast<long long>(counters.stale()),
      static_cast<long long>(counters.conflicts()),
      correct && summary_ok && queries_ok
          ? "correct"
          : "INCORRECT (counts do not match or a query failed)");
  std::cout << absl::StrFormat(
      "{\"source\":\"%s\",\"tasks\":%lld,\"events\":%lld,\"ingest_seconds\":%."
      "3f,"
      "\"events_per_second\":%.0f,\"peak_rss_bytes\":%lld,\"disk_bytes\":%lld,"
      "\"disk_bytes_per_task\":%.1f,\"restart_to_query_seconds\":%.3f,"
      "\"list_page_p50_ms\":%.3f,\"list_page_p99_ms\":%.3f,"
      "\"get_task_p50_ms\":%.3f,\"get_task_p99_ms\":%.3f,"
      "\"correct\":%s}\n",
      FLAGS_source, static_cast<long long>(FLAGS_tasks),
      static_cast<long long>(total_events), ingest_s, eps,
      static_cast<long long>(peak_rss), static_cast<long long>(disk),
      static_cast<double>(disk) / static_cast<double>(FLAGS_tasks), restart_s,
      kwq::ctl::Percentile(page_ms, 0.5), kwq::ctl::Percentile(page_ms, 0.99),
      kwq::ctl::Percentile(get_ms, 0.5), kwq::ctl::Percentile(get_ms, 0.99),
      correct && summary_ok && queries_ok ? "true" : "false");
  return correct && summary_ok && queries_ok ? 0 : 1;
}
