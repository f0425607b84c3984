// The scheduler core driven by hand: records, worker messages and a fake clock
// in; the effects (sends, produces, commits, pauses) out. No threads, no
// sleeps, no I/O.
#include "server/core/scheduler_core.h"

#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "server/core/scheduler_core_fixture.h"
#include "server/util/time_util.h"

namespace kwq::scheduler {
namespace {

TEST_F(SchedulerCoreTest, DispatchesHighestPriorityFirst) {
  Record(MakeTask("a1", 1), 0, 0);
  Record(MakeTask("a5", 5), 0, 0);
  Record(MakeTask("a9", 9), 0, 0);
  Record(MakeTask("b5", 5), 0, 1);
  Record(MakeTask("a3", 3), 0, 0);
  Connect(1, 5);
  auto got = TakeAssignments(1);
  ASSERT_EQ(got.size(), 5u);
  std::vector<std::string> order;
  for (auto& a : got) order.push_back(a.task().id());
  EXPECT_EQ(order, (std::vector<std::string>{"a9", "a5", "b5", "a3", "a1"}));
  EXPECT_EQ(core_->metrics().priority_inversions, 0);
  EXPECT_EQ(Events(kwq::v1::ALLOCATED).size(), 5u);
}

// A worker receives the task as the record holds it (its bytes passed through,
// unknown fields included), or, where the core completed the record (attempt,
// the topic's priority, a submit time), as the core completed it.
TEST_F(SchedulerCoreTest, AssignmentCarriesTheRecordsTaskOrTheCoresCompletion) {
  Task as_submitted = MakeTask("kept", 3);
  as_submitted.set_payload("payload");
  (*as_submitted.mutable_tags())["desk"] = "fx";
  std::string record = as_submitted.SerializeAsString();
  // Field 999, varint 7: a field of a newer Task this scheduler does not know.
  record += std::string("\xb8\x3e\x07", 3);
  core_->OnTaskRecord({core_->topics().ForPriority(3), 0, 0}, record);

  Task foreign;  // written straight into the p5 topic by another producer
  foreign.set_id("completed");
  foreign.set_job_id("job");
  foreign.set_priority(8);  // contradicts its topic
  core_->OnTaskRecord({core_->topics().ForPriority(5), 0, 0},
                      foreign.SerializeAsString());
  Collect();
  Connect(1, 2);
  auto got = TakeAssignments(1);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].task().id(), "completed");
  EXPECT_EQ(got[0].task().priority(), 5);
  EXPECT_EQ(got[0].task().attempt(), 1);
  EXPECT_TRUE(got[0].task().has_submit_time());
  EXPECT_EQ(got[1].task().SerializeAsString(), record);
  EXPECT_EQ(got[1].task().tags().at("desk"), "fx");
  EXPECT_EQ(got[1].token().task_id(), "kept");
  EXPECT_EQ(got[1].token().attempt(), 1);
}

TEST_F(SchedulerCoreTest, BatchOfWorkerMessagesActsLikeTheMessagesOneByOne) {
  Connect(1, 3);
  for (int i = 0; i < 3; ++i) Record(MakeTask(absl::StrCat("t", i), 4), 0, i);
  auto got = TakeAssignments(1);
  ASSERT_EQ(got.size(), 3u);
  kwq::v1::WorkerMessage batch;
  for (const auto& a : got) {
    for (TaskState st : {kwq::v1::RUNNING, kwq::v1::COMPLETED}) {
      auto* u = batch.mutable_batch()->add_messages()->mutable_update();
      *u->mutable_token() = a.token();
      u->set_state(st);
    }
  }
  Send(1, batch);
  EXPECT_EQ(Events(kwq::v1::RUNNING).size(), 3u);
  MakeDurable();
  EXPECT_EQ(Events(kwq::v1::COMPLETED).size(), 3u);
  EXPECT_EQ(Acks(1).size(), 3u);
  EXPECT_EQ(core_->leases(), 0u);

  // A batch may not hold a hello (or a batch): the stream is closed.
  kwq::v1::WorkerMessage bad;
  bad.mutable_batch()->add_messages()->mutable_hello()->set_worker_id("x");
  core_->OnWorkerMessage(1, bad);
  Effects e = core_->TakeEffects();
  ASSERT_EQ(e.closes.size(), 1u);
  EXPECT_EQ(e.closes[0].conn, 1u);
}

TEST_F(SchedulerCoreTest, NeverAssignsMoreThanCredits) {
  Connect(1, 2);
  for (int i = 0; i < 5; ++i) Record(MakeTask(absl::StrCat("t", i), 4), 0, i);
  auto first = TakeAssignments(1);
  EXPECT_EQ(first.size(), 2u);
  Credits(1,
          1);  // slots are full (2 in flight): capped at slots - in_flight = 0
  EXPECT_TRUE(TakeAssignments(1).empty());
  Update(1, first[0].token(), kwq::v1::COMPLETED);
  MakeDurable();
  Credits(1, 5);  // one slot free: only one more assignment
  EXPECT_EQ(TakeAssignments(1).size(), 1u);
  EXPECT_EQ(core_->buffered(), 2u);
}

TEST_F(SchedulerCoreTest, ImplicitCreditsFreeASlotPerCompletionNeverMore) {
  kwq::v1::Hello hello;
  hello.set_worker_id("w1");
  hello.set_slots(2);
  hello.set_implicit_credits(true);
  core_->OnWorkerConnected(1, hello);
  Collect();
  for (int i = 0; i < 6; ++i) Record(MakeTask(absl::StrCat("t", i), 4), 0, i);
  auto first = TakeAssignments(1);
  ASSERT_EQ(first.size(), 2u);
  // A completion frees its slot at once, while it is made durable.
  Update(1, first[0].token(), kwq::v1::COMPLETED);
  auto second = TakeAssignments(1);
  ASSERT_EQ(second.size(), 1u);
  // Not durable: the completion is sent again, and frees nothing twice.
  MakeDurable(/*ok=*/false);
  EXPECT_TRUE(TakeAssignments(1).empty());
  Update(1, first[0].token(), kwq::v1::COMPLETED);
  EXPECT_TRUE(TakeAssignments(1).empty()) << "both slots are busy";
  MakeDurable();
  EXPECT_TRUE(TakeAssignments(1).empty());
  // The other two complete: two more, never a third.
  Update(1, first[1].token(), kwq::v1::COMPLETED);
  Update(1, second[0].token(), kwq::v1::COMPLETED);
  EXPECT_EQ(TakeAssignments(1).size(), 2u);
  MakeDurable();
  EXPECT_TRUE(TakeAssignments(1).empty());
  EXPECT_EQ(core_->buffered(), 1u);
}

TEST_F(SchedulerCoreTest, LowerPriorityGoesOnlyWhereTheHigherCannotRun) {
  // p9 needs a gpu; the only worker has none: the p1 task may run, and that is
  // not an inversion (the worker could not run the p9 task).
  Task gpu = MakeTask("gpu", 9);
  gpu.add_required_labels("gpu");
  Record(gpu, 0, 0);
  Record(MakeTask("cpu", 1), 0, 0);
  Connect(1, 4);
  auto got = TakeAssignments(1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].task().id(), "cpu");
  Connect(2, 1, {"gpu"});
  got = TakeAssignments(2);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].task().id(), "gpu");
  EXPECT_EQ(core_->metrics().priority_inversions, 0);
  kwq::v1::TaskState state;
  std::string worker;
  EXPECT_FALSE(core_->Explain("gpu", &state, &worker).empty());
  EXPECT_EQ(state, kwq::v1::ALLOCATED);
  EXPECT_EQ(worker, "w2");
}

