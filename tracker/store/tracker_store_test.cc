#include "tracker/store/tracker_store.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "server/util/time_util.h"

namespace kwq::tracker {
namespace {

using kwq::v1::TaskEvent;
using kwq::v1::TaskState;

class TrackerStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = absl::StrCat(
        std::getenv("TEST_TMPDIR") ? std::getenv("TEST_TMPDIR") : "/tmp",
        "/store-",
        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    Reopen(/*wipe=*/true);
  }
  void Reopen(bool wipe, StoreOptions options = StoreOptions()) {
    store_.reset();
    auto s = TrackerStore::Open(dir_, options, wipe);
    ASSERT_TRUE(s.ok()) << s.status();
    store_ = std::move(*s);
    store_->SetViewCurrent(true);  // no ingest here: the batches are all
  }

  static TaskEvent Ev(const std::string& task, const std::string& job,
                      TaskState state, int attempt, int64_t second) {
    TaskEvent ev;
    ev.set_task_id(task);
    ev.set_job_id(job);
    ev.set_state(state);
    ev.set_attempt(attempt);
    ev.mutable_time()->set_seconds(second);
    if (state == kwq::v1::PENDING && attempt == 1) {
      (*ev.mutable_tags())["curve"] = task.back() % 2 == 0 ? "USD" : "EUR";
    }
    if (state == kwq::v1::ERROR || state == kwq::v1::FAILED)
      ev.set_error("boom");
    return ev;
  }

  // Appends events as records of partition 0 with consecutive offsets.
  void Apply(const std::vector<TaskEvent>& events) {
    std::vector<EventRecord> batch;
    for (const auto& e : events)
      batch.push_back({0, next_offset_++, e.SerializeAsString()});
    ASSERT_TRUE(store_->ApplyBatch("kwq.events", batch).ok());
  }

  std::string dir_;
  std::unique_ptr<TrackerStore> store_;
  int64_t next_offset_ = 0;
};

TEST_F(TrackerStoreTest, CountsPerStateAndTagFollowTheTasks) {
  std::vector<TaskEvent> events;
  for (int i = 0; i < 10; ++i) {
    const std::string id = absl::StrCat("t", i);
    events.push_back(Ev(id, "j", kwq::v1::PENDING, 1, 100));
    events.push_back(Ev(id, "j", kwq::v1::RUNNING, 1, 101));
    if (i < 6) events.push_back(Ev(id, "j", kwq::v1::COMPLETED, 1, 102));
  }
  events.push_back(Ev("t9", "j", kwq::v1::ERROR, 1, 103));
  events.push_back(Ev("t9", "j", kwq::v1::FAILED, 1, 103));
  events.push_back(Ev("t8", "j", kwq::v1::ERROR, 1, 103));
  events.push_back(Ev("t8", "j", kwq::v1::PENDING, 2, 103));
  Apply(events);
  Apply({Ev("t0", "j", kwq::v1::COMPLETED, 1,
            104)});  // a duplicate in a later batch

  auto s = store_->GetJobSummary("j", 0, absl::FromUnixSeconds(105));
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->counts().total(), 10);
  EXPECT_EQ(s->counts().completed(), 6);
  EXPECT_EQ(s->counts().running(), 2);  // t6, t7
  EXPECT_EQ(s->counts().pending(), 1);  // t8, retrying
  EXPECT_EQ(s->counts().failed(), 1);   // t9
  EXPECT_EQ(s->counts().retries(), 1);
  EXPECT_FALSE(s->done());
  EXPECT_EQ(s->first_submit().seconds(), 100);
  EXPECT_EQ(s->last_finish().seconds(), 103);
  EXPECT_GT(s->rate_per_second(), 0);
  EXPECT_GT(s->eta_seconds(), 0);
  ASSERT_EQ(s->tags_size(), 2);
  int64_t usd_completed = 0, total = 0;
  for (const auto& t : s->tags()) {
    total += t.counts().total();
    if (t.tag() == "curve=USD") usd_completed = t.counts().completed();
  }
  EXPECT_EQ(total, 10);
  EXPECT_EQ(usd_completed, 3);  // t0, t2, t4
  EXPECT_FALSE(s->recent_errors().empty());

  const auto c = store_->counters();
  EXPECT_EQ(c.duplicates(), 1);
  EXPECT_EQ(c.completed(), 6);

