#pragma once

// The scheduler core driven by hand: records, worker messages and a fake clock
// in; the effects (sends, produces, commits, pauses, closes) out. No threads,
// no sleeps, no I/O. Shared by the core's test files.
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "server/core/scheduler_core.h"
#include "server/util/time_util.h"

namespace kwq::scheduler {

using kwq::v1::Assignment;
using kwq::v1::Task;
using kwq::v1::TaskEvent;
using kwq::v1::TaskState;

inline constexpr char kGroupKey[] = "the-test-group-lease-key";

class SchedulerCoreTest : public ::testing::Test {
 protected:
  SchedulerCoreTest() { Reset(SchedulerOptions()); }

  // Most tests count one event per stage; the folding tests ask for folding.
  void Reset(SchedulerOptions options, bool fold_events = false) {
    options.scheduler_id = "s1";
    options.lease_key = kGroupKey;
    if (!fold_events) options.event_fold_window = absl::ZeroDuration();
    core_ = std::make_unique<SchedulerCore>(options, &clock_, 42);
  }

  static Task MakeTask(const std::string& id, int priority) {
    Task t;
    t.set_id(id);
    t.set_job_id("job");
    t.set_priority(priority);
    t.set_attempt(1);  // as Submit writes it
    *t.mutable_submit_time() = ToProto(absl::FromUnixSeconds(1));
    return t;
  }

  void Record(const Task& t, int partition, int64_t offset) {
    core_->OnTaskRecord(
        {core_->topics().ForPriority(t.priority()), partition, offset},
        t.SerializeAsString());
    Collect();
  }

  void Connect(ConnId conn, int slots, std::vector<std::string> labels = {},
               bool ack_batches = false) {
    kwq::v1::Hello hello;
    hello.set_worker_id(absl::StrCat("w", conn));
    hello.set_slots(slots);
    hello.set_ack_batches(ack_batches);
    for (auto& l : labels) hello.add_labels(l);
    core_->OnWorkerConnected(conn, hello);
    Collect();
  }

  void Send(ConnId conn, const kwq::v1::WorkerMessage& msg) {
    core_->OnWorkerMessage(conn, msg);
    Collect();
  }

  void Update(ConnId conn, const kwq::v1::FencingToken& token, TaskState state,
              bool retryable = true) {
    kwq::v1::WorkerMessage msg;
    *msg.mutable_update()->mutable_token() = token;
    msg.mutable_update()->set_state(state);
    msg.mutable_update()->set_retryable(retryable);
    if (state == kwq::v1::ERROR) msg.mutable_update()->set_error("boom");
    Send(conn, msg);
  }

  void Credits(ConnId conn, int n) {
    kwq::v1::WorkerMessage msg;
    msg.mutable_credits()->set_add(n);
    Send(conn, msg);
  }

  void Tick(absl::Duration d) {
    clock_.Advance(d);
    core_->OnTick();
    Collect();
  }

  // Acknowledges every produced batch with a cookie (the broker said yes).
  void MakeDurable(bool ok = true) {
    while (!cookies_.empty()) {
      uint64_t c = cookies_.front();
      cookies_.erase(cookies_.begin());
      core_->OnDurable(c, ok);
      Collect();
    }
  }

  // Fails every batch produced so far, once (what they produce meanwhile
  // stays for the next MakeDurable).
  void FailPending() {
    std::vector<uint64_t> now;
    now.swap(cookies_);
    for (uint64_t c : now) {
      core_->OnDurable(c, false);
      Collect();
    }
  }

  // A message as the worker receives it: serialised and parsed again (an
  // assignment carries its task's record bytes unparsed, as an unknown field).
  static Effects::Send AsReceived(const Effects::Send& s) {
    Effects::Send out{s.conn, {}};
    EXPECT_TRUE(out.msg.ParseFromString(s.msg.SerializeAsString()));
    return out;
  }

  // Takes the effects; commits are flushed first (the service does that on its
  // 10 ms tick; CommitsAreBuiltOncePerTick checks the deferral itself).
  // Returns whether they ask for a parked replay.
  bool Collect() {
    core_->FlushCommits();
    Effects e = core_->TakeEffects();
    for (auto& s : e.sends) sends_.push_back(AsReceived(s));
    for (auto& a : e.ok_acks) ok_acks_.push_back(a);
    for (auto& p : e.produces) {
      for (auto& r : p.records) records_.push_back(r);
      if (p.cookie != 0) cookies_.push_back(p.cookie);
    }
    for (auto& c : e.commits) commits_.push_back(c);
    for (auto& p : e.pauses) pauses_.push_back(p);
    for (auto& c : e.closes) closes_.push_back(c);
    return e.replay_parked;
  }

  // Whether the effects since the last Collect ask for a parked replay (and
  // collects them).
  bool TakeEffectsReplay() { return Collect(); }

  std::vector<Assignment> TakeAssignments(ConnId conn) {
    std::vector<Assignment> out;
    std::vector<Effects::Send> rest;
    for (auto& s : sends_) {
      if (s.conn == conn && s.msg.has_assignment()) {
        out.push_back(s.msg.assignment());
      } else {
        rest.push_back(s);
      }
    }
    sends_ = rest;
    return out;
  }