TEST_F(SchedulerCoreTest, ExplainsWhyAQueuedTaskWaits) {
  Task t = MakeTask("needs-fpga", 3);
  t.add_required_labels("fpga");
  Record(t, 0, 0);
  Connect(1, 1);
  kwq::v1::TaskState state;
  std::string worker;
  auto reasons = core_->Explain("needs-fpga", &state, &worker);
  EXPECT_EQ(state, kwq::v1::PENDING);
  ASSERT_FALSE(reasons.empty());
  EXPECT_NE(reasons[0].find("no connected worker has labels [fpga]"),
            std::string::npos);
  EXPECT_TRUE(core_->Explain("unknown", &state, &worker).empty());
}

TEST_F(SchedulerCoreTest, ATaskNoWorkerCanRunSaysWhyInOneEvent) {
  Task t = MakeTask("needs-fpga", 3);
  t.add_required_labels("fpga");
  Record(t, 0, 0);
  Record(MakeTask("plain", 3), 0, 1);
  Connect(1, 1);
  EXPECT_EQ(TakeAssignments(1).size(), 1u);
  Tick(absl::Seconds(1));
  Tick(absl::Seconds(1));  // reported once, not every scan
  std::vector<TaskEvent> notes;
  for (const auto& ev : Events(kwq::v1::PENDING)) {
    if (!ev.waiting().empty()) notes.push_back(ev);
  }
  ASSERT_EQ(notes.size(), 1u);
  EXPECT_EQ(notes[0].task_id(), "needs-fpga");
  EXPECT_EQ(notes[0].waiting(), "no connected worker has labels [fpga]");
  EXPECT_EQ(core_->metrics().unrunnable, 1);
  Connect(2, 1, {"fpga"});
  EXPECT_EQ(TakeAssignments(2).size(), 1u);
  EXPECT_EQ(core_->metrics().unrunnable, 0);
}

TEST_F(SchedulerCoreTest,
       AcksCompletionOnlyAfterItIsDurableAndCommitsThePrefix) {
  Connect(1, 3);
  for (int i = 0; i < 3; ++i)
    Record(MakeTask(absl::StrCat("t", i), 2), 0, 100 + i);
  auto got = TakeAssignments(1);
  ASSERT_EQ(got.size(), 3u);
  Update(1, got[2].token(), kwq::v1::COMPLETED);
  Update(1, got[1].token(), kwq::v1::COMPLETED);
  EXPECT_TRUE(Acks(1).empty());  // not durable yet
  MakeDurable();
  ASSERT_EQ(Acks(1).size(), 2u);
  EXPECT_EQ(Acks(1)[0].code(), 0);
  // Offset 100 is still running: the prefix stays at 100, and the decided 101
  // and
  // 102 ride in the commit metadata.
  ASSERT_FALSE(commits_.empty());
  EXPECT_EQ(commits_.back().next_offset, 100);
  EXPECT_EQ(commits_.back().metadata, "v1:1-2");
  Update(1, got[0].token(), kwq::v1::COMPLETED);
  MakeDurable();
  EXPECT_EQ(commits_.back().next_offset, 103);
  EXPECT_EQ(commits_.back().metadata, "");
  EXPECT_EQ(commits_.back().topic, "kwq.tasks.p2");
  EXPECT_EQ(core_->metrics().completed, 3);
  EXPECT_EQ(Events(kwq::v1::COMPLETED).size(), 3u);
}

TEST_F(SchedulerCoreTest,
       AckBatchWorkersHearAppliedCompletionsByLeaseAndTheRestAsUpdateAcks) {
  Connect(1, 3, {}, /*ack_batches=*/true);
  for (int i = 0; i < 3; ++i) Record(MakeTask(absl::StrCat("t", i), 1), 0, i);
  auto got = TakeAssignments(1);
  ASSERT_EQ(got.size(), 3u);
  Update(1, got[0].token(), kwq::v1::COMPLETED);
  Update(1, got[1].token(), kwq::v1::ERROR);  // retryable: a retry is decided
  EXPECT_TRUE(ok_acks_.empty()) << "acknowledged before it was durable";
  MakeDurable();
  std::set<std::string> leases;
  for (const auto& a : ok_acks_) {
    EXPECT_EQ(a.conn, 1u);
    leases.insert(a.lease_id);
  }
  EXPECT_EQ(ok_acks_.size(), 2u);
  EXPECT_EQ(leases, (std::set<std::string>{got[0].token().lease_id(),
                                           got[1].token().lease_id()}));
  EXPECT_TRUE(Acks(1).empty()) << "an applied completion also as UpdateAck";

  // Not durable: UNAVAILABLE, as an UpdateAck (the worker must send it again).
  Update(1, got[2].token(), kwq::v1::COMPLETED);
  MakeDurable(/*ok=*/false);
  ASSERT_EQ(Acks(1).size(), 1u);
  EXPECT_EQ(Acks(1)[0].code(), 14);
  // A completion sent again after its ack was lost: OK with a message, as an
  // UpdateAck.
  Update(1, got[0].token(), kwq::v1::COMPLETED);
  ASSERT_EQ(Acks(1).size(), 2u);
  EXPECT_EQ(Acks(1)[1].code(), 0);
  EXPECT_FALSE(Acks(1)[1].message().empty());
  // A lease that is not this worker's: FAILED_PRECONDITION, as an UpdateAck.
  kwq::v1::FencingToken forged = got[2].token();
  forged.set_lease_id(forged.lease_id() + "x");
  Update(1, forged, kwq::v1::COMPLETED);
  ASSERT_EQ(Acks(1).size(), 3u);
  EXPECT_EQ(Acks(1)[2].code(), 9);
  EXPECT_EQ(ok_acks_.size(), 2u);
}

TEST_F(SchedulerCoreTest,
       ACompletionThatIsNotDurableIsRefusedAndCanBeSentAgain) {
  Connect(1, 1);
  Record(MakeTask("t", 0), 0, 0);
  auto got = TakeAssignments(1);
  Update(1, got[0].token(), kwq::v1::COMPLETED);
  MakeDurable(/*ok=*/false);
  ASSERT_EQ(Acks(1).size(), 1u);
  EXPECT_EQ(Acks(1)[0].code(), 14);
  EXPECT_TRUE(commits_.empty());
  Update(1, got[0].token(), kwq::v1::COMPLETED);
  MakeDurable();
  ASSERT_EQ(Acks(1).size(), 2u);
  EXPECT_EQ(Acks(1)[1].code(), 0);
  ASSERT_EQ(commits_.size(), 1u);
}

TEST_F(SchedulerCoreTest,
       HeartbeatsRenewLeasesAndExpiryRetriesWithTheNextAttempt) {
  SchedulerOptions o;
  o.lease_period = absl::Seconds(10);
  Reset(o);
  Connect(1, 1);
  Record(MakeTask("t", 0), 0, 7);
  auto got = TakeAssignments(1);
  ASSERT_EQ(got.size(), 1u);
  Tick(absl::Seconds(8));
  kwq::v1::WorkerMessage hb;
  hb.mutable_heartbeat();
  Send(1, hb);
  Tick(absl::Seconds(8));  // 16 s after assignment, 8 s after the heartbeat
  EXPECT_TRUE(Events(kwq::v1::ERROR).empty());
  Tick(absl::Seconds(3));
  auto errors = Events(kwq::v1::ERROR);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].reason(), "lease_expired");
  EXPECT_EQ(errors[0].attempt(), 1);
  auto requeued = Requeued();
  ASSERT_EQ(requeued.size(), 1u);
  EXPECT_EQ(requeued[0].attempt(), 2);
  EXPECT_EQ(requeued[0].infra_failures(), 1);
  EXPECT_TRUE(requeued[0].has_not_before());
  // The worker is told to stop, and its late completion is fenced off.
  bool cancelled = false;
  for (auto& s : sends_) cancelled |= s.msg.has_cancel();
  EXPECT_TRUE(cancelled);
  MakeDurable();
  ASSERT_EQ(commits_.size(),
            1u);  // the retry record is durable: the old offset is done
  EXPECT_EQ(commits_[0].next_offset, 8);
  Update(1, got[0].token(), kwq::v1::COMPLETED);
  EXPECT_EQ(core_->metrics().stale_updates, 1);
  ASSERT_FALSE(Acks(1).empty());
  EXPECT_EQ(Acks(1).back().code(), 9);
  EXPECT_TRUE(Events(kwq::v1::COMPLETED).empty());
}

