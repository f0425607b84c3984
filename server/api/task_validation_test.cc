#include "server/api/task_validation.h"

#include "gtest/gtest.h"

namespace kwq::api {
namespace {

kwq::v1::Task Good() {
  kwq::v1::Task t;
  t.set_id("trade-10.pv01");
  t.set_job_id("job-1");
  t.set_priority(5);
  (*t.mutable_tags())["currency"] = "USD";
  t.set_payload("x");
  return t;
}

TEST(TaskValidationTest, AcceptsAGoodTaskAndAnEmptyId) {
  ValidationLimits limits;
  EXPECT_TRUE(ValidateTask(Good(), 0, limits).ok());
  auto t = Good();
  t.clear_id();
  EXPECT_TRUE(ValidateTask(t, 0, limits).ok());
}

struct BadCase {
  const char* name;
  void (*mutate)(kwq::v1::Task*);
  absl::StatusCode code;
  const char* message_part;
};

TEST(TaskValidationTest, RejectsBadFieldsNamingTheTaskAndTheField) {
  const BadCase cases[] = {
      {"bad id", [](kwq::v1::Task* t) { t->set_id("has space"); },
       absl::StatusCode::kInvalidArgument, "id must be"},
      {"long id", [](kwq::v1::Task* t) { t->set_id(std::string(129, 'a')); },
       absl::StatusCode::kInvalidArgument, "id must be"},
      {"no job", [](kwq::v1::Task* t) { t->clear_job_id(); },
       absl::StatusCode::kInvalidArgument, "job_id is required"},
      {"priority", [](kwq::v1::Task* t) { t->set_priority(10); },
       absl::StatusCode::kInvalidArgument, "priority 10"},
      {"negative priority", [](kwq::v1::Task* t) { t->set_priority(-1); },
       absl::StatusCode::kInvalidArgument, "priority -1"},
      {"payload",
       [](kwq::v1::Task* t) { t->set_payload(std::string(2000, 'x')); },
       absl::StatusCode::kResourceExhausted, "payload is 2000 bytes"},
      {"tag key", [](kwq::v1::Task* t) { (*t->mutable_tags())[""] = "v"; },
       absl::StatusCode::kInvalidArgument, "tag key"},
      {"affinity", [](kwq::v1::Task* t) { t->add_affinity_keys(""); },
       absl::StatusCode::kInvalidArgument, "affinity_keys"},
      {"attempts", [](kwq::v1::Task* t) { t->set_max_attempts(1000); },
       absl::StatusCode::kInvalidArgument, "max_attempts"},
  };
  ValidationLimits limits;
  limits.max_payload_bytes = 1000;
  for (const BadCase& c : cases) {
    auto t = Good();
    c.mutate(&t);
    absl::Status s = ValidateTask(t, 3, limits);
    EXPECT_EQ(s.code(), c.code) << c.name << ": " << s;
    EXPECT_NE(s.message().find(c.message_part), std::string::npos)
        << c.name << ": " << s;
    EXPECT_NE(s.message().find("tasks[3]"), std::string::npos)
        << c.name << ": " << s;
  }
}

// Issue 18: a megabyte id or key is never echoed whole into the error, and
// Timestamps with negative nanos are refused.
TEST(TaskValidationTest, HugeInputIsNotEchoedAndBadTimestampsAreRefused) {
  ValidationLimits limits;
  kwq::v1::Task t = Good();
  t.set_id(std::string(1 << 20, 'x'));
  absl::Status s = ValidateTask(t, 0, limits);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_LT(s.message().size(), 300u);
  t = Good();
  t.add_affinity_keys(std::string(1 << 20, 'k'));
  s = ValidateTask(t, 0, limits);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_LT(s.message().size(), 300u);
  t = Good();
  (*t.mutable_tags())[std::string(1 << 20, 't')] = "v";
  s = ValidateTask(t, 0, limits);
  EXPECT_LT(s.message().size(), 300u);
  t = Good();
  t.mutable_submit_time()->set_nanos(-5);
  EXPECT_EQ(ValidateTask(t, 0, limits).code(),
            absl::StatusCode::kInvalidArgument);
  t = Good();
  t.mutable_not_before()->set_seconds(1LL << 60);
  EXPECT_EQ(ValidateTask(t, 0, limits).code(),
            absl::StatusCode::kInvalidArgument);
  t = Good();
  t.mutable_timeout()->set_nanos(2000000000);
  EXPECT_EQ(ValidateTask(t, 0, limits).code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace kwq::api
