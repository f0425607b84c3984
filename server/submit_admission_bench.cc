// Submit's admission alone, on one thread: N tasks in Submits of --batch
// (the load generator's shape: one job, 10 priorities, 128-byte payloads, one
// tag, ids given by the client) through SubmitAdmission::Admit, with the
// dedup window filling up as in a long run. No gRPC or Kafka: run under
//   valgrind --tool=cachegrind --cache-sim=no
//   bazel-bin/server/submit_admission_bench
// for an exact instruction count per task (an A/B of a change to admission
// that does not depend on the machine's speed). Exits 1 unless every task was
// admitted once with its record and PENDING event.
#include <cstdio>
#include <string>

#include "absl/strings/str_cat.h"
#include "gflags/gflags.h"
#include "server/submit_admission.h"

DEFINE_int64(tasks, 200000, "tasks to admit");
DEFINE_int32(batch, 1000, "tasks per Submit");

int main(int argc, char** argv) {
  gflags::SetUsageMessage("submit_admission_bench [--tasks N] [--batch B]");
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  if (FLAGS_tasks < 1 || FLAGS_batch < 1 || FLAGS_batch > 10000) {
    std::fprintf(stderr,
                 "submit_admission_bench: --tasks >= 1, --batch 1-10000\n");
    return 2;
  }
  kwq::scheduler::SubmitAdmission::Options options;
  options.scheduler_id = "bench";
  kwq::scheduler::SubmitAdmission admission(options);
  google::protobuf::Timestamp now;
  now.set_seconds(1'700'000'000);
  const std::string payload(128, 'p');
  int64_t done = 0, records = 0, events = 0;
  while (done < FLAGS_tasks) {
    kwq::v1::SubmitRequest req;
    for (int i = 0; i < FLAGS_batch && done < FLAGS_tasks; ++i, ++done) {
      auto* t = req.add_tasks();
      t->set_id(absl::StrCat("bench-1700000000000000-", done));
      t->set_job_id("bench-job");
      t->set_priority(static_cast<int>(done % 10));
      t->set_payload(payload);
      (*t->mutable_tags())["group"] = absl::StrCat("g", done % 8);
    }
    kwq::v1::SubmitResponse response;
    kwq::scheduler::SubmitAdmission::Plan plan;
    if (auto s = admission.Admit(req, "bench", now, &response, &plan);
        !s.ok()) {
      std::fprintf(stderr, "admit: %s\n", s.ToString().c_str());
      return 1;
    }
    records += static_cast<int64_t>(plan.task_record.size());
    events += static_cast<int64_t>(plan.pending_events.size());
  }
  std::printf("%lld tasks admitted: %lld records, %lld PENDING events\n",
              static_cast<long long>(done), static_cast<long long>(records),
              static_cast<long long>(events));
  return records == FLAGS_tasks && events == FLAGS_tasks ? 0 : 1;
}