TEST_F(SchedulerCoreTest,
       FencingRejectsUpdatesWithAnotherLeaseOrFromAnotherWorker) {
  Connect(1, 1);
  Connect(2, 1);
  Record(MakeTask("t", 0), 0, 0);
  auto got = TakeAssignments(1);
  if (got.empty()) got = TakeAssignments(2);
  ASSERT_EQ(got.size(), 1u);
  auto token = got[0].token();
  auto forged = token;
  forged.set_lease_id("s1-999");
  const ConnId holder = core_->Workers()[0].in_flight == 1 ? 1 : 2;
  const ConnId other = holder == 1 ? 2 : 1;
  Update(holder, forged, kwq::v1::COMPLETED);
  Update(other, token, kwq::v1::COMPLETED);
  EXPECT_EQ(core_->metrics().stale_updates, 2);
  EXPECT_TRUE(Events(kwq::v1::COMPLETED).empty());
  Update(holder, token, kwq::v1::COMPLETED);
  MakeDurable();
  EXPECT_EQ(Events(kwq::v1::COMPLETED).size(), 1u);
}

TEST_F(SchedulerCoreTest, TaskErrorBudgetEndsInFailedAndTheDeadLetterTopic) {
  SchedulerOptions o;
  o.max_task_errors = 3;
  Reset(o);
  Connect(1, 1);
  Task t = MakeTask("poison", 4);
  int64_t offset = 0;
  for (int attempt = 1; attempt <= 3; ++attempt) {
    Tick(absl::Minutes(1));  // past any backoff
    Record(t, 0, offset++);
    auto got = TakeAssignments(1);
    ASSERT_EQ(got.size(), 1u) << "attempt " << attempt;
    EXPECT_EQ(got[0].token().attempt(), attempt);
    Update(1, got[0].token(), kwq::v1::ERROR, /*retryable=*/true);
    MakeDurable();
    Credits(1, 1);
    if (attempt < 3) {
      auto requeued = Requeued();
      ASSERT_EQ(requeued.size(), static_cast<size_t>(attempt));
      t = requeued
              .back();  // the retry record, as the consumer would read it back
      EXPECT_EQ(t.task_errors(), attempt);
    }
  }
  auto failed = Events(kwq::v1::FAILED);
  ASSERT_EQ(failed.size(), 1u);
  EXPECT_EQ(failed[0].attempt(), 3);
  auto dlq = DeadLetters();
  ASSERT_EQ(dlq.size(), 1u);
  EXPECT_EQ(dlq[0].task().id(), "poison");
  EXPECT_EQ(dlq[0].task().last_error(), "boom");
  EXPECT_EQ(core_->metrics().dead_lettered, 1);
  EXPECT_EQ(Events(kwq::v1::ERROR).size(), 3u);
  ASSERT_FALSE(commits_.empty());
  EXPECT_EQ(commits_.back().next_offset, 3);
}

TEST_F(SchedulerCoreTest, AFatalErrorFailsAtOnce) {
  Connect(1, 1);
  Record(MakeTask("t", 0), 0, 0);
  auto got = TakeAssignments(1);
  Update(1, got[0].token(), kwq::v1::ERROR, /*retryable=*/false);
  MakeDurable();
  EXPECT_EQ(Events(kwq::v1::FAILED).size(), 1u);
  EXPECT_TRUE(Requeued().empty());
  EXPECT_EQ(DeadLetters().size(), 1u);
  ASSERT_EQ(Acks(1).size(), 1u);
  EXPECT_EQ(Acks(1)[0].code(), 0);
}

TEST_F(SchedulerCoreTest, InfrastructureBudgetIsSeparateFromTaskErrors) {
  SchedulerOptions o;
  o.max_infra_failures = 2;
  o.max_task_errors = 5;
  Reset(o);
  Task t = MakeTask("t", 0);
  t.set_task_errors(
      4);  // four task errors already: the infra budget still counts alone
  for (int lost = 1; lost <= 2; ++lost) {
    Tick(absl::Minutes(1));
    Record(t, 0, lost);
    Connect(static_cast<ConnId>(lost), 1);
    ASSERT_EQ(TakeAssignments(static_cast<ConnId>(lost)).size(), 1u);
    core_->OnWorkerDisconnected(static_cast<ConnId>(lost), "stream broken");
    Collect();
    EXPECT_TRUE(Events(kwq::v1::ERROR).size() == static_cast<size_t>(lost - 1))
        << "the lease waits for a reconnect until its deadline";
    Tick(absl::Seconds(11));
    MakeDurable();
    if (lost == 1) {
      ASSERT_EQ(Requeued().size(), 1u);
      t = Requeued().back();
      EXPECT_EQ(t.infra_failures(), 1);
      EXPECT_EQ(t.task_errors(), 4);
    }
  }
  auto errors = Events(kwq::v1::ERROR);
  ASSERT_EQ(errors.size(), 2u);
  EXPECT_EQ(errors[0].reason(), "worker_lost");
  EXPECT_EQ(Events(kwq::v1::FAILED).size(), 1u);
  EXPECT_EQ(DeadLetters().size(), 1u);
}

TEST_F(SchedulerCoreTest, MaxAttemptsOfTheTaskOverridesTheDefaultBudget) {
  Connect(1, 1);
  Task t = MakeTask("once", 0);
  t.set_max_attempts(1);
  Record(t, 0, 0);
  auto got = TakeAssignments(1);
  Update(1, got[0].token(), kwq::v1::ERROR, /*retryable=*/true);
  MakeDurable();
  EXPECT_EQ(Events(kwq::v1::FAILED).size(), 1u);
}

TEST_F(SchedulerCoreTest, BadRecordsGoToTheDeadLetterTopicAndDispatchGoesOn) {
  core_->OnTaskRecord({"kwq.tasks.p3", 0, 0}, "\xff\xff not a task");
  Collect();
  Task no_job = MakeTask("x", 3);
  no_job.clear_job_id();
  Record(no_job, 0, 1);
  Record(MakeTask("good", 3), 0, 2);
  Connect(1, 1);
  auto got = TakeAssignments(1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].task().id(), "good");
  auto dlq = DeadLetters();
  ASSERT_EQ(dlq.size(), 2u);
  EXPECT_EQ(dlq[0].reason(), "record value is not a kwq.v1.Task");
  EXPECT_EQ(dlq[0].source_offset(), 0);
  EXPECT_NE(dlq[1].reason().find("job_id is required"), std::string::npos);
  EXPECT_EQ(core_->metrics().bad_records, 2);
  MakeDurable();
  ASSERT_FALSE(commits_.empty());
  EXPECT_EQ(commits_.back().next_offset,
            2);  // the good task (offset 2) still runs
}

TEST_F(SchedulerCoreTest, BackpressurePausesAPriorityAndResumesItWhenDrained) {
  SchedulerOptions o;
  o.max_buffered_per_priority = 4;
  Reset(o);
  for (int i = 0; i < 4; ++i) Record(MakeTask(absl::StrCat("t", i), 6), 0, i);
  ASSERT_EQ(pauses_.size(), 1u);
  EXPECT_EQ(pauses_[0].priority, 6);
  EXPECT_TRUE(pauses_[0].paused);
  Connect(1, 3);
  ASSERT_EQ(pauses_.size(), 2u);
  EXPECT_FALSE(pauses_[1].paused);
  EXPECT_EQ(core_->buffered(), 1u);
}

