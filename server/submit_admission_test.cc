#include "server/submit_admission.h"

#include "gtest/gtest.h"
#include "kwq/v1/control.pb.h"

namespace kwq::scheduler {
namespace {

SubmitAdmission::Options Opts() {
  SubmitAdmission::Options o;
  o.scheduler_id = "s1";
  o.dedup_window_ids = 3;
  o.batched_from_tasks = 2;
  return o;
}

kwq::v1::SubmitRequest Request(std::vector<std::string> ids,
                               const std::string& job = "j1") {
  kwq::v1::SubmitRequest r;
  for (auto& id : ids) {
    auto* t = r.add_tasks();
    t->set_id(id);
    t->set_job_id(job);
    t->set_priority(4);
    (*t->mutable_tags())["book"] = "rates";
  }
  return r;
}

google::protobuf::Timestamp Now() {
  google::protobuf::Timestamp t;
  t.set_seconds(1'700'000'000);
  return t;
}

TEST(SubmitAdmissionTest, RecordsFirstThenPendingEventsThatCarryTheTask) {
  SubmitAdmission a(Opts());
  kwq::v1::SubmitResponse resp;
  SubmitAdmission::Plan plan;
  ASSERT_TRUE(a.Admit(Request({"t1", ""}), "alice", Now(), &resp, &plan).ok());
  ASSERT_EQ(resp.task_ids_size(), 2);
  EXPECT_EQ(resp.task_ids(0), "t1");
  EXPECT_EQ(resp.task_ids(1).rfind("s1-", 0), 0u) << "a made id";
  // The job's registration, then the two task records.
  ASSERT_EQ(plan.first.size(), 3u);
  EXPECT_EQ(plan.first[0].topic, "kwq.jobs");
  kwq::v1::ControlRecord reg;
  ASSERT_TRUE(reg.ParseFromString(plan.first[0].value));
  EXPECT_EQ(reg.requested_by(), "alice");
  EXPECT_EQ(plan.first[1].topic, "kwq.tasks.p4");
  EXPECT_TRUE(plan.first[1].batched);
  EXPECT_EQ(plan.task_record, (std::vector<size_t>{1, 2}));
  ASSERT_EQ(plan.pending_events.size(), 2u);
  kwq::v1::TaskEvent ev;
  ASSERT_TRUE(ev.ParseFromString(plan.pending_events[0].value));
  EXPECT_EQ(ev.state(), kwq::v1::PENDING);
  EXPECT_EQ(ev.priority(), 4);
  EXPECT_EQ(ev.tags().at("book"), "rates");
  EXPECT_EQ(ev.time().seconds(), Now().seconds());
  EXPECT_EQ(plan.new_jobs, std::vector<std::string>{"j1"});
}

TEST(SubmitAdmissionTest, DuplicatesAreListedAndNotWrittenUntilForgotten) {
  SubmitAdmission a(Opts());
  kwq::v1::SubmitResponse r1, r2, r3;
  SubmitAdmission::Plan p1, p2, p3;
  ASSERT_TRUE(a.Admit(Request({"t1"}), "x", Now(), &r1, &p1).ok());
  ASSERT_TRUE(a.Admit(Request({"t1", "t2"}), "x", Now(), &r2, &p2).ok());
  EXPECT_EQ(r2.task_ids_size(), 2);
  ASSERT_EQ(r2.duplicate_ids_size(), 1);
  EXPECT_EQ(r2.duplicate_ids(0), "t1");
  EXPECT_EQ(p2.ids, std::vector<std::string>{"t2"});
  EXPECT_TRUE(p2.new_jobs.empty()) << "the job was registered by the first";
  // t2's record was not durable: a retry queues it (and registers again).
  a.Forget({"t2"}, {"j1"});
  ASSERT_TRUE(a.Admit(Request({"t2"}), "x", Now(), &r3, &p3).ok());
  EXPECT_EQ(r3.duplicate_ids_size(), 0);
  EXPECT_EQ(p3.ids, std::vector<std::string>{"t2"});
  EXPECT_EQ(p3.new_jobs, std::vector<std::string>{"j1"});
}

TEST(SubmitAdmissionTest, TheDedupWindowIsBounded) {
  SubmitAdmission a(Opts());  // 3 ids
  kwq::v1::SubmitResponse r;
  SubmitAdmission::Plan p;
  ASSERT_TRUE(a.Admit(Request({"a", "b", "c", "d"}), "x", Now(), &r, &p).ok());
  kwq::v1::SubmitResponse again;
  SubmitAdmission::Plan p2;
  ASSERT_TRUE(a.Admit(Request({"a", "d"}), "x", Now(), &again, &p2).ok());
  EXPECT_EQ(p2.ids, std::vector<std::string>{"a"}) << "a left the window";
}

TEST(SubmitAdmissionTest, BadBatchesAreRefusedBeforeAnythingIsPlanned) {
  SubmitAdmission a(Opts());
  kwq::v1::SubmitResponse r;
  SubmitAdmission::Plan p;
  EXPECT_EQ(a.Admit(kwq::v1::SubmitRequest(), "x", Now(), &r, &p).code(),
            absl::StatusCode::kInvalidArgument);
  auto bad = Request({"ok", "also-ok"});
  bad.mutable_tasks(1)->set_priority(12);
  EXPECT_EQ(a.Admit(bad, "x", Now(), &r, &p).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(p.first.empty());
  EXPECT_EQ(r.task_ids_size(), 0);
  // Nothing was remembered: the good ids are still new.
  kwq::v1::SubmitResponse r2;
  SubmitAdmission::Plan p2;
  ASSERT_TRUE(a.Admit(Request({"ok"}), "x", Now(), &r2, &p2).ok());
  EXPECT_EQ(p2.ids.size(), 1u);
}

// The record is the client's task with admission's decisions appended: it
// must parse as the task admission means whatever the client set in the
// fields admission owns (attempt and failure counts, not_before, a missing
// id or submit time), and keep everything else as sent.
TEST(SubmitAdmissionTest, RecordsParseAsTheTaskAdmissionMeans) {
  kwq::v1::SubmitRequest r = Request({"", "given"});
  for (auto& t : *r.mutable_tasks()) {
    t.set_attempt(7);
    t.set_infra_failures(3);
    t.set_task_errors(2);
    t.set_payload(std::string(300, 'x'));
    t.set_last_error("kept as sent");
  }
  r.mutable_tasks(1)->mutable_not_before()->set_seconds(1'800'000'000);
  r.mutable_tasks(1)->mutable_submit_time()->set_seconds(1'600'000'000);
  SubmitAdmission a(Opts());
  kwq::v1::SubmitResponse resp;
  SubmitAdmission::Plan plan;
  const absl::Status s = a.Admit(r, "alice", Now(), &resp, &plan);
  ASSERT_TRUE(s.ok()) << s;
  ASSERT_EQ(plan.task_record.size(), 2u);
  for (int i = 0; i < 2; ++i) {
    SCOPED_TRACE(i);
    kwq::v1::Task task;
    ASSERT_TRUE(task.ParseFromString(plan.first[plan.task_record[i]].value));
    EXPECT_EQ(task.id(), resp.task_ids(i));
    EXPECT_EQ(task.id(), plan.first[plan.task_record[i]].key);
    EXPECT_EQ(task.attempt(), 1);
    EXPECT_EQ(task.infra_failures(), 0);
    EXPECT_EQ(task.task_errors(), 0);
    EXPECT_FALSE(task.has_not_before());
    EXPECT_EQ(task.payload(), std::string(300, 'x'));
    EXPECT_EQ(task.last_error(), "kept as sent");
    EXPECT_EQ(task.tags().at("book"), "rates");
    EXPECT_EQ(task.submit_time().seconds(),
              i == 0 ? Now().seconds() : 1'600'000'000);
    kwq::v1::TaskEvent ev;
    ASSERT_TRUE(ev.ParseFromString(plan.pending_events[i].value));
    EXPECT_EQ(ev.task_id(), task.id());
    EXPECT_EQ(ev.time().seconds(), task.submit_time().seconds());
  }
  EXPECT_EQ(resp.task_ids(0).rfind("s1-", 0), 0u) << "a made id";
  EXPECT_EQ(resp.task_ids(1), "given");
}

}  // namespace
}  // namespace kwq::scheduler
