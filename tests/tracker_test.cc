// The tracker end to end: scheduler + SDK workers + tracker on both Kafka
// backends agree on every count; and on the real broker, a kwq_tracker process
// killed with SIGKILL during ingest and restarted ends with exactly the state a
// fresh rebuild gives.
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "glog/logging.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "kwq/v1/scheduler.grpc.pb.h"
#include "kwq/v1/tracker.grpc.pb.h"
#include "server/kafka/test_backends.h"
#include "server/util/time_util.h"
#include "tests/child_process.h"
#include "tests/delete_records.h"
#include "tests/metrics_scrape.h"
#include "tools/devgrid/event_counter.h"
#include "tools/devgrid/in_process_scheduler.h"
#include "tools/devgrid/in_process_tracker.h"
#include "worker_sdk/worker.h"

namespace kwq {
namespace {

using ::kwq::testing::KafkaBackend;

std::string TempDir(const std::string& name) {
  const char* base = std::getenv("TEST_TMPDIR");
  std::string dir = absl::StrCat(base ? base : "/tmp", "/", name);
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

// Polls `fn` (a gRPC read) until it returns true or `timeout` passes.
bool PollUntil(const std::function<bool()>& fn, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (fn()) return true;
    absl::SleepFor(absl::Milliseconds(50));
  }
  return fn();
}

class TrackerTest : public ::testing::TestWithParam<KafkaBackend> {};

TEST_P(TrackerTest, SchedulerWorkersAndTrackerAgreeOnEveryCount) {
  KWQ_OPEN_BACKEND_OR_SKIP(cluster, GetParam());
  const std::string prefix = testing::UniqueName("kwqtr");
  scheduler::ServiceOptions so;
  so.core.scheduler_id = prefix;
  so.core.topic_prefix = prefix;
  so.core.retry_backoff_base = absl::Milliseconds(5);
  so.partitions = 2;
  auto sched = devgrid::InProcessScheduler::Start(cluster.get(), so);
  ASSERT_TRUE(sched.ok()) << sched.status();
  auto tracker =
      devgrid::InProcessTracker::Start(*cluster, prefix, TempDir(prefix), 2);
  ASSERT_TRUE(tracker.ok()) << tracker.status();
  auto events = devgrid::EventCounter::Start(*cluster, prefix + ".events");
  ASSERT_TRUE(events.ok()) << events.status();

  std::vector<std::unique_ptr<worker::Worker>> workers;
  std::vector<std::thread> runners;
  for (int i = 0; i < 4; ++i) {
    worker::WorkerOptions wo;
    wo.scheduler_address = (*sched)->address();
    wo.worker_id = absl::StrCat("tw", i);
    wo.slots = 4;
    workers.push_back(
        std::make_unique<worker::Worker>(wo, [](worker::TaskContext& ctx) {
          if (ctx.task().payload() == "poison")
            return worker::Outcome::Error("poisoned");
          if (ctx.task().payload() == "flaky" && ctx.attempt() == 1) {
            return worker::Outcome::Error("flaky first attempt");
          }
          return worker::Outcome::Success("r");
        }));
    runners.emplace_back([w = workers.back().get()] { w->Run(); });
  }

  auto tstub = kwq::v1::Tracker::NewStub(grpc::CreateChannel(
      (*tracker)->address(), grpc::InsecureChannelCredentials()));
  // The job monitor's stream, opened before the job exists (`kwqctl submit`
  // then `job watch` at once): it waits for the job, then streams summaries
  // until the job is done.
  std::vector<kwq::v1::JobSummary> watched;
  grpc::Status watch_status;
  std::thread watcher([&] {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(120));
    kwq::v1::WatchJobRequest req;
    req.set_job_id("tracked-job");
    auto reader = tstub->WatchJob(&ctx, req);
    kwq::v1::JobSummary s;
    while (reader->Read(&s)) watched.push_back(s);
    watch_status = reader->Finish();
  });

  constexpr int kTasks = 2000;
  auto stub = kwq::v1::Scheduler::NewStub(grpc::CreateChannel(
      (*sched)->address(), grpc::InsecureChannelCredentials()));
  for (int b = 0; b < kTasks / 500; ++b) {
    kwq::v1::SubmitRequest req;
    for (int i = 0; i < 500; ++i) {
      const int n = b * 500 + i;
      auto* t = req.add_tasks();
      t->set_id(absl::StrCat("tr", n));
      t->set_job_id("tracked-job");
      t->set_priority(n % 3);
      (*t->mutable_tags())["shard"] = absl::StrCat("s", n % 4);
      if (n % 200 == 7) t->set_payload("flaky");  // 10 tasks
      if (n == 999) t->set_payload("poison");
    }
    kwq::v1::SubmitResponse resp;
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub->Submit(&ctx, req, &resp).ok());
  }