TEST_F(SchedulerCoreTest,
       RevokedPartitionsAreDroppedAndTheirDecisionsNotCommitted) {
  Record(MakeTask("a", 1), 0, 0);
  Record(MakeTask("b", 1), 1, 0);
  Connect(1, 1);
  auto got = TakeAssignments(1);
  ASSERT_EQ(got.size(), 1u);
  const std::string running = got[0].task().id();
  core_->OnPartitionsRevoked({{"kwq.tasks.p1", 0}, {"kwq.tasks.p1", 1}});
  Collect();
  EXPECT_EQ(core_->buffered(), 0u);
  Update(1, got[0].token(),
         kwq::v1::COMPLETED);  // still accepted: the work is done
  MakeDurable();
  EXPECT_EQ(Events(kwq::v1::COMPLETED).size(), 1u);
  EXPECT_TRUE(
      commits_.empty());  // but the partition is not ours to commit any more
}

TEST_F(SchedulerCoreTest, ReconnectingWorkerKeepsItsLeasesWhenAdopted) {
  Connect(1, 2);
  Record(MakeTask("t", 0), 0, 0);
  auto got = TakeAssignments(1);
  ASSERT_EQ(got.size(), 1u);
  // The same process reconnects on a new stream before the old one is noticed
  // as gone.
  kwq::v1::Hello hello;
  hello.set_worker_id("w1");
  hello.set_slots(2);
  *hello.add_in_flight() = got[0].token();
  core_->OnWorkerConnected(2, hello);
  Collect();
  core_->OnWorkerDisconnected(1, "old stream closed");
  Collect();
  EXPECT_TRUE(Events(kwq::v1::ERROR).empty());
  Update(2, got[0].token(), kwq::v1::COMPLETED);
  MakeDurable();
  EXPECT_EQ(Events(kwq::v1::COMPLETED).size(), 1u);
  EXPECT_EQ(core_->metrics().dispatched, 1);
}

TEST_F(SchedulerCoreTest,
       LeaseWaitsForItsWorkerToReconnectAfterTheStreamBroke) {
  Connect(1, 2);
  Record(MakeTask("t", 0), 0, 0);
  auto got = TakeAssignments(1);
  ASSERT_EQ(got.size(), 1u);
  core_->OnWorkerDisconnected(1, "stream broken");
  Collect();
  TaskState state;
  std::string worker;
  auto why = core_->Explain("t", &state, &worker);
  ASSERT_FALSE(why.empty());
  EXPECT_NE(why[0].find("waiting for it to reconnect"), std::string::npos);
  Tick(absl::Seconds(3));
  core_->OnWorkerConnected(2, Reconnect("w1", 2, got[0].token()));
  Collect();
  EXPECT_EQ(WelcomeOf(sends_, 2).adopted_size(), 1);
  Update(2, got[0].token(), kwq::v1::COMPLETED);
  MakeDurable();
  EXPECT_EQ(Events(kwq::v1::COMPLETED).size(), 1u);
  EXPECT_TRUE(Events(kwq::v1::ERROR).empty());
  EXPECT_EQ(core_->metrics().dispatched, 1);
  EXPECT_EQ(core_->metrics().adopted, 1);
}

TEST_F(SchedulerCoreTest, LeaseOfAWorkerThatNeverReconnectsEndsAsWorkerLost) {
  Connect(1, 1);
  Record(MakeTask("t", 0), 0, 0);
  ASSERT_EQ(TakeAssignments(1).size(), 1u);
  core_->OnWorkerDisconnected(1, "stream broken");
  Collect();
  Tick(absl::Seconds(11));
  MakeDurable();
  auto errors = Events(kwq::v1::ERROR);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].reason(), "worker_lost");
  ASSERT_EQ(Requeued().size(), 1u);
  EXPECT_EQ(Requeued()[0].attempt(), 2);
}

// Failover: the worker ran attempt 1 under another instance's lease; it
// reconnects here before the dead instance's partition (and so the record)
// is assigned here.
TEST_F(SchedulerCoreTest, AdoptsAClaimedTaskWhenItsRecordArrivesLater) {
  const kwq::v1::FencingToken token = ForeignToken("t");
  core_->OnWorkerConnected(5, Reconnect("w5", 2, token));
  Collect();
  EXPECT_EQ(WelcomeOf(sends_, 5).claimed_size(), 1);
  Record(MakeTask("t", 0), 0, 0);
  EXPECT_TRUE(TakeAssignments(5).empty()) << "it runs there already";
  EXPECT_EQ(core_->leases(), 1u);
  EXPECT_EQ(core_->metrics().adopted, 1);
  EXPECT_EQ(core_->buffered(), 0u);
  // The other slot is free; the claimed one was busy all along.
  Record(MakeTask("u", 0), 0, 1);
  Record(MakeTask("v", 0), 0, 2);
  EXPECT_EQ(TakeAssignments(5).size(), 1u);
  Update(5, token, kwq::v1::COMPLETED);
  MakeDurable();
  auto done = Events(kwq::v1::COMPLETED);
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].task_id(), "t");
  ASSERT_EQ(Acks(5).size(), 1u);
  EXPECT_EQ(Acks(5)[0].code(), 0);
}

TEST_F(SchedulerCoreTest, ACompletionBeforeTheRecordIsAppliedOnAdoption) {
  const kwq::v1::FencingToken token = ForeignToken("t");
  core_->OnWorkerConnected(5, Reconnect("w5", 1, token));
  Collect();
  Update(5, token, kwq::v1::COMPLETED);
  EXPECT_TRUE(Acks(5).empty()) << "held until the record decides";
  EXPECT_TRUE(Events(kwq::v1::COMPLETED).empty());
  Record(MakeTask("t", 0), 0, 0);
  MakeDurable();
  EXPECT_EQ(Events(kwq::v1::COMPLETED).size(), 1u);
  ASSERT_EQ(Acks(5).size(), 1u);
  EXPECT_EQ(Acks(5)[0].code(), 0);
  EXPECT_EQ(core_->metrics().dispatched, 0);
  ASSERT_EQ(commits_.size(), 1u);
  EXPECT_EQ(commits_[0].next_offset, 1);
}

TEST_F(SchedulerCoreTest, AClaimWithoutItsRecordExpiresAndTheWorkerCancels) {
  const kwq::v1::FencingToken token = ForeignToken("t");
  core_->OnWorkerConnected(5, Reconnect("w5", 1, token));
  Collect();
  Record(MakeTask("u", 0), 0, 0);
  EXPECT_TRUE(TakeAssignments(5).empty()) << "its one slot is claimed";
  Tick(absl::Seconds(31));
  bool cancelled = false;
  for (const auto& send : sends_) {
    cancelled |= send.conn == 5 && send.msg.has_cancel() &&
                 send.msg.cancel().token().task_id() == "t";
  }
  EXPECT_TRUE(cancelled);
  EXPECT_EQ(core_->metrics().adoption_expired, 1);
  EXPECT_EQ(TakeAssignments(5).size(), 1u) << "the slot is free again";
}

TEST_F(SchedulerCoreTest, AdoptsARunningTaskWhoseRecordIsQueuedHere) {
  Record(MakeTask("t", 3), 0, 0);  // no worker yet: queued
  const kwq::v1::FencingToken token = ForeignToken("t");
  core_->OnWorkerConnected(5, Reconnect("w5", 1, token));
  Collect();
  EXPECT_EQ(WelcomeOf(sends_, 5).adopted_size(), 1);
  EXPECT_TRUE(TakeAssignments(5).empty());
  EXPECT_EQ(core_->buffered(), 0u);
  EXPECT_EQ(core_->leases(), 1u);
}

