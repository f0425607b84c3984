#include "server/core/control_state.h"

#include <string>

#include "gtest/gtest.h"

namespace kwq::scheduler {
namespace {

using Kind = ControlChange::Kind;

std::string Record(const kwq::v1::Scope& scope, bool cancel,
                   const std::string& who = "ops") {
  kwq::v1::ControlRecord r;
  *r.mutable_scope() = scope;
  r.set_paused(!cancel);
  r.set_cancelled(cancel);
  r.set_requested_by(who);
  return r.SerializeAsString();
}

kwq::v1::Scope JobScope(const std::string& job) {
  kwq::v1::Scope s;
  s.set_job_id(job);
  return s;
}

kwq::v1::Task TaskOf(const std::string& id, const std::string& job, int p) {
  kwq::v1::Task t;
  t.set_id(id);
  t.set_job_id(job);
  t.set_priority(p);
  return t;
}

TEST(ControlStateTest, KeysRoundTripThroughDecode) {
  kwq::v1::Scope all;
  all.set_all(true);
  kwq::v1::Scope p3;
  p3.set_priority(3);
  kwq::v1::Scope task;
  task.set_task_id("t-1");
  struct Case {
    kwq::v1::Scope scope;
    bool cancel;
    Kind kind;
  } cases[] = {{all, false, Kind::kPauseAll},
               {p3, false, Kind::kPausePriority},
               {JobScope("j1"), false, Kind::kPauseJob},
               {JobScope("j1"), true, Kind::kCancelJob},
               {task, true, Kind::kCancelTask}};
  for (const Case& c : cases) {
    const std::string key = ControlState::Key(c.scope, c.cancel);
    auto set = ControlState::Decode(key, Record(c.scope, c.cancel, "alice"));
    ASSERT_TRUE(set.ok()) << key << ": " << set.status();
    EXPECT_EQ(set->kind, c.kind) << key;
    EXPECT_TRUE(set->set) << key;
    EXPECT_EQ(set->requested_by, "alice");
    auto lifted = ControlState::Decode(key, "");
    ASSERT_TRUE(lifted.ok()) << key;
    EXPECT_FALSE(lifted->set) << key;
  }
}

TEST(ControlStateTest, GarbageUnderAControlKeyIsAnErrorNotATombstone) {
  // A value that does not parse, and two that parse but contradict the key:
  // "\x10\x01" is a ControlRecord saying paused=true with no scope.
  for (const std::string& value :
       {std::string("\xff\xff\xff garbage"), std::string("\x10\x01"),
        Record(JobScope("other"), false)}) {
    EXPECT_FALSE(ControlState::Decode("pause/all", value).ok());
    EXPECT_FALSE(ControlState::Decode("cancel/job/J", value).ok());
  }
  // A pause record under a cancel key and the other way round.
  EXPECT_FALSE(
      ControlState::Decode("cancel/job/J", Record(JobScope("J"), false)).ok());
  EXPECT_FALSE(
      ControlState::Decode("pause/job/J", Record(JobScope("J"), true)).ok());
}

TEST(ControlStateTest, UnknownOrMalformedKeysAreErrors) {
  for (const std::string& key : std::initializer_list<std::string>{
           "pause/p10", "pause/p-1", "pause/p03", "pause/job/", "pause/job/a b",
           "cancel/all", "resume/all", "", std::string(300, 'x')}) {
    EXPECT_FALSE(ControlState::Decode(key, "").ok()) << key;
  }
}

TEST(ControlStateTest, AppliedChangesPauseAndCancel) {
  ControlState state(10);
  const kwq::v1::Task t = TaskOf("t1", "J", 4);
  EXPECT_FALSE(state.IsPaused(t));
  state.Apply(
      *ControlState::Decode("pause/job/J", Record(JobScope("J"), false)));
  EXPECT_TRUE(state.IsPaused(t));
  EXPECT_TRUE(state.job_paused("J"));
  state.Apply(*ControlState::Decode("pause/job/J", ""));
  EXPECT_FALSE(state.IsPaused(t));
  state.Apply(*ControlState::Decode("cancel/job/J",
                                    Record(JobScope("J"), true, "bob")));
  EXPECT_TRUE(state.IsCancelled(t));
  EXPECT_EQ(state.CancelledBy(t), "bob");
}

TEST(ControlStateTest, RequestsAreValidatedWithClearMessages) {
  kwq::v1::Scope all;
  all.set_all(true);
  EXPECT_TRUE(ControlState::ValidateRequest(all, false, "ops").ok());
  EXPECT_EQ(ControlState::ValidateRequest(all, true, "").code(),
            absl::StatusCode::kInvalidArgument);
  const absl::Status big =
      ControlState::ValidateRequest(all, false, std::string(1 << 20, 'x'));
  EXPECT_EQ(big.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_LT(big.message().size(), 200u);  // never echoes the input whole
  kwq::v1::Scope p;
  p.set_priority(12);
  EXPECT_EQ(ControlState::ValidateRequest(p, false, "").code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ControlState::ValidateRequest(kwq::v1::Scope(), false, "").code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ControlStateTest, KnownJobsAreBounded) {
  ControlState state(2);
  state.RememberJob("a");
  state.RememberJob("b");
  state.RememberJob("c");
  EXPECT_FALSE(state.KnowsJob("a"));
  EXPECT_TRUE(state.KnowsJob("b"));
  EXPECT_TRUE(state.KnowsJob("c"));
}

}  // namespace
}  // namespace kwq::scheduler
