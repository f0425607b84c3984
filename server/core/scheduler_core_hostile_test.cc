// Issue 18: worker input is untrusted. Each test is a finding from outside
// (a crash, a forgery, an unbounded input) that must be refused or absorbed
// with the scheduler still serving everyone else.
#include <climits>
#include <string>

#include "gtest/gtest.h"
#include "server/api/limits.h"
#include "server/core/scheduler_core_fixture.h"

namespace kwq::scheduler {
namespace {

using kwq::v1::Task;

class HostileInputTest : public SchedulerCoreTest {
 protected:
  bool Closed(ConnId conn) const {
    for (const auto& c : closes_) {
      if (c.conn == conn) return true;
    }
    return false;
  }
  std::string CloseReason(ConnId conn) const {
    for (const auto& c : closes_) {
      if (c.conn == conn) return c.reason;
    }
    return "";
  }
  kwq::v1::Hello HelloOf(const std::string& id, int slots) {
    kwq::v1::Hello h;
    h.set_worker_id(id);
    h.set_slots(slots);
    h.set_implicit_credits(true);
    return h;
  }
};

// Was: `Check failed: busy == walked (1 vs. 0)` in BusySlots, from a hello
// whose in_flight token had an empty task_id.
TEST_F(HostileInputTest, AHelloWithAnEmptyInFlightTaskIdIsRefusedNotACrash) {
  kwq::v1::Hello h = HelloOf("w1", 2);
  h.add_in_flight()->set_lease_id("s1-1");
  core_->OnWorkerConnected(1, h);
  Collect();
  EXPECT_TRUE(Closed(1));
  EXPECT_NE(CloseReason(1).find("in_flight"), std::string::npos);
  // Still serving.
  Connect(2, 1);
  Record(MakeTask("t", 1), 0, 0);
  EXPECT_EQ(TakeAssignments(2).size(), 1u);
}

TEST_F(HostileInputTest, HellosWithOversizedListsAreRefused) {
  kwq::v1::Hello labels = HelloOf("w1", 1);
  for (int i = 0; i < 60000; ++i) labels.add_labels(absl::StrCat("l", i));
  core_->OnWorkerConnected(1, labels);
  kwq::v1::Hello keys = HelloOf("w2", 1);
  keys.add_affinity_keys(std::string(1 << 20, 'k'));
  core_->OnWorkerConnected(2, keys);
  kwq::v1::Hello claims = HelloOf("w3", 2);
  for (int i = 0; i < 200000; ++i) {
    *claims.add_in_flight() = ForeignToken(absl::StrCat("t", i), "w3");
  }
  core_->OnWorkerConnected(3, claims);
  Collect();
  EXPECT_TRUE(Closed(1));
  EXPECT_TRUE(Closed(2));
  EXPECT_TRUE(Closed(3));
  EXPECT_TRUE(core_->Workers().empty());
  EXPECT_EQ(core_->metrics().rejected_worker_messages, 3);
}

// Found by tests:scheduler_crash_test (session 8): a 4-slot worker held 165
// completions unacknowledged when its scheduler was killed (under load tens
// per slot wait for durability); the hello listing them was refused
// (cap 4 x slots + 64 = 80) and the worker could never reconnect.
TEST_F(HostileInputTest,
       AReconnectingWorkerMayListItsUnacknowledgedCompletions) {
  kwq::v1::Hello h = HelloOf("w3", 4);
  for (int i = 0; i < 600; ++i) {
    *h.add_in_flight() = ForeignToken(absl::StrCat("t", i), "w3");
  }
  core_->OnWorkerConnected(3, h);
  Collect();
  EXPECT_FALSE(Closed(3)) << CloseReason(3);
  ASSERT_EQ(core_->Workers().size(), 1u);
  // The cap still holds past min(16 x (slots + prefetch) + 1024, 10000).
  kwq::v1::Hello big = HelloOf("w4", 4);
  for (int i = 0; i < 1024 + 16 * 4 + 1; ++i) {
    *big.add_in_flight() = ForeignToken(absl::StrCat("u", i), "w4");
  }
  core_->OnWorkerConnected(4, big);
  Collect();
  EXPECT_TRUE(Closed(4));
}

// Was: a hello naming another worker's live lease adopted it; the thief's
// COMPLETED was acked and its result stored.
TEST_F(HostileInputTest, AWorkerCannotAdoptAnotherWorkersLease) {
  Connect(1, 1);
  Record(MakeTask("t", 1), 0, 0);
  auto got = TakeAssignments(1);
  ASSERT_EQ(got.size(), 1u);
  kwq::v1::Hello thief = HelloOf("thief", 1);
  *thief.add_in_flight() = got[0].token();  // the victim's token, copied
  core_->OnWorkerConnected(2, thief);
  Collect();
  EXPECT_EQ(WelcomeOf(sends_, 2).rejected_size(), 1);
  EXPECT_EQ(WelcomeOf(sends_, 2).adopted_size(), 0);
  Update(2, got[0].token(), kwq::v1::COMPLETED);
  MakeDurable();
  EXPECT_TRUE(Events(kwq::v1::COMPLETED).empty()) << "forged completion";
  Update(1, got[0].token(), kwq::v1::COMPLETED);  // the real worker
  MakeDurable();
  ASSERT_EQ(Events(kwq::v1::COMPLETED).size(), 1u);
  EXPECT_EQ(Events(kwq::v1::COMPLETED)[0].worker_id(), "w1");
  ASSERT_FALSE(Acks(1).empty());
  EXPECT_EQ(Acks(1).back().code(), 0);
}

// Was: a made-up lease id for a queued task was adopted (its required labels
// bypassed); a guessed sequential id is refused too.
TEST_F(HostileInputTest, AMadeUpLeaseForAQueuedTaskIsRefused) {
  Task gpu = MakeTask("gpu-task", 5);
  gpu.add_required_labels("gpu");
  Record(gpu, 0, 0);
  kwq::v1::Hello h = HelloOf("thief", 1);
  kwq::v1::FencingToken made_up;
  made_up.set_task_id("gpu-task");
  made_up.set_attempt(1);
  made_up.set_lease_id("s1-10017");
  *h.add_in_flight() = made_up;
  core_->OnWorkerConnected(1, h);
  Collect();
  EXPECT_EQ(WelcomeOf(sends_, 1).rejected_size(), 1);
  EXPECT_EQ(core_->leases(), 0u);
  EXPECT_EQ(core_->buffered(), 1u) << "still queued for a gpu worker";
  EXPECT_EQ(core_->metrics().forged_claims, 1);
  Connect(2, 1, {"gpu"});
  EXPECT_EQ(TakeAssignments(2).size(), 1u);
}

// Was: a claim for a task not submitted yet, with an early COMPLETED, was
// applied when the task arrived.
TEST_F(HostileInputTest, AForgedClaimWithAnEarlyCompletionIsNeverApplied) {
  kwq::v1::Hello h = HelloOf("thief", 1);
  kwq::v1::FencingToken forged = ForeignToken("future", "someone-else");
  *h.add_in_flight() = forged;
  core_->OnWorkerConnected(1, h);
  Collect();
  EXPECT_EQ(WelcomeOf(sends_, 1).claimed_size(), 0);
  Update(1, forged, kwq::v1::COMPLETED);
  Record(MakeTask("future", 1), 0, 0);
  MakeDurable();
  EXPECT_TRUE(Events(kwq::v1::COMPLETED).empty());
  EXPECT_EQ(core_->metrics().adopted, 0);
}

TEST_F(HostileInputTest, ASecondStreamOfAWorkerReplacesTheFirst) {
  Connect(1, 2);  // worker id "w1"
  Record(MakeTask("t", 1), 0, 0);
  auto got = TakeAssignments(1);
  ASSERT_EQ(got.size(), 1u);
  core_->OnWorkerConnected(7, Reconnect("w1", 2, got[0].token()));
  Collect();
  EXPECT_TRUE(Closed(1));
  EXPECT_EQ(core_->Workers().size(), 1u);
  EXPECT_EQ(WelcomeOf(sends_, 7).adopted_size(), 1);
  EXPECT_EQ(core_->metrics().streams_replaced, 1);
  Update(7, got[0].token(), kwq::v1::COMPLETED);
  MakeDurable();
  EXPECT_EQ(Events(kwq::v1::COMPLETED).size(), 1u);
}

// Was: credits of 2^31-1 overflowed a signed int to 0.
TEST_F(HostileInputTest, HugeCreditsSaturateAtTheWorkersCapacity) {
  kwq::v1::Hello h = HelloOf("w1", 4);
  h.set_implicit_credits(false);
  core_->OnWorkerConnected(1, h);
  Collect();
  for (int i = 0; i < 8; ++i) Record(MakeTask(absl::StrCat("t", i), 1), 0, i);
  EXPECT_EQ(TakeAssignments(1).size(), 4u);
  Credits(1, INT_MAX);
  Credits(1, INT_MAX);
  EXPECT_TRUE(TakeAssignments(1).empty()) << "more than its 4 slots";
  Credits(1, INT_MIN);
  EXPECT_EQ(core_->Workers()[0].credits, 0);
}

// Was: forged COMPLETEDs with 1 MiB ids were echoed back whole in acks to a
// client that never read them (339 MiB for 300 messages).
TEST_F(HostileInputTest, AnUpdateWithAHugeIdClosesTheStreamWithoutEchoingIt) {
  Connect(1, 1);
  kwq::v1::FencingToken big;
  big.set_task_id(std::string(1 << 20, 'x'));
  big.set_lease_id("s1-1");
  big.set_attempt(1);
  Update(1, big, kwq::v1::COMPLETED);
  EXPECT_TRUE(Closed(1));
  EXPECT_LT(CloseReason(1).size(), 300u);
  EXPECT_TRUE(Acks(1).empty());
}

TEST_F(HostileInputTest, AFloodOfHeartbeatsIsAbsorbed) {
  Connect(1, 1);
  kwq::v1::WorkerMessage hb;
  hb.mutable_heartbeat();
  for (int i = 0; i < 10000; ++i) Send(1, hb);
  EXPECT_EQ(core_->metrics().heartbeats, 10000);
  EXPECT_GE(core_->metrics().heartbeats_dropped, 9999);
  EXPECT_FALSE(Closed(1));
}

// Issue 17, point 1: an attempt the scheduler ends itself (timeout) gives the
// worker's slot back; the worker's late ERROR is stale and frees nothing.
TEST_F(HostileInputTest, ATimeoutGivesTheSlotBack) {
  kwq::v1::Hello h = HelloOf("w1", 1);
  core_->OnWorkerConnected(1, h);
  Collect();
  for (int i = 0; i < 3; ++i) {
    Task t = MakeTask(absl::StrCat("slow", i), 1);
    t.set_max_attempts(1);
    t.mutable_timeout()->set_seconds(2);
    Record(t, 0, i);
  }
  for (int i = 0; i < 3; ++i) {
    auto got = TakeAssignments(1);
    ASSERT_EQ(got.size(), 1u) << "round " << i << ": the slot was lost";
    Tick(absl::Seconds(3));                     // timed out
    Update(1, got[0].token(), kwq::v1::ERROR);  // stale: answered 9
    MakeDurable();
  }
  EXPECT_EQ(core_->metrics().timeouts, 3);
  EXPECT_EQ(core_->Workers()[0].credits, 1);
}

// The same for a worker that grants credits itself (it sends a credit after
// its ERROR, as the protocol asks: capped, so it gains nothing) and for a
// lease that expires (no heartbeat).
TEST_F(HostileInputTest, AnExplicitCreditWorkerGetsItsSlotBackToo) {
  kwq::v1::Hello h = HelloOf("w1", 1);
  h.set_implicit_credits(false);
  core_->OnWorkerConnected(1, h);
  Collect();
  Credits(1, 1);
  for (int i = 0; i < 3; ++i) {
    Task t = MakeTask(absl::StrCat("slow", i), 1);
    t.set_max_attempts(1);
    t.mutable_timeout()->set_seconds(2);
    Record(t, 0, i);
  }
  for (int i = 0; i < 3; ++i) {
    auto got = TakeAssignments(1);
    ASSERT_EQ(got.size(), 1u) << "round " << i << ": the slot was lost";
    Tick(absl::Seconds(3));
    Update(1, got[0].token(), kwq::v1::ERROR);
    Credits(1, 1);  // the worker frees its slot: capped at slots - busy
    MakeDurable();
    EXPECT_LE(core_->Workers()[0].credits, 1);
  }
  EXPECT_EQ(core_->metrics().timeouts, 3);
  EXPECT_EQ(core_->Workers()[0].credits, 1);
}

TEST_F(HostileInputTest, AnExpiredLeaseGivesTheSlotBack) {
  core_->OnWorkerConnected(1, HelloOf("w1", 1));
  Collect();
  Record(MakeTask("first", 1), 0, 0);
  Record(MakeTask("second", 1), 0, 1);
  auto got = TakeAssignments(1);
  ASSERT_EQ(got.size(), 1u);
  // No heartbeat for longer than the lease: the scheduler ends the attempt
  // and the slot takes the next task.
  Tick(SchedulerOptions().lease_period + absl::Seconds(1));
  MakeDurable();
  auto next = TakeAssignments(1);
  ASSERT_GE(next.size(), 1u) << "the slot stayed busy after the lease expired";
}

// Issue 17, point 4: a result over the limit is answered 3 (not retryable),
// not 0, and the task fails.
TEST_F(HostileInputTest, AnOversizedResultIsAnsweredInvalidArgument) {
  SchedulerOptions o;
  o.max_result_bytes = 1000;
  Reset(o);
  Connect(1, 1);
  Record(MakeTask("t", 1), 0, 0);
  auto got = TakeAssignments(1);
  ASSERT_EQ(got.size(), 1u);
  kwq::v1::WorkerMessage msg;
  *msg.mutable_update()->mutable_token() = got[0].token();
  msg.mutable_update()->set_state(kwq::v1::COMPLETED);
  msg.mutable_update()->set_result(std::string(2000, 'r'));
  Send(1, msg);
  MakeDurable();
  ASSERT_EQ(Acks(1).size(), 1u);
  EXPECT_EQ(Acks(1)[0].code(), 3);
  EXPECT_EQ(Events(kwq::v1::FAILED).size(), 1u);
}

// Was: an ERROR with 2 MiB of text made the dead-letter write fail and the
// task was re-queued past its budget.
TEST_F(HostileInputTest, AHugeErrorIsCutAndAFailedDeadLetterIsWrittenAgain) {
  Connect(1, 1);
  Task t = MakeTask("t", 1);
  t.set_max_attempts(1);
  Record(t, 0, 0);
  auto got = TakeAssignments(1);
  ASSERT_EQ(got.size(), 1u);
  kwq::v1::WorkerMessage msg;
  *msg.mutable_update()->mutable_token() = got[0].token();
  msg.mutable_update()->set_state(kwq::v1::ERROR);
  msg.mutable_update()->set_error(std::string(2 << 20, 'e'));
  Send(1, msg);
  ASSERT_EQ(DeadLetters().size(), 1u);
  EXPECT_LE(DeadLetters()[0].task().last_error().size(), api::kMaxErrorBytes);
  for (const auto& r : records_) {
    EXPECT_LE(r.value.size(), 1'000'000u) << r.topic;
  }
  FailPending();  // the broker said no once
  EXPECT_TRUE(Requeued().empty()) << "re-queued past its budget";
  EXPECT_EQ(core_->buffered(), 0u);
  EXPECT_EQ(DeadLetters().size(), 2u) << "written again";
  MakeDurable();
  ASSERT_FALSE(commits_.empty());
  EXPECT_EQ(commits_.back().next_offset, 1);
}

// Was: a 1,000,000-byte garbage record could not be dead-lettered and wedged
// its partition after every restart.
TEST_F(HostileInputTest, AHugeGarbageRecordIsDeadLetteredCutAndCommitted) {
  core_->OnTaskRecord({core_->topics().ForPriority(3), 0, 0},
                      std::string(1'000'000, '\xff'));
  Collect();
  ASSERT_EQ(DeadLetters().size(), 1u);
  for (const auto& r : records_) EXPECT_LE(r.value.size(), 1'000'000u);
  EXPECT_NE(DeadLetters()[0].reason().find("cut"), std::string::npos);
  MakeDurable();
  ASSERT_FALSE(commits_.empty());
  EXPECT_EQ(commits_.back().next_offset, 1);
}

// Was: garbage under `pause/all` lifted the pause (read as a tombstone), and a
// 2-byte value under cancel/job/J cancelled J.
TEST_F(HostileInputTest, GarbageControlRecordsChangeNothing) {
  core_->OnControlRecord("pause/all", Control("pause/all", true));
  Collect();
  core_->OnControlRecord("pause/all", "\xff\xfe garbage");
  core_->OnControlRecord("cancel/job/job", std::string("\x10\x01", 2));
  Collect();
  EXPECT_EQ(core_->metrics().bad_control_records, 2);
  Connect(1, 1);
  Record(MakeTask("t", 1), 0, 0);
  EXPECT_TRUE(TakeAssignments(1).empty()) << "the pause was lifted";
  core_->OnControlRecord("pause/all", "");  // a real resume
  Collect();
  auto got = TakeAssignments(1);
  ASSERT_EQ(got.size(), 1u) << "job was cancelled by garbage";
}

TEST_F(HostileInputTest, ALeaseKeyRecordTooShortIsIgnored) {
  SchedulerOptions o;
  Reset(o);  // the tests' key
  core_->OnControlRecord(kLeaseKeyRecord, "short");
  Collect();
  EXPECT_EQ(core_->metrics().bad_control_records, 1);
}

// Issue 17, point 2: the topic a record is in decides its priority.
TEST_F(HostileInputTest, TheTopicDecidesAPriorityNotTheField) {
  Record(MakeTask("p1-task", 1), 0, 0);
  Task unset = MakeTask("direct", 0);  // priority field unset
  core_->OnTaskRecord({core_->topics().ForPriority(9), 0, 0},
                      unset.SerializeAsString());
  Task liar = MakeTask("liar", 9);  // says 9, produced into p0
  core_->OnTaskRecord({core_->topics().ForPriority(0), 0, 0},
                      liar.SerializeAsString());
  Collect();
  Connect(1, 1);
  auto got = TakeAssignments(1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].task().id(), "direct");
  EXPECT_EQ(got[0].task().priority(), 9);
  Update(1, got[0].token(), kwq::v1::ERROR);  // its retry stays in p9
  MakeDurable();
  ASSERT_EQ(Requeued().size(), 1u);
  EXPECT_EQ(Requeued()[0].priority(), 9);
  bool to_p9 = false;
  for (const auto& r : records_)
    to_p9 |= r.topic == core_->topics().ForPriority(9);
  EXPECT_TRUE(to_p9);
  Credits(1, 1);
  got = TakeAssignments(1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].task().id(), "p1-task") << "p1 before the p0 record";
}