// Under load a session time-out revokes the partitions and gives them back to
// the same instance, with the commits of the meantime lost: what it had
// decided is skipped, not run again.
TEST_F(SchedulerCoreTest, PartitionsGivenBackAfterARevokeDoNotRunDecidedTasks) {
  const std::string topic = core_->topics().ForPriority(4);
  core_->OnPartitionsAssigned({{topic, 0, -1001, ""}});
  Connect(1, 20);
  for (int i = 0; i < 10; ++i) Record(MakeTask(absl::StrCat("t", i), 4), 0, i);
  auto got = TakeAssignments(1);
  ASSERT_EQ(got.size(), 10u);
  for (size_t i = 0; i < got.size(); ++i) {
    if (i == 8) continue;  // one still running
    Update(1, got[i].token(), kwq::v1::COMPLETED);
  }
  MakeDurable();
  core_->OnPartitionsRevoked({{topic, 0}});
  Collect();
  // Back, with nothing committed (the commits failed meanwhile).
  core_->OnPartitionsAssigned({{topic, 0, -1001, ""}});
  for (int i = 0; i < 10; ++i) Record(MakeTask(absl::StrCat("t", i), 4), 0, i);
  auto again = TakeAssignments(1);
  EXPECT_TRUE(again.empty()) << again.size() << " ran again, e.g. "
                             << (again.empty() ? "" : again[0].task().id());
  EXPECT_EQ(core_->metrics().skipped_decided, 9);
  EXPECT_EQ(core_->metrics().dispatched, 10);
}

// Issue 16, point 1: a rebalance takes the partition away and gives it back
// while its task runs here. The record comes again; deciding it at once would
// commit past a task still running, and a kill -9 of this instance would then
// lose it (nobody reads the record again). It stays open until the attempt
// ends.
TEST_F(SchedulerCoreTest,
       ARunningTasksRecordGivenBackIsNotCommittedUntilItEnds) {
  const std::string topic = core_->topics().ForPriority(4);
  core_->OnPartitionsAssigned({{topic, 0, -1, ""}});
  Connect(1, 4);
  Record(MakeTask("long", 4), 0, 0);
  Record(MakeTask("short", 4), 0, 1);
  auto got = TakeAssignments(1);
  ASSERT_EQ(got.size(), 2u);
  core_->OnPartitionsRevoked({{topic, 0}});
  core_->OnPartitionsAssigned({{topic, 0, 0, ""}});  // nothing committed
  Record(MakeTask("long", 4), 0, 0);
  Record(MakeTask("short", 4), 0, 1);
  EXPECT_TRUE(TakeAssignments(1).empty());  // both still run here
  EXPECT_EQ(core_->metrics().redelivered_running, 2);
  for (const auto& c : commits_) {
    EXPECT_LE(c.next_offset, 0) << "committed past a running task";
  }
  const auto& short_token =
      got[0].task().id() == "short" ? got[0].token() : got[1].token();
  const auto& long_token =
      got[0].task().id() == "long" ? got[0].token() : got[1].token();
  Update(1, short_token, kwq::v1::COMPLETED);
  MakeDurable();
  ASSERT_FALSE(commits_.empty());
  EXPECT_EQ(commits_.back().next_offset, 0);  // "long" holds the prefix
  EXPECT_EQ(commits_.back().metadata, "v1:1");
  Update(1, long_token, kwq::v1::COMPLETED);
  MakeDurable();
  EXPECT_EQ(commits_.back().next_offset, 2);
}

// Issue 16, point 2: a completion made durable while its partition was away is
// not run again when the partition comes back to this instance.
TEST_F(SchedulerCoreTest, ACompletionDurableWhileThePartitionWasAwayIsKept) {
  const std::string topic = core_->topics().ForPriority(4);
  core_->OnPartitionsAssigned({{topic, 0, -1, ""}});
  Connect(1, 4);
  Record(MakeTask("t", 4), 0, 0);
  auto got = TakeAssignments(1);
  ASSERT_EQ(got.size(), 1u);
  Update(1, got[0].token(), kwq::v1::COMPLETED);
  core_->OnPartitionsRevoked({{topic, 0}});
  MakeDurable();  // durable while the partition is away
  EXPECT_EQ(core_->metrics().completed, 1);
  core_->OnPartitionsAssigned({{topic, 0, 0, ""}});
  Record(MakeTask("t", 4), 0, 0);
  EXPECT_TRUE(TakeAssignments(1).empty()) << "a durable completion ran again";
  EXPECT_EQ(core_->metrics().skipped_decided, 1);
  ASSERT_FALSE(commits_.empty());
  EXPECT_EQ(commits_.back().next_offset, 1);
}

// A record that comes again while the retry of its failed attempt is being
// handed off is left to that hand-off (not queued a second time).
TEST_F(SchedulerCoreTest, ARecordGivenBackWhileItsRetryIsInFlightIsNotQueued) {
  const std::string topic = core_->topics().ForPriority(4);
  core_->OnPartitionsAssigned({{topic, 0, -1, ""}});
  Connect(1, 4);
  Record(MakeTask("t", 4), 0, 0);
  auto got = TakeAssignments(1);
  ASSERT_EQ(got.size(), 1u);
  Update(1, got[0].token(), kwq::v1::ERROR);  // retry record on its way
  core_->OnPartitionsRevoked({{topic, 0}});
  core_->OnPartitionsAssigned({{topic, 0, 0, ""}});
  Record(MakeTask("t", 4), 0, 0);
  EXPECT_EQ(core_->buffered(), 0u);
  EXPECT_TRUE(TakeAssignments(1).empty());
  MakeDurable();
  ASSERT_FALSE(commits_.empty());
  EXPECT_EQ(commits_.back().next_offset, 1);
}

TEST_F(SchedulerCoreTest, ARewoundConsumerDoesNotQueueATaskTwice) {
  Record(MakeTask("a", 1), 0, 0);
  Record(MakeTask("b", 1), 0, 1);
  Record(MakeTask("a", 1), 0, 0);  // the consumer re-fetched from offset 0
  EXPECT_EQ(core_->buffered(), 2u);
  EXPECT_EQ(core_->metrics().redelivered_records, 1);
  Connect(1, 4);
  EXPECT_EQ(TakeAssignments(1).size(), 2u);
}

TEST_F(SchedulerCoreTest, RejectsABadHello) {
  kwq::v1::Hello hello;
  hello.set_worker_id("bad id");
  hello.set_slots(1);
  core_->OnWorkerConnected(1, hello);
  Effects e = core_->TakeEffects();
  ASSERT_EQ(e.closes.size(), 1u);
  EXPECT_NE(e.closes[0].reason.find("worker_id"), std::string::npos);
  hello.set_worker_id("w1");
  hello.set_prefetch(4097);
  core_->OnWorkerConnected(2, hello);
  e = core_->TakeEffects();
  ASSERT_EQ(e.closes.size(), 1u);
  EXPECT_NE(e.closes[0].reason.find("prefetch"), std::string::npos);
}

TEST_F(SchedulerCoreTest, ProgressReportsRenewTheLeaseWithoutMoreEvents) {
  SchedulerOptions o;
  o.lease_period = absl::Seconds(10);
  Reset(o);
  Record(MakeTask("p1", 4), 0, 0);
  Connect(1, 1);
  auto a = TakeAssignments(1);
  ASSERT_EQ(a.size(), 1u);
  Update(1, a[0].token(), kwq::v1::RUNNING);
  for (int i = 1; i <= 3; ++i) {
    Tick(absl::Seconds(8));  // under the lease period each time, 24 s in all
    kwq::v1::WorkerMessage msg;
    *msg.mutable_update()->mutable_token() = a[0].token();
    msg.mutable_update()->set_state(kwq::v1::RUNNING);
    msg.mutable_update()->set_progress(0.25 * i);
    Send(1, msg);
  }
  EXPECT_EQ(Events(kwq::v1::RUNNING).size(), 1u);
  EXPECT_TRUE(Events(kwq::v1::ERROR).empty())
      << "the lease expired despite progress";
  kwq::v1::TaskState state;
  std::string worker;
  auto why = core_->Explain("p1", &state, &worker);
  EXPECT_EQ(state, kwq::v1::RUNNING);
  ASSERT_FALSE(why.empty());
  EXPECT_NE(why[0].find("75% done"), std::string::npos) << why[0];
}