  auto t9 = store_->GetTask("t9");
  ASSERT_TRUE(t9.ok());
  EXPECT_EQ(t9->state(), kwq::v1::FAILED);
  EXPECT_EQ(t9->last_error(), "boom");
  EXPECT_EQ(store_->GetTask("nope").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->GetTask("bad id!").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->GetJobSummary("nojob", 0, absl::Now()).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(TrackerStoreTest, ListTasksPagesThroughEveryIndex) {
  std::vector<TaskEvent> events;
  for (int i = 0; i < 250; ++i) {
    const std::string id = absl::StrCat("t", 1000 + i);
    events.push_back(Ev(id, "j", kwq::v1::PENDING, 1, 100));
    if (i % 5 == 0)
      events.push_back(Ev(id, "j", kwq::v1::COMPLETED, 1, 200 + i));
  }
  Apply(events);
  auto collect = [&](kwq::v1::ListTasksRequest req) {
    std::vector<std::string> ids;
    for (int pages = 0; pages < 100; ++pages) {
      auto r = store_->ListTasks(req);
      EXPECT_TRUE(r.ok()) << r.status();
      if (!r.ok()) break;
      for (const auto& t : r->tasks()) ids.push_back(t.task_id());
      if (r->next_page_token().empty()) break;
      req.set_page_token(r->next_page_token());
    }
    return ids;
  };
  kwq::v1::ListTasksRequest req;
  req.set_job_id("j");
  req.set_page_size(40);
  auto all = collect(req);
  EXPECT_EQ(all.size(), 250u);
  EXPECT_TRUE(std::is_sorted(all.begin(), all.end()));
  EXPECT_EQ(std::set<std::string>(all.begin(), all.end()).size(), 250u);

  req.set_state(kwq::v1::COMPLETED);
  EXPECT_EQ(collect(req).size(), 50u);
  req.set_tag("curve=USD");
  EXPECT_EQ(collect(req).size(), 25u);  // even ids among the completed
  req.clear_state();
  EXPECT_EQ(collect(req).size(), 125u);
  req.clear_tag();
  req.set_state(kwq::v1::COMPLETED);
  *req.mutable_since() = ToProto(absl::FromUnixSeconds(300));
  EXPECT_EQ(collect(req).size(), 30u);  // finished at 300..445

  kwq::v1::ListTasksRequest bad;
  bad.set_job_id("j");
  bad.set_page_size(5000);
  EXPECT_EQ(store_->ListTasks(bad).status().code(),
            absl::StatusCode::kInvalidArgument);
  bad.set_page_size(10);
  bad.set_tag("novalue");
  EXPECT_EQ(store_->ListTasks(bad).status().code(),
            absl::StatusCode::kInvalidArgument);
  bad.clear_tag();
  bad.set_job_id("other");
  EXPECT_EQ(store_->ListTasks(bad).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(TrackerStoreTest, StateAndOffsetsSurviveAReopen) {
  Apply({Ev("a1", "j1", kwq::v1::PENDING, 1, 10),
         Ev("a1", "j1", kwq::v1::COMPLETED, 1, 11),
         Ev("b1", "j2", kwq::v1::PENDING, 1, 20)});
  Reopen(/*wipe=*/false);
  EXPECT_EQ(store_->Offsets("kwq.events").at(0), 3);
  EXPECT_EQ(store_->counters().events(), 3);
  auto s = store_->GetJobSummary("j1", 0, absl::FromUnixSeconds(12));
  ASSERT_TRUE(s.ok());
  EXPECT_TRUE(s->done());
  // Issue 16: a view behind the events topic never says done.
  store_->SetViewCurrent(false);
  EXPECT_FALSE(
      store_->GetJobSummary("j1", 0, absl::FromUnixSeconds(12))->done());
  store_->SetViewCurrent(true);
  // Jobs newest first, paged.
  kwq::v1::ListJobsRequest req;
  req.set_page_size(1);
  auto page1 = store_->ListJobs(req, absl::Now());
  ASSERT_TRUE(page1.ok());
  ASSERT_EQ(page1->jobs_size(), 1);
  EXPECT_EQ(page1->jobs(0).job_id(), "j2");
  req.set_page_token(page1->next_page_token());
  auto page2 = store_->ListJobs(req, absl::Now());
  ASSERT_TRUE(page2.ok());
  ASSERT_EQ(page2->jobs_size(), 1);
  EXPECT_EQ(page2->jobs(0).job_id(), "j1");
  EXPECT_TRUE(page2->next_page_token().empty());
  // Throughput over time.
  kwq::v1::GetThroughputRequest tr;
  tr.set_buckets(5);
  auto tp = store_->GetThroughput(tr, absl::FromUnixSeconds(12));
  ASSERT_TRUE(tp.ok());
  int64_t completed = 0;
  for (const auto& b : tp->buckets()) completed += b.completed();
  EXPECT_EQ(completed, 1);
  EXPECT_EQ(tp->total_completed(), 1);
  Reopen(/*wipe=*/true);
  EXPECT_TRUE(store_->Offsets("kwq.events").empty());
}

TEST_F(TrackerStoreTest, TheRecentRecordCacheNeverChangesWhatIsStored) {
  // Tasks whose events are spread over many batches, with a retry, a failure
  // and duplicates after the end; applied as one batch, and one event per
  // batch with a cache of 0, 3 (evicting all the time) and the default.
  std::vector<TaskEvent> events;
  for (int i = 0; i < 12; ++i) {
    events.push_back(Ev(absl::StrCat("r", i), "j", kwq::v1::PENDING, 1, 100));
  }
  for (int i = 0; i < 12; ++i) {
    const std::string id = absl::StrCat("r", i);
    events.push_back(Ev(id, "j", kwq::v1::RUNNING, 1, 101));
    if (i % 4 == 1) {
      events.push_back(Ev(id, "j", kwq::v1::ERROR, 1, 102));
      events.push_back(Ev(id, "j", kwq::v1::PENDING, 2, 102));
      events.push_back(Ev(id, "j", kwq::v1::RUNNING, 2, 103));
    }
    events.push_back(
        i % 4 == 3 ? Ev(id, "j", kwq::v1::FAILED, 1, 104)
                   : Ev(id, "j", kwq::v1::COMPLETED, i % 4 == 1 ? 2 : 1, 104));
  }
  events.push_back(Ev("r0", "j", kwq::v1::COMPLETED, 1, 105));
  events.push_back(Ev("r5", "j", kwq::v1::RUNNING, 2, 105));

  auto snapshot = [&] {
    std::string out;
    for (int i = 0; i < 12; ++i) {
      auto t = store_->GetTask(absl::StrCat("r", i));
      EXPECT_TRUE(t.ok()) << t.status();
      if (t.ok()) out += t->ShortDebugString() + "\n";
    }
    auto s = store_->GetJobSummary("j", 0, absl::FromUnixSeconds(106));
    EXPECT_TRUE(s.ok()) << s.status();
    if (s.ok()) out += s->counts().ShortDebugString();
    return out;
  };
  Apply(events);
  const std::string expected = snapshot();
  EXPECT_NE(expected.find("state: FAILED"), std::string::npos) << expected;
  for (size_t cache :
       {size_t{0}, size_t{3}, StoreOptions().recent_task_records}) {
    StoreOptions options;
    options.recent_task_records = cache;
    Reopen(/*wipe=*/true, options);
    for (const auto& e : events) Apply({e});
    EXPECT_EQ(snapshot(), expected) << "cache of " << cache;
  }
}

// Issue 18: 12 errors of 900 KB made a job summary 9.2 MB (and ListJobs 14.6
// MB): stored errors are cut, so answers stay small.
TEST_F(TrackerStoreTest, HugeErrorsKeepSummariesSmall) {
  std::vector<TaskEvent> events;
  for (int i = 0; i < 12; ++i) {
    const std::string id = absl::StrCat("e", i);
    events.push_back(Ev(id, "errs", kwq::v1::PENDING, 1, 10));
    TaskEvent err = Ev(id, "errs", kwq::v1::ERROR, 1, 11);
    err.set_error(std::string(900 * 1000, 'x'));
    events.push_back(err);
  }
  Apply(events);
  auto s = store_->GetJobSummary("errs", 0, absl::FromUnixSeconds(12));
  ASSERT_TRUE(s.ok());
  EXPECT_FALSE(s->recent_errors().empty());
  EXPECT_LT(s->ByteSizeLong(), 64u * 1024) << "a summary of errors";
  auto t = store_->GetTask("e0");
  ASSERT_TRUE(t.ok());
  EXPECT_LE(t->last_error().size(), 16u * 1024);
}

// The compaction style can change on an existing store, both ways, without
// --rebuild: a store written under leveled compaction (with files below L0)
// opens under universal with every task and count intact and keeps taking
// batches, and opens again under leveled.
TEST_F(TrackerStoreTest, ACompactionStyleChangeKeepsEveryTask) {
  StoreOptions small;
  small.write_buffer_bytes = 64 << 10;  // many flushes, so compactions run
  small.recent_task_records = 0;
  auto apply_tasks = [&](int from, int to) {
    for (int i = from; i < to; i += 500) {
      std::vector<TaskEvent> events;
      for (int k = i; k < std::min(to, i + 500); ++k) {
        const std::string id = absl::StrCat("c", k);
        events.push_back(Ev(id, "cj", kwq::v1::PENDING, 1, 10));
        events.push_back(Ev(id, "cj", kwq::v1::COMPLETED, 1, 11));
      }
      Apply(events);
    }
  };
  auto expect_completed = [&](int n, const char* when) {
    auto s = store_->GetJobSummary("cj", 0, absl::FromUnixSeconds(12));
    ASSERT_TRUE(s.ok()) << when << ": " << s.status();
    EXPECT_EQ(s->counts().completed(), n) << when;
    EXPECT_EQ(s->counts().total(), n) << when;
    for (int k : {0, n / 2, n - 1}) {
      auto t = store_->GetTask(absl::StrCat("c", k));
      ASSERT_TRUE(t.ok()) << when << " c" << k << ": " << t.status();
      EXPECT_EQ(t->state(), kwq::v1::COMPLETED) << when << " c" << k;
    }
    // Every record again through ListTasks pages, whose records come from
    // many files and levels at once.
    kwq::v1::ListTasksRequest req;
    req.set_job_id("cj");
    req.set_page_size(1000);
    std::set<std::string> listed;
    for (int pages = 0; pages <= n / 1000 + 1; ++pages) {
      auto r = store_->ListTasks(req);
      ASSERT_TRUE(r.ok()) << when << ": " << r.status();
      for (const auto& t : r->tasks()) {
        EXPECT_EQ(t.state(), kwq::v1::COMPLETED) << when << " " << t.task_id();
        listed.insert(t.task_id());
      }
      if (r->next_page_token().empty()) break;
      req.set_page_token(r->next_page_token());
    }
    EXPECT_EQ(listed.size(), static_cast<size_t>(n)) << when;
  };
  Reopen(/*wipe=*/true, small);
  apply_tasks(0, 20000);
  // Wait (bounded) for a compaction to have moved files out of L0.
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (store_->GetDbStats().files_below_l0 == 0 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  ASSERT_GT(store_->GetDbStats().files_below_l0, 0u)
      << "no compaction under leveled: the test would prove nothing";
  expect_completed(20000, "leveled");

  small.universal_compaction = true;
  Reopen(/*wipe=*/false, small);
  expect_completed(20000, "leveled store opened under universal");
  apply_tasks(20000, 30000);
  expect_completed(30000, "universal, more batches");

  small.universal_compaction = false;
  Reopen(/*wipe=*/false, small);
  expect_completed(30000, "opened under leveled again");
  EXPECT_EQ(store_->Offsets("kwq.events").at(0), next_offset_);
}

TEST_F(TrackerStoreTest, BatchesOnlyInTheWriteAheadLogComeBackAtReopen) {
  StoreOptions logged;
  logged.write_ahead_log = true;
  logged.recent_task_records = 0;
  Reopen(/*wipe=*/true, logged);
  for (int i = 0; i < 3000; i += 500) {
    std::vector<TaskEvent> events;
    for (int k = i; k < i + 500; ++k) {
      const std::string id = absl::StrCat("w", k);
      events.push_back(Ev(id, "wj", kwq::v1::PENDING, 1, 10));
      events.push_back(Ev(id, "wj", kwq::v1::COMPLETED, 1, 11));
    }
    Apply(events);
  }
  // Nothing flushed yet (the batches fit the first memtable): after the reopen
  // they can only come from the log.
  ASSERT_EQ(store_->GetDbStats().sst_bytes, 0u);
  const int64_t offset = store_->Offsets("kwq.events").at(0);
  auto expect_all = [&](const char* when) {
    auto s = store_->GetJobSummary("wj", 0, absl::FromUnixSeconds(12));
    ASSERT_TRUE(s.ok()) << when << ": " << s.status();
    EXPECT_EQ(s->counts().completed(), 3000) << when;
    auto t = store_->GetTask("w2999");
    ASSERT_TRUE(t.ok()) << when << ": " << t.status();
    EXPECT_EQ(t->state(), kwq::v1::COMPLETED) << when;
    EXPECT_EQ(store_->Offsets("kwq.events").at(0), offset) << when;
    EXPECT_EQ(store_->counters().completed(), 3000) << when;
  };
  Reopen(/*wipe=*/false, logged);
  expect_all("reopened with the log");
  // Turning the log off later keeps what it held.
  StoreOptions unlogged;
  unlogged.write_ahead_log = false;
  Reopen(/*wipe=*/false, unlogged);
  expect_all("reopened without the log");
}

}  // namespace
}  // namespace kwq::tracker
