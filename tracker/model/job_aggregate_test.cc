#include "tracker/model/job_aggregate.h"

#include <map>

#include "gtest/gtest.h"

namespace kwq::tracker {
namespace {

using kwq::v1::TaskEvent;
using kwq::v1::TaskStatus;

TaskEvent Ev(kwq::v1::TaskState s, int attempt, int64_t sec,
             const std::string& error = "") {
  TaskEvent ev;
  ev.set_task_id("t1");
  ev.set_job_id("j1");
  ev.set_state(s);
  ev.set_attempt(attempt);
  ev.mutable_time()->set_seconds(sec);
  ev.set_error(error);
  return ev;
}

// The job's counts follow the task's state, through a retry to the finish.
TEST(JobAggregateTest, CountsFollowOneTaskThroughARetry) {
  internal::Aggregate agg;
  TaskStatus task;
  for (const TaskEvent& ev :
       {Ev(kwq::v1::PENDING, 1, 100), Ev(kwq::v1::RUNNING, 1, 101),
        Ev(kwq::v1::ERROR, 1, 102, "boom"), Ev(kwq::v1::PENDING, 2, 103),
        Ev(kwq::v1::COMPLETED, 2, 104)}) {
    ApplyToJob(ApplyEvent(ev, &task), ev, "t1", task.priority(), &agg);
  }
  const auto& c = agg.counts();
  EXPECT_EQ(c.total(), 1);
  EXPECT_EQ(c.completed(), 1);
  EXPECT_EQ(c.pending() + c.running() + c.error(), 0);
  EXPECT_EQ(c.retries(), 1);
  EXPECT_EQ(agg.first_submit().seconds(), 100);
  EXPECT_EQ(agg.last_finish().seconds(), 104);
  ASSERT_EQ(agg.recent_errors_size(), 1);
  EXPECT_EQ(agg.recent_errors(0), "t1 (attempt 1): boom");
  ASSERT_EQ(agg.recent_size(), 1);
  EXPECT_EQ(agg.recent(0).second(), 104);
}

TEST(JobAggregateTest, RecentErrorsAndSecondsAreBoundedNewestKept) {
  internal::Aggregate agg;
  for (int i = 0; i < 40; ++i) {
    ApplyOutcome o;
    o.attempt_errored = true;
    o.finished = true;
    ApplyToJob(o, Ev(kwq::v1::ERROR, 1, 1000 + i, std::string(5000, 'x')),
               "t" + std::to_string(i), 0, &agg);
  }
  ASSERT_EQ(agg.recent_errors_size(), kRecentErrors);
  EXPECT_EQ(agg.recent_errors(0).rfind("t39 ", 0), 0u) << "newest first";
  for (const auto& e : agg.recent_errors()) {
    EXPECT_LE(e.size(), kMaxSummaryErrorBytes + 64);
  }
  ASSERT_EQ(agg.recent_size(), kRecentSeconds);
  EXPECT_EQ(agg.recent(0).second(), 1000 + 40 - kRecentSeconds);
  EXPECT_EQ(agg.recent(kRecentSeconds - 1).second(), 1039);
}

TEST(JobAggregateTest, ATaskWhoseTagsArriveLateJoinsItsTagWithItsState) {
  // The RUNNING event came first; the PENDING with the tags afterwards.
  TaskStatus task;
  ApplyEvent(Ev(kwq::v1::RUNNING, 1, 101), &task);
  TaskEvent pending = Ev(kwq::v1::PENDING, 1, 100);
  (*pending.mutable_tags())["book"] = "rates";
  const ApplyOutcome o = ApplyEvent(pending, &task);
  ASSERT_TRUE(TagsChange(o, task));
  internal::Aggregate tag;
  ApplyToTag(o, pending, task, &tag);
  EXPECT_EQ(tag.counts().total(), 1);
  EXPECT_EQ(tag.counts().running(), 1);
  EXPECT_EQ(tag.first_submit().seconds(), 100);
  // An untagged task's changes touch no tag.
  TaskStatus plain;
  EXPECT_FALSE(
      TagsChange(ApplyEvent(Ev(kwq::v1::RUNNING, 1, 5), &plain), plain));
}

// Issue 19: progress by priority. Two tasks of priority 7 and one of 2; one
// of the 7s has its RUNNING before its PENDING (so it counts under 0 until its
// priority arrives); untrusted priorities are clamped.
TEST(JobAggregateTest, CountsByPriorityFollowTasksWhosePriorityArrivesLate) {
  internal::Aggregate agg;
  auto apply = [&](TaskStatus* task, TaskEvent ev) {
    const ApplyOutcome o = ApplyEvent(ev, task);
    ApplyToJob(o, ev, task->task_id(), task->priority(), &agg);
  };
  auto ev = [](const std::string& id, kwq::v1::TaskState s, int priority) {
    TaskEvent e = Ev(s, 1, 100);
    e.set_task_id(id);
    e.set_priority(priority);
    return e;
  };
  TaskStatus a, b, c, d;
  apply(&a, ev("a", kwq::v1::PENDING, 7));
  apply(&a, ev("a", kwq::v1::COMPLETED, 0));
  apply(&b, ev("b", kwq::v1::RUNNING, 0));  // before its PENDING
  ASSERT_EQ(agg.by_priority_size(), 2);
  EXPECT_EQ(agg.by_priority(0).priority(), 0);
  EXPECT_EQ(agg.by_priority(0).counts().running(), 1);
  apply(&b, ev("b", kwq::v1::PENDING, 7));  // the priority arrives
  apply(&c, ev("c", kwq::v1::PENDING, 2));
  apply(&d, ev("d", kwq::v1::PENDING, 1000));  // clamped to 9
  std::map<int, kwq::v1::StateCounts> by;
  for (const auto& p : agg.by_priority()) by[p.priority()] = p.counts();
  EXPECT_EQ(by[0].total(), 0);
  EXPECT_EQ(by[0].running(), 0);
  EXPECT_EQ(by[7].total(), 2);
  EXPECT_EQ(by[7].completed(), 1);
  EXPECT_EQ(by[7].running(), 1);
  EXPECT_EQ(by[2].total(), 1);
  EXPECT_EQ(by[2].pending(), 1);
  EXPECT_EQ(by[9].total(), 1);
  int64_t total = 0;
  for (const auto& p : agg.by_priority()) total += p.counts().total();
  EXPECT_EQ(total, agg.counts().total());
  // Sorted by priority.
  for (int i = 1; i < agg.by_priority_size(); ++i) {
    EXPECT_LT(agg.by_priority(i - 1).priority(), agg.by_priority(i).priority());
  }
}

}  // namespace
}  // namespace kwq::tracker