TEST_F(SchedulerCoreTest, AShortAttemptIsOneCompletedEventCarryingItsStages) {
  const Assignment a = AssignOne(absl::Milliseconds(20));
  const absl::Time allocated = clock_.Now();
  Tick(absl::Milliseconds(5));
  Update(1, a.token(), kwq::v1::RUNNING);
  const absl::Time running = clock_.Now();
  Tick(absl::Milliseconds(5));
  EXPECT_TRUE(EventStates().empty()) << "the stages are held inside the window";
  Update(1, a.token(), kwq::v1::COMPLETED);
  MakeDurable();
  Tick(absl::Milliseconds(50));  // past the window: nothing more is written
  EXPECT_EQ(EventStates(), std::vector<std::string>{"COMPLETED"});
  const auto done = Events(kwq::v1::COMPLETED);
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(FromProto(done[0].allocated_time()), allocated);
  EXPECT_EQ(FromProto(done[0].running_time()), running);
  EXPECT_EQ(FromProto(done[0].time()), clock_.Now() - absl::Milliseconds(50));
  EXPECT_EQ(done[0].worker_id(), "w1");
  EXPECT_EQ(core_->metrics().events_folded, 2);
  EXPECT_EQ(Acks(1).size(), 1u);
}

TEST_F(SchedulerCoreTest, ACompletedAttemptsRunTimeIsInTheHistogram) {
  const Assignment a = AssignOne(absl::ZeroDuration());
  Update(1, a.token(), kwq::v1::RUNNING);
  Tick(absl::Milliseconds(30));
  Update(1, a.token(), kwq::v1::COMPLETED);
  MakeDurable();
  const SchedulerMetrics m = core_->metrics();
  EXPECT_EQ(m.run_time_count, 1);
  EXPECT_NEAR(m.run_time_sum_seconds, 0.03, 1e-6);
  const auto& bounds = SchedulerMetrics::kStartLatencyBounds;
  for (size_t b = 0; b < bounds.size(); ++b) {
    EXPECT_EQ(m.run_time_buckets[b], bounds[b] >= 0.03 ? 1 : 0) << bounds[b];
  }
}

TEST_F(SchedulerCoreTest, ACompletionWithoutRunningStartedWhenItArrived) {
  for (const bool fold : {true, false}) {
    SCOPED_TRACE(fold ? "folding" : "one event per stage");
    const Assignment a = AssignOne(absl::Milliseconds(fold ? 20 : 0));
    const absl::Time allocated = clock_.Now();
    Tick(absl::Milliseconds(fold ? 5 : 30));
    Update(1, a.token(), kwq::v1::COMPLETED);  // no RUNNING before it
    MakeDurable();
    Tick(absl::Milliseconds(50));
    const auto done = Events(kwq::v1::COMPLETED);
    ASSERT_EQ(done.size(), 1u);
    EXPECT_EQ(FromProto(done[0].running_time()), FromProto(done[0].time()));
    EXPECT_EQ(core_->metrics().start_latency_count, 1);
    if (fold) {
      EXPECT_EQ(FromProto(done[0].allocated_time()), allocated);
      EXPECT_EQ(EventStates(), std::vector<std::string>{"COMPLETED"});
    } else {
      EXPECT_FALSE(done[0].has_allocated_time());
      EXPECT_EQ(EventStates(),
                (std::vector<std::string>{"ALLOCATED", "COMPLETED"}));
    }
  }
}

TEST_F(SchedulerCoreTest, AHeldStageIsWrittenWhenItsWindowEnds) {
  const Assignment a = AssignOne(absl::Milliseconds(20));
  const absl::Time allocated = clock_.Now();
  Tick(absl::Milliseconds(10));
  Update(1, a.token(), kwq::v1::RUNNING);
  Tick(absl::Milliseconds(9));
  EXPECT_TRUE(EventStates().empty());
  Tick(absl::Milliseconds(1));  // 20 ms after the assignment
  EXPECT_EQ(EventStates(), std::vector<std::string>{"RUNNING"});
  const auto run = Events(kwq::v1::RUNNING);
  ASSERT_EQ(run.size(), 1u);
  EXPECT_EQ(FromProto(run[0].allocated_time()), allocated);
  EXPECT_EQ(FromProto(run[0].time()), allocated + absl::Milliseconds(10));
  // A long task's completion is then an event of its own.
  Tick(absl::Seconds(1));
  Update(1, a.token(), kwq::v1::COMPLETED);
  MakeDurable();
  EXPECT_EQ(EventStates(), (std::vector<std::string>{"RUNNING", "COMPLETED"}));
  EXPECT_FALSE(Events(kwq::v1::COMPLETED)[0].has_allocated_time());
  EXPECT_EQ(core_->metrics().events_folded, 1);
}

TEST_F(SchedulerCoreTest, AHeldStageIsWrittenBeforeAnyOtherEndOfTheAttempt) {
  const Assignment a = AssignOne(absl::Seconds(1));
  Update(1, a.token(), kwq::v1::ERROR);  // retryable: a new attempt
  MakeDurable();
  EXPECT_EQ(EventStates(),
            (std::vector<std::string>{"ALLOCATED", "ERROR", "PENDING"}));

  // A completion (without a RUNNING before it) refused for its size: the
  // attempt ran, so its RUNNING stage is written before its end.
  SchedulerOptions small_results;
  small_results.max_result_bytes = 4;
  const Assignment big = AssignOne(absl::Seconds(1), small_results);
  kwq::v1::WorkerMessage msg;
  *msg.mutable_update()->mutable_token() = big.token();
  msg.mutable_update()->set_state(kwq::v1::COMPLETED);
  msg.mutable_update()->set_result("too large");
  Send(1, msg);
  MakeDurable();
  const auto states = EventStates();
  ASSERT_GE(states.size(), 2u);
  EXPECT_EQ(states[0], "RUNNING");
  EXPECT_EQ(states[1], "ERROR");
  ASSERT_EQ(Events(kwq::v1::RUNNING).size(), 1u);
  EXPECT_TRUE(Events(kwq::v1::RUNNING)[0].has_allocated_time());
}

TEST_F(SchedulerCoreTest, AFoldedCompletionThatWasNotDurableLosesNoStage) {
  for (const bool resend_in_window : {true, false}) {
    SCOPED_TRACE(resend_in_window ? "resent within the window"
                                  : "resent after the window");
    const Assignment a = AssignOne(absl::Milliseconds(20));
    Update(1, a.token(), kwq::v1::RUNNING);
    Update(1, a.token(), kwq::v1::COMPLETED);
    MakeDurable(/*ok=*/false);
    ASSERT_EQ(Acks(1).size(), 1u);
    EXPECT_EQ(Acks(1)[0].code(), 14);  // UNAVAILABLE: send it again
    if (!resend_in_window) {
      // The held stages are written on their own when the window ends.
      Tick(absl::Milliseconds(50));
      ASSERT_EQ(Events(kwq::v1::RUNNING).size(), 1u);
      EXPECT_TRUE(Events(kwq::v1::RUNNING)[0].has_allocated_time());
    }
    Update(1, a.token(), kwq::v1::COMPLETED);
    MakeDurable();
    Tick(absl::Milliseconds(50));
    const auto done = Events(kwq::v1::COMPLETED);
    ASSERT_EQ(done.size(), 2u);
    EXPECT_TRUE(done[0].has_running_time());
    EXPECT_EQ(done[1].has_running_time(), resend_in_window);
    EXPECT_EQ(
        EventStates(),
        resend_in_window
            ? (std::vector<std::string>{"COMPLETED", "COMPLETED"})
            : (std::vector<std::string>{"COMPLETED", "RUNNING", "COMPLETED"}));
  }
}