  kwq::v1::JobSummary summary;
  ASSERT_TRUE(PollUntil(
      [&] {
        grpc::ClientContext ctx;
        kwq::v1::GetJobSummaryRequest req;
        req.set_job_id("tracked-job");
        return tstub->GetJobSummary(&ctx, req, &summary).ok() && summary.done();
      },
      absl::Seconds(120)))
      << summary.ShortDebugString();
  watcher.join();

  EXPECT_EQ(summary.counts().total(), kTasks);
  EXPECT_EQ(summary.counts().completed(), kTasks - 1);
  EXPECT_EQ(summary.counts().failed(), 1);
  EXPECT_EQ(summary.counts().retries(),
            10 + 2);  // flaky once each; poison twice
  // The events topic read independently says the same (it may lag the tracker a
  // little).
  EXPECT_TRUE((*events)->WaitFor(
      [](const devgrid::EventCounter& e) {
        return e.completed_tasks() == kTasks - 1 && e.failed_tasks() == 1;
      },
      absl::Seconds(60)))
      << (*events)->completed_tasks() << " completed, "
      << (*events)->failed_tasks() << " failed in the events topic";
  ASSERT_EQ(summary.tags_size(), 4);
  for (const auto& tag : summary.tags())
    EXPECT_EQ(tag.counts().total(), kTasks / 4);
  EXPECT_FALSE(summary.recent_errors().empty());

  ASSERT_TRUE(watch_status.ok()) << watch_status.error_message();
  ASSERT_FALSE(watched.empty());
  EXPECT_TRUE(watched.back().done());
  for (size_t i = 1; i < watched.size(); ++i) {
    EXPECT_GE(watched[i].counts().completed(),
              watched[i - 1].counts().completed());
  }

