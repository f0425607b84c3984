#include "server/core/task_queues.h"

#include "gtest/gtest.h"

namespace kwq::scheduler {
namespace {

QueuedTask Q(const std::string& id, int priority, const std::string& job = "j",
             int attempt = 1) {
  QueuedTask q;
  q.pos = {"kwq.tasks.p" + std::to_string(priority), 0, 0};
  q.task.set_id(id);
  q.task.set_job_id(job);
  q.task.set_priority(priority);
  q.task.set_attempt(attempt);
  return q;
}

TEST(TaskQueuesTest, ReadyDelayedAndParkedAreCountedApart) {
  TaskQueues queues;
  const absl::Time t0 = absl::FromUnixSeconds(100);
  queues.PushReady(Q("a", 3));
  queues.PushDelayed(t0 + absl::Seconds(1), Q("b", 3));
  queues.Park(Q("c", 3, "paused"));
  EXPECT_EQ(queues.buffered(3), 2u);  // parked ones have their own cap
  EXPECT_EQ(queues.parked(3), 1);
  queues.ReleaseDue(t0);
  EXPECT_EQ(queues.ready(3).size(), 1u);
  queues.ReleaseDue(t0 + absl::Seconds(1));
  EXPECT_EQ(queues.ready(3).size(), 2u);
  queues.Unpark("paused");
  EXPECT_EQ(queues.ready(3).size(), 3u);
  EXPECT_EQ(queues.parked(3), 0);
}

TEST(TaskQueuesTest, RemoveIfTellsWhereEachTaskWaited) {
  TaskQueues queues;
  queues.PushReady(Q("a", 1, "x"));
  queues.PushDelayed(absl::InfiniteFuture(), Q("b", 2, "x"));
  queues.Park(Q("c", 3, "x"));
  queues.PushReady(Q("d", 1, "y"));
  auto removed = queues.RemoveIf(
      [](const QueuedTask& q) { return q.task.job_id() == "x"; });
  ASSERT_EQ(removed.size(), 3u);
  EXPECT_EQ(removed[0].where, TaskQueues::Where::kReady);
  EXPECT_EQ(removed[1].where, TaskQueues::Where::kDelayed);
  EXPECT_EQ(removed[2].where, TaskQueues::Where::kParked);
  EXPECT_EQ(queues.buffered(), 1u);
  EXPECT_EQ(queues.parked(3), 0);
}

TEST(TaskQueuesTest, TakeMatchesIdAndAttemptButNotDelayedTasks) {
  TaskQueues queues;
  queues.PushReady(Q("a", 1, "j", 2));
  queues.PushDelayed(absl::InfiniteFuture(), Q("b", 1));
  EXPECT_FALSE(queues.Take("a", 1).has_value());
  EXPECT_TRUE(queues.Take("a", 2).has_value());
  EXPECT_FALSE(queues.Take("b", 1).has_value());
  ASSERT_TRUE(queues.Find("b").has_value());
  EXPECT_EQ(queues.Find("b")->where, TaskQueues::Where::kDelayed);
}

TEST(TaskQueuesTest, BackpressurePausesAtTheLimitAndResumesAtHalf) {
  TaskQueues queues;
  for (int i = 0; i < 3; ++i) queues.PushReady(Q("t" + std::to_string(i), 4));
  EXPECT_EQ(queues.UpdateBackpressure(4, 4), std::nullopt);
  queues.PushReady(Q("t3", 4));
  EXPECT_EQ(queues.UpdateBackpressure(4, 4), true);
  EXPECT_EQ(queues.UpdateBackpressure(4, 4), std::nullopt);
  queues.ready(4).pop_front();
  queues.ready(4).pop_front();
  EXPECT_EQ(queues.UpdateBackpressure(4, 4), false);
}

TEST(TaskQueuesTest, AnOutOfRangePriorityIsClampedNotACrash) {
  TaskQueues queues;
  queues.PushReady(Q("x", 42));
  EXPECT_EQ(queues.ready(9).size(), 1u);
}

}  // namespace
}  // namespace kwq::scheduler