TEST_F(SchedulerCoreTest, FlushHeldEventsWritesEveryHeldStage) {
  SchedulerOptions o;
  o.event_fold_window = absl::Seconds(10);
  Reset(o, /*fold_events=*/true);
  for (int i = 0; i < 3; ++i) Record(MakeTask(absl::StrCat("f", i), 4), 0, i);
  Connect(1, 3);
  ASSERT_EQ(TakeAssignments(1).size(), 3u);
  EXPECT_TRUE(EventStates().empty());
  core_->FlushHeldEvents();
  Collect();
  EXPECT_EQ(Events(kwq::v1::ALLOCATED).size(), 3u);
  core_->FlushHeldEvents();  // nothing is written twice
  Collect();
  EXPECT_EQ(Events(kwq::v1::ALLOCATED).size(), 3u);
}

kwq::v1::Hello HelloWith(const std::string& id, int slots,
                         std::vector<std::string> keys) {
  kwq::v1::Hello h;
  h.set_worker_id(id);
  h.set_slots(slots);
  for (auto& k : keys) h.add_affinity_keys(k);
  return h;
}

TEST_F(SchedulerCoreTest,
       SoftAffinityPrefersAMatchingWorkerThenWaitsBoundedly) {
  SchedulerOptions o;
  o.affinity_wait = absl::Milliseconds(20);
  Reset(o);
  core_->OnWorkerConnected(1, HelloWith("usd", 1, {"curve=USD"}));
  core_->OnWorkerConnected(2, HelloWith("eur", 2, {"curve=EUR"}));
  Collect();
  Task t = MakeTask("t-usd", 5);
  t.add_affinity_keys("curve=USD");
  Record(t, 0, 0);
  ASSERT_EQ(TakeAssignments(1).size(),
            1u);  // the USD worker, though EUR has more slots
  // The USD worker is busy now: the next USD task waits for it...
  Task t2 = MakeTask("t-usd-2", 5);
  t2.add_affinity_keys("curve=USD");
  Record(t2, 0, 1);
  EXPECT_TRUE(TakeAssignments(2).empty());
  kwq::v1::TaskState state;
  std::string worker;
  auto why = core_->Explain("t-usd-2", &state, &worker);
  ASSERT_FALSE(why.empty());
  EXPECT_NE(why.back().find("curve=USD"), std::string::npos) << why.back();
  // ... while other work flows to the EUR worker ...
  Record(MakeTask("plain", 1), 0, 0);
  EXPECT_EQ(TakeAssignments(2).size(), 1u);
  // ... and at most the wait: then any worker takes it.
  Tick(absl::Milliseconds(25));
  auto late = TakeAssignments(2);
  ASSERT_EQ(late.size(), 1u);
  EXPECT_EQ(late[0].task().id(), "t-usd-2");
  const auto m = core_->metrics();
  EXPECT_EQ(m.affinity_hits, 1);
  EXPECT_EQ(m.affinity_holds, 1);
  EXPECT_EQ(m.affinity_misses, 1);
  EXPECT_EQ(m.priority_inversions, 0);  // a bounded affinity hold is not one
}

TEST_F(SchedulerCoreTest, NoWaitWhenNoConnectedWorkerHoldsTheKey) {
  Connect(1, 1);
  Task t = MakeTask("t-gbp", 5);
  t.add_affinity_keys("curve=GBP");
  Record(t, 0, 0);
  EXPECT_EQ(TakeAssignments(1).size(), 1u);
  EXPECT_EQ(core_->metrics().affinity_holds, 0);
}

TEST_F(SchedulerCoreTest, PausedJobsAndPrioritiesWaitAndResumeWhereTheyWere) {
  core_->OnControlRecord("pause/job/j-paused",
                         Control("pause/job/j-paused", true));
  core_->OnControlRecord("pause/p7", Control("pause/p7", true));
  Collect();
  Task a = MakeTask("a", 5);
  a.set_job_id("j-paused");
  Record(a, 0, 0);
  Record(MakeTask("b", 7), 0, 0);
  Record(MakeTask("c", 3), 0, 0);
  Connect(1, 5);
  auto got = TakeAssignments(1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].task().id(), "c");
  // The paused priority's task counts; the paused job's is parked (it must
  // not hold other jobs back).
  EXPECT_EQ(core_->buffered(), 1u);
  kwq::v1::TaskState state;
  std::string worker;
  auto why = core_->Explain("a", &state, &worker);
  ASSERT_FALSE(why.empty());
  EXPECT_EQ(why[0], "paused: job j-paused");
  EXPECT_EQ(core_->metrics().priority_inversions, 0);
  core_->OnControlRecord("pause/job/j-paused", "");  // tombstone: resume
  Collect();
  got = TakeAssignments(1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].task().id(), "a");  // p7 is still paused
  core_->OnControlRecord("pause/p7", "");
  Collect();
  got = TakeAssignments(1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].task().id(), "b");
  core_->OnControlRecord("pause/all", Control("pause/all", true));
  Record(MakeTask("d", 9), 0, 1);
  EXPECT_TRUE(TakeAssignments(1).empty());
}

TEST_F(SchedulerCoreTest, PausedJobTasksBeyondTheMemoryCapGoToTheParkedTopic) {
  SchedulerOptions o;
  o.max_parked_in_memory_per_priority = 2;
  Reset(o);
  core_->OnControlRecord("pause/job/big", Control("pause/job/big", true));
  Collect();
  EXPECT_FALSE(TakeEffectsReplay());
  for (int i = 0; i < 5; ++i) {
    Task t = MakeTask(absl::StrCat("big-", i), 4);
    t.set_job_id("big");
    Record(t, 0, i);
  }
  std::vector<std::string> parked;
  for (const auto& r : records_) {
    if (r.topic == core_->topics().Parked()) parked.push_back(r.key);
  }
  EXPECT_EQ(parked, (std::vector<std::string>{"big-2", "big-3", "big-4"}));
  EXPECT_EQ(core_->metrics().parked_to_kafka, 3);
  EXPECT_EQ(core_->buffered(), 0u);
  MakeDurable();  // the parked copies are durable: their records are decided
  ASSERT_FALSE(commits_.empty());
  // offsets 0-1 are in memory (undecided), 2-4 decided above them
  EXPECT_EQ(commits_.back().next_offset, 0);
  core_->OnControlRecord("pause/job/big", "");  // resume
  EXPECT_TRUE(TakeEffectsReplay()) << "the parked topic must be replayed";
  Connect(1, 5);
  EXPECT_EQ(TakeAssignments(1).size(), 2u);  // the two held in memory
}

