#include "tracker/model/job_aggregate.h"

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
    ApplyToJob(ApplyEvent(ev, &task), ev, "t1", &agg);
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
               "t" + std::to_string(i), &agg);
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

}  // namespace
}  // namespace kwq::tracker