// Found by the worker_session fuzzer: two records of one task id queued before
// a worker connects were both assigned, the second lease silently dropped (a
// slot then stayed busy forever: BusySlots' check failed). Issue 17 point 3:
// the same id produced twice.
TEST_F(HostileInputTest, TwoRecordsOfOneIdQueuedTogetherRunOnce) {
  Record(MakeTask("twice", 3), 0, 0);
  Record(MakeTask("twice", 3), 1, 0);
  core_->OnWorkerConnected(1, HelloOf("w1", 4));  // implicit credits
  Collect();
  auto got = TakeAssignments(1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(core_->metrics().duplicate_records, 1);
  // Issue 17.8: `worker list`'s IN FLIGHT (the worker's tasks) and
  // kwq_in_flight_tasks (the leases) disagreed when the dropped second lease
  // left its task counted on the worker.
  EXPECT_EQ(core_->Workers()[0].in_flight, 1);
  EXPECT_EQ(core_->leases(), 1u);
  Update(1, got[0].token(), kwq::v1::COMPLETED);
  MakeDurable();
  EXPECT_EQ(core_->Workers()[0].credits, 4) << "every slot free again";
}

// Issue 17 (protocol): a completion sent again after its ack was lost is
// answered "already applied" (0), not "no longer yours" (9); an ERROR for an
// attempt the scheduler ended itself (a timeout) still gets 9.
TEST_F(HostileInputTest, ACompletionSentAgainIsAnsweredAlreadyApplied) {
  Record(MakeTask("again", 3), 0, 0);
  core_->OnWorkerConnected(1, HelloOf("w1", 2));
  Collect();
  auto got = TakeAssignments(1);
  ASSERT_EQ(got.size(), 1u);
  Update(1, got[0].token(), kwq::v1::COMPLETED);
  MakeDurable();
  ASSERT_EQ(Acks(1).size(), 1u);
  EXPECT_EQ(Acks(1)[0].code(), 0);
  Update(1, got[0].token(), kwq::v1::COMPLETED);
  ASSERT_EQ(Acks(1).size(), 2u);
  EXPECT_EQ(Acks(1)[1].code(), 0);
  EXPECT_NE(Acks(1)[1].message().find("already applied"), std::string::npos);
  EXPECT_EQ(core_->metrics().completed, 1);  // applied once
  // An ERROR for it is not a completion: stale.
  Update(1, got[0].token(), kwq::v1::ERROR);
  ASSERT_EQ(Acks(1).size(), 3u);
  EXPECT_EQ(Acks(1)[2].code(), 9);
}

// Issue 17 (DeadLetter): a record that parses but is invalid is dead-lettered
// as a task (to fix and resubmit) with a reason in a record's words; a
// tombstone says so; a non-retryable error's reason does not speak of used-up
// attempts.
TEST_F(HostileInputTest, DeadLettersSayWhatWasWrongInARecordsWords) {
  Task no_job = MakeTask("no-job", 4);
  no_job.clear_job_id();
  Record(no_job, 0, 0);
  core_->OnTaskRecord({core_->topics().ForPriority(4), 0, 1}, "");
  Collect();
  auto dls = DeadLetters();
  ASSERT_EQ(dls.size(), 2u);
  EXPECT_EQ(dls[0].task().id(), "no-job");
  EXPECT_TRUE(dls[0].raw_value().empty());
  EXPECT_NE(dls[0].reason().find("the record (id \"no-job\")"),
            std::string::npos)
      << dls[0].reason();
  EXPECT_EQ(dls[0].reason().find("tasks["), std::string::npos);
  EXPECT_NE(dls[1].reason().find("tombstone"), std::string::npos)
      << dls[1].reason();

  Task once = MakeTask("fatal", 4);
  once.set_max_attempts(3);
  Record(once, 1, 0);
  core_->OnWorkerConnected(1, HelloOf("w1", 1));
  Collect();
  auto got = TakeAssignments(1);
  ASSERT_EQ(got.size(), 1u);
  Update(1, got[0].token(), kwq::v1::ERROR, /*retryable=*/false);
  dls = DeadLetters();
  ASSERT_EQ(dls.size(), 3u);
  EXPECT_NE(dls[2].reason().find("non-retryable error on attempt 1"),
            std::string::npos)
      << dls[2].reason();
  EXPECT_EQ(dls[2].reason().find("used up"), std::string::npos);
}

}  // namespace
}  // namespace kwq::scheduler