  std::vector<kwq::v1::UpdateAck> Acks(ConnId conn) const {
    std::vector<kwq::v1::UpdateAck> out;
    for (auto& s : sends_) {
      if (s.conn == conn && s.msg.has_ack()) out.push_back(s.msg.ack());
    }
    return out;
  }

  std::vector<TaskEvent> Events(TaskState state) const {
    std::vector<TaskEvent> out;
    for (auto& r : records_) {
      if (r.topic != core_->topics().Events()) continue;
      TaskEvent ev;
      EXPECT_TRUE(ev.ParseFromString(r.value));
      if (ev.state() == state) out.push_back(ev);
    }
    return out;
  }

  // The states of the events written so far, in order.
  std::vector<std::string> EventStates() const {
    std::vector<std::string> out;
    for (const auto& r : records_) {
      if (r.topic != core_->topics().Events()) continue;
      TaskEvent ev;
      EXPECT_TRUE(ev.ParseFromString(r.value));
      out.push_back(kwq::v1::TaskState_Name(ev.state()));
    }
    return out;
  }

  // A fresh core with `o`, folding stage events over `window` (zero: not
  // folding), and task "f1" assigned to worker 1 (one slot).
  Assignment AssignOne(absl::Duration window, SchedulerOptions o = {}) {
    o.event_fold_window = window;
    Reset(o, /*fold_events=*/window > absl::ZeroDuration());
    records_.clear();
    sends_.clear();
    cookies_.clear();
    Record(MakeTask("f1", 4), 0, 0);
    Connect(1, 1);
    auto a = TakeAssignments(1);
    EXPECT_EQ(a.size(), 1u);
    return a.empty() ? Assignment() : a[0];
  }

  // For a task with a 2 s timeout whose clock starts now: no error after 1 s,
  // one "timeout" error after 2.5 s.
  void ExpectTimeoutAfterTwoSeconds() {
    Tick(absl::Seconds(1));
    EXPECT_TRUE(Events(kwq::v1::ERROR).empty());
    Tick(absl::Milliseconds(1500));
    auto errors = Events(kwq::v1::ERROR);
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_EQ(errors[0].reason(), "timeout");
  }

  std::vector<Task> Requeued() const {
    std::vector<Task> out;
    for (auto& r : records_) {
      if (r.topic.find(".tasks.p") == std::string::npos) continue;
      Task t;
      EXPECT_TRUE(t.ParseFromString(r.value));
      out.push_back(t);
    }
    return out;
  }

  std::vector<kwq::v1::DeadLetter> DeadLetters() const {
    std::vector<kwq::v1::DeadLetter> out;
    for (auto& r : records_) {
      if (r.topic != core_->topics().Dlq()) continue;
      kwq::v1::DeadLetter dl;
      EXPECT_TRUE(dl.ParseFromString(r.value));
      out.push_back(dl);
    }
    return out;
  }

  FakeClock clock_;
  std::unique_ptr<SchedulerCore> core_;
  std::vector<Effects::Send> sends_;
  std::vector<Effects::OkAck> ok_acks_;  // applied completions (ack_batches)
  std::vector<OutRecord> records_;
  std::vector<uint64_t> cookies_;
  std::vector<Effects::Commit> commits_;
  std::vector<Effects::PausePriority> pauses_;
  std::vector<Effects::Close> closes_;
};

inline kwq::v1::Welcome WelcomeOf(const std::vector<Effects::Send>& sends,
                                  ConnId conn) {
  for (const auto& s : sends) {
    if (s.conn == conn && s.msg.has_welcome()) return s.msg.welcome();
  }
  ADD_FAILURE() << "no welcome for " << conn;
  return {};
}

// Attempt 1 of `task` under a lease of another (dead) instance.
// (Instances of a group share the lease key; the tests' core uses kGroupKey.)
inline kwq::v1::FencingToken ForeignToken(const std::string& task,
                                          const std::string& worker = "w5") {
  kwq::v1::FencingToken token;
  token.set_task_id(task);
  token.set_attempt(1);
  token.set_lease_id(
      LeaseSigner(kGroupKey).Issue("other-instance", 7, task, 1, worker));
  return token;
}

inline kwq::v1::Hello Reconnect(const std::string& worker, int slots,
                                const kwq::v1::FencingToken& token) {
  kwq::v1::Hello hello;
  hello.set_worker_id(worker);
  hello.set_slots(slots);
  hello.set_implicit_credits(true);
  *hello.add_in_flight() = token;
  return hello;
}

// A control record as the service writes it for `key` (see ControlState).
inline std::string Control(const std::string& key, bool set,
                           const std::string& who = "ops") {
  if (!set) return "";
  kwq::v1::ControlRecord r;
  const bool cancel = key.rfind("cancel/", 0) == 0;
  const std::string rest = key.substr(cancel ? 7 : 6);
  if (rest == "all") {
    r.mutable_scope()->set_all(true);
  } else if (rest.rfind("p", 0) == 0) {
    r.mutable_scope()->set_priority(std::stoi(rest.substr(1)));
  } else if (rest.rfind("job/", 0) == 0) {
    r.mutable_scope()->set_job_id(rest.substr(4));
  } else {
    r.mutable_scope()->set_task_id(rest.substr(5));
  }
  r.set_paused(!cancel);
  r.set_cancelled(cancel);
  r.set_requested_by(who);
  return r.SerializeAsString();
}

}  // namespace kwq::scheduler
