#include "tracker/model/task_model.h"

#include <algorithm>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace kwq::tracker {
namespace {

using kwq::v1::TaskEvent;
using kwq::v1::TaskState;
using kwq::v1::TaskStatus;

TaskEvent Ev(TaskState state, int attempt, int64_t seconds,
             const std::string& worker = "") {
  TaskEvent ev;
  ev.set_task_id("t1");
  ev.set_job_id("j1");
  ev.set_attempt(attempt);
  ev.set_state(state);
  ev.mutable_time()->set_seconds(seconds);
  ev.set_worker_id(worker);
  if (state == kwq::v1::PENDING && attempt == 1) {
    ev.set_priority(7);
    (*ev.mutable_tags())["curve"] = "USD";
  }
  if (state == kwq::v1::ERROR || state == kwq::v1::FAILED) ev.set_error("boom");
  return ev;
}

TEST(TaskModelTest, AHappyPathRecordsEveryStage) {
  TaskStatus t;
  auto o = ApplyEvent(Ev(kwq::v1::PENDING, 1, 10), &t);
  EXPECT_TRUE(o.new_task);
  EXPECT_TRUE(o.tags_learned);
  EXPECT_EQ(o.new_state, kwq::v1::PENDING);
  ApplyEvent(Ev(kwq::v1::ALLOCATED, 1, 11, "w1"), &t);
  ApplyEvent(Ev(kwq::v1::RUNNING, 1, 12, "w1"), &t);
  o = ApplyEvent(Ev(kwq::v1::COMPLETED, 1, 13, "w1"), &t);
  EXPECT_EQ(o.old_state, kwq::v1::RUNNING);
  EXPECT_EQ(o.new_state, kwq::v1::COMPLETED);
  EXPECT_TRUE(o.finished);
  EXPECT_EQ(t.state(), kwq::v1::COMPLETED);
  EXPECT_EQ(t.priority(), 7);
  EXPECT_EQ(t.tags().at("curve"), "USD");
  ASSERT_EQ(t.history_size(), 1);
  EXPECT_EQ(t.history(0).pending_time().seconds(), 10);
  EXPECT_EQ(t.history(0).allocated_time().seconds(), 11);
  EXPECT_EQ(t.history(0).running_time().seconds(), 12);
  EXPECT_EQ(t.history(0).finished_time().seconds(), 13);
  EXPECT_EQ(t.history(0).worker_id(), "w1");
}

TEST(TaskModelTest, StagesFoldedIntoOneEventAreRecordedAsTheirOwn) {
  TaskStatus folded;
  ApplyEvent(Ev(kwq::v1::PENDING, 1, 10), &folded);
  TaskEvent done = Ev(kwq::v1::COMPLETED, 1, 13, "w1");
  done.mutable_allocated_time()->set_seconds(11);
  done.mutable_running_time()->set_seconds(12);
  auto o = ApplyEvent(done, &folded);
  EXPECT_EQ(o.kind, ApplyOutcome::kApplied);
  EXPECT_EQ(o.old_state, kwq::v1::PENDING);
  EXPECT_EQ(o.new_state, kwq::v1::COMPLETED);
  EXPECT_TRUE(o.finished);

  // The same record as from one event per stage.
  TaskStatus separate;
  ApplyEvent(Ev(kwq::v1::PENDING, 1, 10), &separate);
  ApplyEvent(Ev(kwq::v1::ALLOCATED, 1, 11, "w1"), &separate);
  ApplyEvent(Ev(kwq::v1::RUNNING, 1, 12, "w1"), &separate);
  ApplyEvent(Ev(kwq::v1::COMPLETED, 1, 13, "w1"), &separate);
  EXPECT_EQ(folded.SerializeAsString(), separate.SerializeAsString())
      << folded.DebugString() << "\nvs\n"
      << separate.DebugString();

  // A RUNNING event carrying its ALLOCATED time, then the completion.
  TaskStatus running;
  ApplyEvent(Ev(kwq::v1::PENDING, 1, 10), &running);
  TaskEvent run = Ev(kwq::v1::RUNNING, 1, 12, "w1");
  run.mutable_allocated_time()->set_seconds(11);
  EXPECT_EQ(ApplyEvent(run, &running).new_state, kwq::v1::RUNNING);
  ApplyEvent(Ev(kwq::v1::COMPLETED, 1, 13, "w1"), &running);
  EXPECT_EQ(running.SerializeAsString(), separate.SerializeAsString());
  ASSERT_EQ(running.history_size(), 1);
  EXPECT_EQ(running.history(0).allocated_time().seconds(), 11);
}

TEST(TaskModelTest, DuplicatesChangeNothing) {
  TaskStatus t;
  ApplyEvent(Ev(kwq::v1::PENDING, 1, 10), &t);
  ApplyEvent(Ev(kwq::v1::RUNNING, 1, 12), &t);
  const std::string before = t.SerializeAsString();
  auto o = ApplyEvent(Ev(kwq::v1::RUNNING, 1, 99), &t);
  EXPECT_EQ(o.kind, ApplyOutcome::kDuplicate);
  EXPECT_FALSE(o.changed);
  EXPECT_EQ(t.SerializeAsString(), before);
  ApplyEvent(Ev(kwq::v1::COMPLETED, 1, 13), &t);
  const std::string done = t.SerializeAsString();
  o = ApplyEvent(Ev(kwq::v1::COMPLETED, 1, 13), &t);  // the event replayed
  EXPECT_EQ(o.kind, ApplyOutcome::kDuplicate);
  EXPECT_FALSE(o.changed);
  EXPECT_FALSE(o.repeated_execution);
  EXPECT_EQ(t.SerializeAsString(), done);
}

TEST(TaskModelTest, ASecondRunOfAnAttemptIsCountedNotHidden) {
  TaskStatus t;
  ApplyEvent(Ev(kwq::v1::PENDING, 1, 10), &t);
  ApplyEvent(Ev(kwq::v1::COMPLETED, 1, 13, "w1"), &t);
  // The same id produced twice (or its record delivered again): attempt 1
  // completes a second time, later and elsewhere.
  auto o = ApplyEvent(Ev(kwq::v1::COMPLETED, 1, 20, "w2"), &t);
  EXPECT_EQ(o.kind, ApplyOutcome::kDuplicate);
  EXPECT_TRUE(o.repeated_execution);
  EXPECT_TRUE(o.changed);
  EXPECT_FALSE(o.finished);
  EXPECT_EQ(t.repeated_executions(), 1);
  EXPECT_EQ(t.history(0).finished_time().seconds(), 13);  // the first stays
  EXPECT_EQ(t.history(0).worker_id(), "w1");
  // A report repeating the first one's time and worker is a replay, not a
  // run.
  o = ApplyEvent(Ev(kwq::v1::COMPLETED, 1, 13, "w1"), &t);
  EXPECT_FALSE(o.repeated_execution);
  EXPECT_EQ(t.repeated_executions(), 1);
}

TEST(TaskModelTest, TheFirstTerminalStateOfAnAttemptWins) {
  TaskStatus t;
  ApplyEvent(Ev(kwq::v1::PENDING, 1, 10), &t);
  ApplyEvent(Ev(kwq::v1::ERROR, 1, 11), &t);
  auto o = ApplyEvent(Ev(kwq::v1::COMPLETED, 1, 12), &t);
  EXPECT_EQ(o.kind, ApplyOutcome::kConflict);
  EXPECT_TRUE(o.repeated_execution);  // it ran twice, ending differently
  EXPECT_EQ(t.repeated_executions(), 1);
  EXPECT_EQ(t.state(), kwq::v1::ERROR);
  EXPECT_EQ(t.history(0).state(), kwq::v1::ERROR);
}

TEST(TaskModelTest,
     ARetryMovesToTheNextAttemptAndLateEventsOfTheOldOneAreStale) {
  TaskStatus t;
  ApplyEvent(Ev(kwq::v1::PENDING, 1, 10), &t);
  ApplyEvent(Ev(kwq::v1::ALLOCATED, 1, 11, "w1"), &t);
  // The retry's PENDING overtakes the first attempt's ERROR.
  auto o = ApplyEvent(Ev(kwq::v1::PENDING, 2, 20), &t);
  EXPECT_TRUE(o.retry_started);
  EXPECT_EQ(t.state(), kwq::v1::PENDING);
  o = ApplyEvent(Ev(kwq::v1::ERROR, 1, 19, "w1"), &t);
  EXPECT_EQ(o.kind, ApplyOutcome::kStale);
  EXPECT_EQ(t.state(), kwq::v1::PENDING);           // still attempt 2's
  EXPECT_EQ(t.history(0).state(), kwq::v1::ERROR);  // history filled in
  EXPECT_EQ(t.history(0).finished_time().seconds(), 19);
  ApplyEvent(Ev(kwq::v1::RUNNING, 2, 21, "w2"), &t);
  o = ApplyEvent(Ev(kwq::v1::COMPLETED, 2, 22, "w2"), &t);
  EXPECT_TRUE(o.finished);
  EXPECT_EQ(t.attempts(), 2);
  // A late ALLOCATED of attempt 1 after the task finished: history only.
  TaskStatus copy = t;
  o = ApplyEvent(Ev(kwq::v1::RUNNING, 1, 12, "w1"), &t);
  EXPECT_EQ(o.kind, ApplyOutcome::kStale);
  EXPECT_EQ(t.state(), kwq::v1::COMPLETED);
}

TEST(TaskModelTest, FailedAfterErrorIsTheVerdictNotAConflict) {
  TaskStatus t;
  ApplyEvent(Ev(kwq::v1::PENDING, 1, 10), &t);
  auto o = ApplyEvent(Ev(kwq::v1::ERROR, 1, 11), &t);
  EXPECT_TRUE(o.attempt_errored);
  EXPECT_EQ(t.state(), kwq::v1::ERROR);
  o = ApplyEvent(Ev(kwq::v1::FAILED, 1, 11), &t);
  EXPECT_EQ(o.kind, ApplyOutcome::kApplied);
  EXPECT_TRUE(o.finished);
  EXPECT_EQ(t.state(), kwq::v1::FAILED);
  o = ApplyEvent(Ev(kwq::v1::FAILED, 1, 11), &t);
  EXPECT_EQ(o.kind, ApplyOutcome::kDuplicate);
  o = ApplyEvent(Ev(kwq::v1::ERROR, 1, 11), &t);
  EXPECT_EQ(o.kind, ApplyOutcome::kDuplicate);
}

// Any order of one task's events (one terminal per attempt) gives the same
// record.
TEST(TaskModelTest, AWaitingNoteMarksAQueuedAttemptUntilItIsAllocated) {
  TaskStatus t;
  ApplyEvent(Ev(kwq::v1::PENDING, 1, 10), &t);
  TaskEvent note = Ev(kwq::v1::PENDING, 1, 11);
  note.set_waiting("no connected worker has labels [gpu]");
  auto o = ApplyEvent(note, &t);
  EXPECT_EQ(o.kind, ApplyOutcome::kApplied);
  EXPECT_EQ(t.state(), kwq::v1::PENDING);
  EXPECT_EQ(t.history(0).waiting(), "no connected worker has labels [gpu]");
  EXPECT_EQ(t.history(0).pending_time().seconds(), 10) << "not a new stage";
  EXPECT_EQ(ApplyEvent(note, &t).kind, ApplyOutcome::kDuplicate);
  ApplyEvent(Ev(kwq::v1::ALLOCATED, 1, 12, "w1"), &t);
  EXPECT_EQ(t.history(0).waiting(), "");
  // A late note changes nothing once the attempt runs.
  EXPECT_EQ(ApplyEvent(note, &t).kind, ApplyOutcome::kDuplicate);
  EXPECT_EQ(t.history(0).waiting(), "");
}

TEST(TaskModelTest, ReorderingGivesTheSameRecord) {
  std::vector<TaskEvent> events = {
      Ev(kwq::v1::PENDING, 1, 10),       Ev(kwq::v1::ALLOCATED, 1, 11, "w1"),
      Ev(kwq::v1::RUNNING, 1, 12, "w1"), Ev(kwq::v1::ERROR, 1, 13, "w1"),
      Ev(kwq::v1::PENDING, 2, 13),       Ev(kwq::v1::ALLOCATED, 2, 14, "w2"),
      Ev(kwq::v1::RUNNING, 2, 15, "w2"), Ev(kwq::v1::COMPLETED, 2, 16, "w2"),
      Ev(kwq::v1::RUNNING, 2, 15, "w2"),  // a duplicate too
  };
  TaskStatus reference;
  for (const auto& e : events) ApplyEvent(e, &reference);
  EXPECT_EQ(reference.state(), kwq::v1::COMPLETED);
  std::mt19937 rng(42);
  for (int round = 0; round < 200; ++round) {
    std::shuffle(events.begin(), events.end(), rng);
    TaskStatus t;
    int finished = 0;
    for (const auto& e : events) finished += ApplyEvent(e, &t).finished ? 1 : 0;
    // Only the event order of the final attempt decides when it finishes; the
    // record is the same. Worker ids follow the latest stage reported per
    // attempt, so compare the fields that do not depend on it.
    EXPECT_EQ(t.state(), kwq::v1::COMPLETED) << round;
    EXPECT_EQ(finished, 1) << round;
    ASSERT_EQ(t.history_size(), 2);
    for (int i = 0; i < 2; ++i) {
      EXPECT_EQ(t.history(i).state(), reference.history(i).state());
      EXPECT_EQ(t.history(i).pending_time().seconds(),
                reference.history(i).pending_time().seconds());
      EXPECT_EQ(t.history(i).running_time().seconds(),
                reference.history(i).running_time().seconds());
      EXPECT_EQ(t.history(i).finished_time().seconds(),
                reference.history(i).finished_time().seconds());
    }
    EXPECT_EQ(t.tags().at("curve"), "USD");
  }
}

}  // namespace
}  // namespace kwq::tracker