  // A flaky task's two attempts, every stage stamped in order.
  {
    grpc::ClientContext ctx;
    kwq::v1::GetTaskRequest req;
    req.set_task_id("tr7");
    kwq::v1::TaskStatus t;
    ASSERT_TRUE(tstub->GetTask(&ctx, req, &t).ok());
    EXPECT_EQ(t.state(), kwq::v1::COMPLETED);
    EXPECT_EQ(t.tags().at("shard"), "s3");
    ASSERT_EQ(t.history_size(), 2) << t.ShortDebugString();
    EXPECT_EQ(t.history(0).state(), kwq::v1::ERROR);
    EXPECT_EQ(t.history(0).error(), "flaky first attempt");
    EXPECT_EQ(t.history(1).state(), kwq::v1::COMPLETED);
    // (Short attempts: the scheduler folds ALLOCATED and RUNNING into the
    // attempt's last event; the tracker stamps them all the same.)
    for (const auto& a : t.history()) {
      EXPECT_FALSE(a.worker_id().empty());
      ASSERT_TRUE(a.has_allocated_time() && a.has_running_time())
          << a.ShortDebugString();
      EXPECT_LE(FromProto(a.pending_time()), FromProto(a.allocated_time()));
      EXPECT_LE(FromProto(a.allocated_time()), FromProto(a.running_time()));
      EXPECT_LE(FromProto(a.running_time()), FromProto(a.finished_time()));
    }
  }
  // The failed task, by state; every task, paged.
  {
    grpc::ClientContext ctx;
    kwq::v1::ListTasksRequest req;
    req.set_job_id("tracked-job");
    req.set_state(kwq::v1::FAILED);
    kwq::v1::ListTasksResponse resp;
    ASSERT_TRUE(tstub->ListTasks(&ctx, req, &resp).ok());
    ASSERT_EQ(resp.tasks_size(), 1);
    EXPECT_EQ(resp.tasks(0).task_id(), "tr999");
    EXPECT_EQ(resp.tasks(0).attempts(), 3);
  }
  {
    std::set<std::string> ids;
    kwq::v1::ListTasksRequest req;
    req.set_job_id("tracked-job");
    req.set_page_size(300);
    for (int page = 0; page < 20; ++page) {
      grpc::ClientContext ctx;
      kwq::v1::ListTasksResponse resp;
      ASSERT_TRUE(tstub->ListTasks(&ctx, req, &resp).ok());
      for (const auto& t : resp.tasks()) ids.insert(t.task_id());
      if (resp.next_page_token().empty()) break;
      req.set_page_token(resp.next_page_token());
    }
    EXPECT_EQ(ids.size(), static_cast<size_t>(kTasks));
  }
  // Bad input and unknown ids.
  {
    grpc::ClientContext ctx;
    kwq::v1::GetTaskRequest req;
    req.set_task_id("no-such-task");
    kwq::v1::TaskStatus t;
    EXPECT_EQ(tstub->GetTask(&ctx, req, &t).error_code(),
              grpc::StatusCode::NOT_FOUND);
  }
  {
    grpc::ClientContext ctx;
    kwq::v1::ListTasksRequest req;
    req.set_job_id("tracked-job");
    req.set_page_size(100000);
    kwq::v1::ListTasksResponse resp;
    EXPECT_EQ(tstub->ListTasks(&ctx, req, &resp).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
  }

  for (auto& w : workers) w->Stop(absl::Seconds(2));
  (*sched)->Shutdown(absl::Seconds(1));
  for (auto& t : runners) t.join();
}

INSTANTIATE_TEST_SUITE_P(Backends, TrackerTest,
                         ::testing::Values(KafkaBackend::kEmbedded,
                                           KafkaBackend::kRealBroker),
                         [](const auto& info) {
                           return testing::BackendName(info.param);
                         });

// --- restart equivalence on the real broker, with real tracker processes ---

// Synthetic events of `tasks` tasks over 5 jobs: retries, failures, and
// duplicates.
std::vector<kwq::v1::TaskEvent> SyntheticEvents(int tasks) {
  std::vector<kwq::v1::TaskEvent> out;
  int64_t t = 1'700'000'000;
  auto ev = [&](int n, kwq::v1::TaskState s, int attempt) {
    kwq::v1::TaskEvent e;
    e.set_task_id(absl::StrCat("syn", n));
    e.set_job_id(absl::StrCat("syn-job-", n % 5));
    e.set_state(s);
    e.set_attempt(attempt);
    e.mutable_time()->set_seconds(t + n / 100);
    e.set_worker_id(absl::StrCat("w", n % 7));
    if (s == kwq::v1::PENDING && attempt == 1) {
      (*e.mutable_tags())["book"] = absl::StrCat("b", n % 11);
      e.set_priority(n % 10);
    }
    if (s == kwq::v1::ERROR || s == kwq::v1::FAILED)
      e.set_error(absl::StrCat("err ", n));
    out.push_back(e);
    if (out.size() % 7 == 0) out.push_back(e);  // at-least-once: a duplicate
  };
  for (int n = 0; n < tasks; ++n) {
    ev(n, kwq::v1::PENDING, 1);
    ev(n, kwq::v1::ALLOCATED, 1);
    ev(n, kwq::v1::RUNNING, 1);
    if (n % 97 == 0) {
      ev(n, kwq::v1::ERROR, 1);
      ev(n, kwq::v1::FAILED, 1);
    } else if (n % 10 == 0) {
      ev(n, kwq::v1::ERROR, 1);
      ev(n, kwq::v1::PENDING, 2);
      ev(n, kwq::v1::RUNNING, 2);
      ev(n, kwq::v1::COMPLETED, 2);
    } else {
      ev(n, kwq::v1::COMPLETED, 1);
    }
  }
  return out;
}

struct TrackerView {
  kwq::v1::ThroughputStats totals;
  std::vector<std::string>
      jobs;  // summaries without the time-dependent rate and ETA
  std::vector<std::string> tasks;  // every task record of every job
};

TrackerView ReadEverything(const std::string& address) {
  TrackerView v;
  auto stub = kwq::v1::Tracker::NewStub(
      grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  {
    grpc::ClientContext ctx;
    kwq::v1::GetThroughputRequest req;
    req.set_buckets(1);
    EXPECT_TRUE(stub->GetThroughput(&ctx, req, &v.totals).ok());
    v.totals.clear_buckets();
  }
  for (int j = 0; j < 5; ++j) {
    const std::string job = absl::StrCat("syn-job-", j);
    grpc::ClientContext ctx;
    kwq::v1::GetJobSummaryRequest req;
    req.set_job_id(job);
    req.set_max_tags(100);
    kwq::v1::JobSummary s;
    EXPECT_TRUE(stub->GetJobSummary(&ctx, req, &s).ok()) << job;
    s.clear_rate_per_second();
    s.clear_eta_seconds();
    std::sort(s.mutable_tags()->begin(), s.mutable_tags()->end(),
              [](const auto& a, const auto& b) { return a.tag() < b.tag(); });
    v.jobs.push_back(s.SerializeAsString());
    kwq::v1::ListTasksRequest lr;
    lr.set_job_id(job);
    lr.set_page_size(1000);
    for (int page = 0; page < 1000; ++page) {
      grpc::ClientContext lctx;
      kwq::v1::ListTasksResponse resp;
      if (!stub->ListTasks(&lctx, lr, &resp).ok()) break;
      for (const auto& t : resp.tasks())
        v.tasks.push_back(t.SerializeAsString());
      if (resp.next_page_token().empty()) break;
      lr.set_page_token(resp.next_page_token());
    }
  }
  return v;
}

int64_t TotalEvents(const std::string& address) {
  auto stub = kwq::v1::Tracker::NewStub(
      grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  kwq::v1::GetThroughputRequest req;
  req.set_buckets(1);
  kwq::v1::ThroughputStats stats;
  if (!stub->GetThroughput(&ctx, req, &stats).ok()) return -1;
  return stats.total_events();
}

// With and without RocksDB's write-ahead log (--write_ahead_log): without it
// the restart re-reads from Kafka what the unflushed memtables held; with it
// the log is replayed. Either way the result equals a rebuild.
class TrackerKillTest : public ::testing::TestWithParam<bool> {};

TEST_P(TrackerKillTest, KillMinusNineDuringIngestThenRestartEqualsARebuild) {
  KWQ_OPEN_BACKEND_OR_SKIP(cluster, KafkaBackend::kRealBroker);
  const std::string prefix = testing::UniqueName("kwqtrc");
  ASSERT_TRUE(
      cluster->EnsureTopics({{prefix + ".events", 3, {}}}, absl::Seconds(15))
          .ok());
  const auto events = SyntheticEvents(40000);
  const int64_t total = static_cast<int64_t>(events.size());

  auto producer = testing::TestProducer::Create(*cluster, {{"linger.ms", "5"}});
  ASSERT_TRUE(producer.ok()) << producer.status();
  // Produced while the tracker ingests, so that the kill lands mid-ingest for
  // sure.
  std::atomic<int64_t> produced{0};
  std::thread feeder([&] {
    for (const auto& e : events) {
      if (!(*producer)
               ->Produce(prefix + ".events", -1, e.job_id(),
                         e.SerializeAsString())
               .ok()) {
        break;  // the count below then never reaches the total: the test fails
      }
      if (++produced % 20000 == 0) (void)(*producer)->Flush(absl::Seconds(10));
    }
    (void)(*producer)->Flush();
  });

  const std::string db_a = TempDir(prefix + "-a");
  const std::vector<std::string> common = {
      absl::StrCat("--bootstrap_servers=", cluster->bootstrap_servers()),
      absl::StrCat("--topic_prefix=", prefix), "--listen=127.0.0.1:0",
      "--max_batch_events=300"};
  auto with = [&](std::vector<std::string> extra) {
    std::vector<std::string> args = common;
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  };
  const std::string log_flag =
      absl::StrCat("--write_ahead_log=", GetParam() ? "true" : "false");
  auto a = std::make_unique<testing::ChildProcess>();
  ASSERT_TRUE(
      a->Start("tracker/kwq_tracker", with({"--db=" + db_a, log_flag})));
  int64_t at_kill = 0;
  ASSERT_TRUE(PollUntil(
      [&] { return (at_kill = TotalEvents(a->address())) >= total / 10; },
      absl::Seconds(60)));
  a->Kill(SIGKILL);
  const bool mid_ingest = produced < total;
  feeder.join();
  LOG(INFO) << "killed the tracker after " << at_kill << " of " << total
            << " events; the feeder was "
            << (mid_ingest ? "still" : "no longer") << " producing";

  a = std::make_unique<testing::ChildProcess>();
  ASSERT_TRUE(
      a->Start("tracker/kwq_tracker", with({"--db=" + db_a, log_flag})));
  ASSERT_TRUE(PollUntil([&] { return TotalEvents(a->address()) == total; },
                        absl::Seconds(120)))
      << "restarted tracker applied " << TotalEvents(a->address()) << " of "
      << total;

  auto b = std::make_unique<testing::ChildProcess>();
  ASSERT_TRUE(b->Start("tracker/kwq_tracker",
                       with({"--db=" + TempDir(prefix + "-b"), "--rebuild"})));
  ASSERT_TRUE(PollUntil([&] { return TotalEvents(b->address()) == total; },
                        absl::Seconds(120)))
      << "rebuilt tracker applied " << TotalEvents(b->address()) << " of "
      << total;

  const TrackerView va = ReadEverything(a->address());
  const TrackerView vb = ReadEverything(b->address());
  EXPECT_EQ(va.totals.SerializeAsString(), vb.totals.SerializeAsString())
      << va.totals.ShortDebugString() << " vs " << vb.totals.ShortDebugString();
  EXPECT_EQ(va.tasks.size(), 40000u);
  EXPECT_EQ(va.tasks.size(), vb.tasks.size());
  EXPECT_TRUE(va.tasks == vb.tasks) << "task records differ after restart";
  EXPECT_TRUE(va.jobs == vb.jobs) << "job summaries differ after restart";
  a->Kill(SIGTERM);
  b->Kill(SIGTERM);
  EXPECT_TRUE(WIFEXITED(a->exit_status()) &&
              WEXITSTATUS(a->exit_status()) == 0);
}

INSTANTIATE_TEST_SUITE_P(WriteAheadLog, TrackerKillTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? "LogOn" : "LogOff";
                         });

// Issue 20: events the broker deleted before the tracker read them (it was down
// longer than the topic's retention) are counted in
// kwq_tracker_events_never_read_total and logged, not skipped silently.
TEST(TrackerCrashTest, EventsDeletedBeforeTheTrackerReadThemAreCounted) {
  KWQ_OPEN_BACKEND_OR_SKIP(cluster, KafkaBackend::kRealBroker);
  const std::string prefix = testing::UniqueName("kwqtrgap");
  const std::string topic = prefix + ".events";
  ASSERT_TRUE(cluster->EnsureTopics({{topic, 1, {}}}, absl::Seconds(15)).ok());
  const auto events = SyntheticEvents(100);
  const int64_t total = static_cast<int64_t>(events.size());
  const int64_t half = total / 2;
  constexpr int64_t kDeleted = 40;
  auto producer = testing::TestProducer::Create(*cluster);
  ASSERT_TRUE(producer.ok()) << producer.status();
  auto produce = [&](int64_t from, int64_t to) {
    for (int64_t i = from; i < to; ++i) {
      ASSERT_TRUE((*producer)
                      ->Produce(topic, 0, "", events[i].SerializeAsString())
                      .ok());
    }
    ASSERT_TRUE((*producer)->Flush().ok());
  };
  produce(0, half);
  const std::vector<std::string> args = {
      absl::StrCat("--bootstrap_servers=", cluster->bootstrap_servers()),
      absl::StrCat("--topic_prefix=", prefix), "--listen=127.0.0.1:0",
      "--metrics_listen=127.0.0.1:0", "--db=" + TempDir(prefix)};
  auto t = std::make_unique<testing::ChildProcess>();
  ASSERT_TRUE(t->Start("tracker/kwq_tracker", args));
  ASSERT_TRUE(PollUntil([&] { return TotalEvents(t->address()) == half; },
                        absl::Seconds(60)));
  t->Kill(SIGTERM);
  // While it is down: more events, and the broker deletes the first kDeleted
  // it did not read.
  produce(half, total);
  ASSERT_EQ(testing::DeleteRecordsBefore(cluster->bootstrap_servers(), topic, 0,
                                         half + kDeleted),
            "");
  t = std::make_unique<testing::ChildProcess>();
  ASSERT_TRUE(t->Start("tracker/kwq_tracker", args));
  EXPECT_TRUE(
      PollUntil([&] { return TotalEvents(t->address()) == total - kDeleted; },
                absl::Seconds(60)))
      << TotalEvents(t->address()) << " of " << total - kDeleted;
  const testing::MetricsScrape metrics(t->line());
  EXPECT_TRUE(metrics.WaitFor("kwq_tracker_events_never_read_total",
                              static_cast<double>(kDeleted), absl::Seconds(30)))
      << metrics.Sample("kwq_tracker_events_never_read_total");
  t->Kill(SIGTERM);
}

}  // namespace
}  // namespace kwq