TEST_F(SchedulerCoreTest,
       CancelEndsQueuedTasksAndStopsRunningOnesWithoutRetry) {
  Connect(1, 1);
  Task running = MakeTask("r", 5);
  running.set_job_id("doomed");
  Record(running, 0, 0);
  auto a = TakeAssignments(1);
  ASSERT_EQ(a.size(), 1u);
  Task queued = MakeTask("q", 5);
  queued.set_job_id("doomed");
  Record(queued, 0, 1);
  core_->OnControlRecord("cancel/job/doomed",
                         Control("cancel/job/doomed", true, "alice"));
  Collect();
  // The queued one is CANCELLED at once; the worker is told to stop the other.
  auto cancelled = Events(kwq::v1::CANCELLED);
  ASSERT_EQ(cancelled.size(), 1u);
  EXPECT_EQ(cancelled[0].task_id(), "q");
  EXPECT_NE(cancelled[0].error().find("alice"), std::string::npos);
  bool cancel_sent = false;
  for (auto& snd : sends_) cancel_sent |= snd.conn == 1 && snd.msg.has_cancel();
  EXPECT_TRUE(cancel_sent);
  // The worker stops it: CANCELLED, not retried, acknowledged.
  kwq::v1::WorkerMessage msg;
  *msg.mutable_update()->mutable_token() = a[0].token();
  msg.mutable_update()->set_state(kwq::v1::ERROR);
  msg.mutable_update()->set_cancelled(true);
  Send(1, msg);
  MakeDurable();
  EXPECT_EQ(Events(kwq::v1::CANCELLED).size(), 2u);
  EXPECT_TRUE(Requeued().empty());
  EXPECT_EQ(Acks(1).size(), 1u);
  // Both offsets decided: the prefix is committed past them.
  ASSERT_FALSE(commits_.empty());
  EXPECT_EQ(commits_.back().next_offset, 2);
  // A record of the job arriving later is cancelled on receipt.
  Task late = MakeTask("late", 5);
  late.set_job_id("doomed");
  Record(late, 0, 2);
  EXPECT_EQ(Events(kwq::v1::CANCELLED).size(), 3u);
  EXPECT_EQ(core_->metrics().cancelled, 3);
}

TEST_F(SchedulerCoreTest,
       ATaskPastItsTimeoutIsCancelledAndCountedAsATaskError) {
  Connect(1, 1);
  Task t = MakeTask("slow", 5);
  *t.mutable_timeout() = ToProto(absl::Seconds(2));
  Record(t, 0, 0);
  auto a = TakeAssignments(1);
  ASSERT_EQ(a.size(), 1u);
  ExpectTimeoutAfterTwoSeconds();
  bool cancel_sent = false;
  for (auto& snd : sends_) cancel_sent |= snd.conn == 1 && snd.msg.has_cancel();
  EXPECT_TRUE(cancel_sent);
  MakeDurable();
  ASSERT_EQ(Requeued().size(), 1u);  // retried: the task-error budget applies
  EXPECT_EQ(Requeued()[0].task_errors(), 1);
  EXPECT_EQ(core_->metrics().timeouts, 1);
}

TEST_F(SchedulerCoreTest, RecordsTheCommitMetadataNamesAsDecidedAreSkipped) {
  // An earlier owner committed offset 100 with 101 and 103 decided above it.
  core_->OnPartitionsAssigned(
      {{core_->topics().ForPriority(4), 0, 100, "v1:1,3"}});
  Connect(1, 4);
  for (int i = 0; i < 4; ++i) {
    Record(MakeTask(absl::StrCat("m", i), 4), 0, 100 + i);
  }
  auto got = TakeAssignments(1);
  ASSERT_EQ(got.size(), 2u);  // 100 and 102 run; 101 and 103 do not run again
  EXPECT_EQ(got[0].task().id(), "m0");
  EXPECT_EQ(got[1].task().id(), "m2");
  EXPECT_EQ(core_->metrics().skipped_decided, 2);
  Update(1, got[0].token(), kwq::v1::COMPLETED);
  Update(1, got[1].token(), kwq::v1::COMPLETED);
  MakeDurable();
  EXPECT_EQ(commits_.back().next_offset, 104);
}

TEST_F(SchedulerCoreTest, APrefetchingWorkerHoldsSlotsPlusPrefetchNeverMore) {
  kwq::v1::Hello hello = HelloWith("pf", 2, {});
  hello.set_implicit_credits(true);
  hello.set_prefetch(3);
  core_->OnWorkerConnected(1, hello);
  Collect();
  for (int i = 0; i < 8; ++i) Record(MakeTask(absl::StrCat("t", i), 4), 0, i);
  auto first = TakeAssignments(1);
  ASSERT_EQ(first.size(), 5u) << "2 slots + 3 prefetched";
  Credits(1, 4);  // capped at capacity - busy = 0
  EXPECT_TRUE(TakeAssignments(1).empty());
  Update(1, first[0].token(), kwq::v1::COMPLETED);
  EXPECT_EQ(TakeAssignments(1).size(), 1u) << "a completion frees one";
  MakeDurable();
  EXPECT_TRUE(TakeAssignments(1).empty());
  EXPECT_EQ(core_->buffered(), 2u);
}

TEST_F(SchedulerCoreTest, APrefetchedTaskTimesOutOnlyAfterItStartsRunning) {
  kwq::v1::Hello hello = HelloWith("pf", 1, {});
  hello.set_prefetch(1);
  core_->OnWorkerConnected(1, hello);
  Collect();
  Task t = MakeTask("queued", 5);
  *t.mutable_timeout() = ToProto(absl::Seconds(2));
  Record(t, 0, 0);
  auto a = TakeAssignments(1);
  ASSERT_EQ(a.size(), 1u);
  // Waiting in the worker's queue (heartbeats keep its lease) past its timeout.
  for (int i = 0; i < 3; ++i) {
    kwq::v1::WorkerMessage hb;
    hb.mutable_heartbeat();
    Send(1, hb);
    Tick(absl::Seconds(1));
  }
  EXPECT_TRUE(Events(kwq::v1::ERROR).empty());
  Update(1, a[0].token(), kwq::v1::RUNNING);
  ExpectTimeoutAfterTwoSeconds();
}

TEST_F(SchedulerCoreTest, WithImplicitCreditsACompletionFreesItsSlot) {
  kwq::v1::Hello hello = HelloWith("implicit", 1, {});
  hello.set_implicit_credits(true);
  core_->OnWorkerConnected(1, hello);
  Collect();
  Record(MakeTask("i1", 3), 0, 0);
  Record(MakeTask("i2", 3), 0, 1);
  auto first = TakeAssignments(1);
  ASSERT_EQ(first.size(), 1u);                      // one slot
  Update(1, first[0].token(), kwq::v1::COMPLETED);  // no Credits message
  auto second = TakeAssignments(1);
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(second[0].task().id(), "i2");
  Update(1, second[0].token(), kwq::v1::ERROR);
  MakeDurable();
  // Never more than the slots: the retry waits for the next freed slot.
  Tick(absl::Seconds(1));
  EXPECT_LE(TakeAssignments(1).size(), 1u);
}

TEST_F(SchedulerCoreTest, CommitsAreBuiltOncePerTick) {
  Connect(1, 2);
  Record(MakeTask("c0", 1), 0, 0);
  Record(MakeTask("c1", 1), 0, 1);
  auto got = TakeAssignments(1);
  ASSERT_EQ(got.size(), 2u);
  commits_.clear();
  // Without the test fixture's flush: decisions only mark the partition.
  for (auto& a : got) {
    kwq::v1::WorkerMessage msg;
    *msg.mutable_update()->mutable_token() = a.token();
    msg.mutable_update()->set_state(kwq::v1::COMPLETED);
    core_->OnWorkerMessage(1, msg);
  }
  Effects e = core_->TakeEffects();
  for (auto& p : e.produces) {
    ASSERT_NE(p.cookie, 0u);
    core_->OnDurable(p.cookie, true);
  }
  EXPECT_TRUE(core_->TakeEffects().commits.empty());
  core_->OnTick();
  Effects ticked = core_->TakeEffects();
  ASSERT_EQ(ticked.commits.size(), 1u);  // one per partition, not per decision
  EXPECT_EQ(ticked.commits[0].next_offset, 2);
}

}  // namespace
}  // namespace kwq::scheduler
