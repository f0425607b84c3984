// kwqctl dlq list|get|resubmit: the dead-letter topic (<prefix>.dlq), read
// from Kafka; resubmit sends a dead-lettered task to the scheduler again.
#include <iostream>
#include <optional>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "kwq/v1/task.pb.h"
#include "server/api/topics.h"
#include "server/util/time_util.h"
#include "tools/ctl/commands.h"
#include "tools/ctl/topic_reader.h"

namespace kwq::ctl {

namespace {

struct Letter {
  std::string key;  // source topic/partition/offset
  kwq::v1::DeadLetter dl;
};

std::string Source(const kwq::v1::DeadLetter& dl) {
  return absl::StrCat(dl.source_topic(), "/", dl.source_partition(), "/",
                      dl.source_offset());
}

// Every dead letter now in the topic (those of `job` when given).
int ReadLetters(const Context& c, const std::string& job,
                std::vector<Letter>* out) {
  const std::string topic =
      api::Topics(c.args.Get("topic_prefix", "kwq")).Dlq();
  return ReadTopicToEnd(c, topic, [&](const RdKafka::Message& m) {
    Letter l;
    if (!l.dl.ParseFromArray(m.payload(), static_cast<int>(m.len()))) return;
    if (!job.empty() && l.dl.task().job_id() != job) return;
    l.key = m.key() ? *m.key() : Source(l.dl);
    out->push_back(std::move(l));
  });
}

// The latest dead letter of task `id`, or of source record `id`.
std::optional<Letter> Find(const std::vector<Letter>& letters,
                           const std::string& id) {
  for (auto it = letters.rbegin(); it != letters.rend(); ++it) {
    if (it->dl.task().id() == id || it->key == id) return *it;
  }
  return std::nullopt;
}

int List(const Context& c) {
  std::vector<Letter> letters;
  if (int rc = ReadLetters(c, c.args.Get("job"), &letters); rc != kExitOk) {
    return rc;
  }
  if (c.format != Format::kTable) {
    for (const auto& l : letters) std::cout << ToJson(l.dl) << "\n";
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows;
  for (const auto& l : letters) {
    std::string reason = l.dl.reason();
    if (reason.size() > 70) reason = reason.substr(0, 67) + "...";
    rows.push_back(
        {l.dl.task().id().empty() ? "(unparsed)" : l.dl.task().id(),
         l.dl.task().job_id().empty() ? "-" : l.dl.task().job_id(), l.key,
         absl::FormatTime("%Y-%m-%d %H:%M:%S", FromProto(l.dl.time()),
                          absl::LocalTimeZone()),
         reason});
  }
  PrintTable({"TASK", "JOB", "SOURCE", "TIME", "REASON"}, rows);
  std::cerr << letters.size() << " dead letters\n";
  return kExitOk;
}

int Get(const Context& c) {
  if (c.args.words().size() < 3) {
    return Fail(kExitUsage,
                "usage: kwqctl dlq get TASK_ID|TOPIC/PARTITION/OFFSET");
  }
  std::vector<Letter> letters;
  if (int rc = ReadLetters(c, "", &letters); rc != kExitOk) return rc;
  auto l = Find(letters, c.args.word(2));
  if (!l) return Fail(kExitFailure, "no dead letter for " + c.args.word(2));
  std::cout << ToJson(l->dl) << "\n";
  return kExitOk;
}

// A dead-lettered task goes back through Submit as a new task (a fresh
// attempt budget): under --as ID, by default <id>.r<unix seconds> (the old id
// may still be in the scheduler's dedup window, and the tracker keeps the
// failed task as it was).
int Resubmit(const Context& c) {
  if (c.args.words().size() < 3) {
    return Fail(kExitUsage, "usage: kwqctl dlq resubmit TASK_ID [--as NEW_ID]");
  }
  std::vector<Letter> letters;
  if (int rc = ReadLetters(c, "", &letters); rc != kExitOk) return rc;
  auto l = Find(letters, c.args.word(2));
  if (!l) return Fail(kExitFailure, "no dead letter for " + c.args.word(2));
  if (l->dl.task().id().empty()) {
    return Fail(kExitFailure,
                "that dead letter holds a record that is not a task "
                "(raw_value); it cannot be resubmitted as is");
  }
  kwq::v1::Task task = l->dl.task();
  task.set_id(c.args.Get(
      "as", absl::StrCat(task.id(), ".r", absl::ToUnixSeconds(absl::Now()))));
  task.clear_last_error();
  kwq::v1::SubmitRequest req;
  *req.add_tasks() = task;
  kwq::v1::SubmitResponse resp;
  grpc::ClientContext ctx;
  c.Prepare(&ctx);
  grpc::Status st = c.SchedulerStub()->Submit(&ctx, req, &resp);
  if (!st.ok()) {
    return Fail(kExitFailure, RpcError("scheduler", c.scheduler, st));
  }
  if (resp.duplicate_ids_size() > 0) {
    return Fail(kExitFailure, "the scheduler already has a task " + task.id() +
                                  "; give another id with --as");
  }
  std::cout << "Resubmitted " << l->dl.task().id() << " as " << task.id()
            << " (job " << task.job_id() << ", priority " << task.priority()
            << ").\n";
  return kExitOk;
}

}  // namespace

int RunDlq(const Context& c) {
  const std::string verb = c.args.words().size() > 1 ? c.args.word(1) : "";
  std::string error;
  if (!c.args.CheckAllowed(
          {"bootstrap_servers", "kafka_config", "topic_prefix", "job", "as"},
          &error)) {
    return Fail(kExitUsage, error);
  }
  if (verb == "list") return List(c);
  if (verb == "get") return Get(c);
  if (verb == "resubmit") return Resubmit(c);
  return Fail(kExitUsage,
              "usage: kwqctl dlq list|get|resubmit (see kwqctl dlq --help)");
}

}  // namespace kwq::ctl
