// kwqctl submit: one task from flags, or many from JSON lines, streamed in
// batches.
#include <unistd.h>

#include <fstream>
#include <iostream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "google/protobuf/util/json_util.h"
#include "server/util/time_util.h"
#include "tools/ctl/commands.h"

namespace kwq::ctl {

namespace {

// The task the flags describe (also the defaults of every JSON line).
bool TaskFromFlags(const Args& args, kwq::v1::Task* t, std::string* error) {
  t->set_id(args.Get("id"));
  t->set_job_id(args.Get("job"));
  long long v = 0;
  if (!args.GetInt("priority", 0, &v, error)) return false;
  if (v < 0 || v > 9) {
    *error = "--priority must be 0-9 (higher runs first)";
    return false;
  }
  t->set_priority(static_cast<int>(v));
  for (const auto& tag : args.GetAll("tag")) {
    std::pair<std::string, std::string> kv =
        absl::StrSplit(tag, absl::MaxSplits('=', 1));
    if (kv.first.empty() || tag.find('=') == std::string::npos) {
      *error = "--tag must be key=value, not '" + tag + "'";
      return false;
    }
    (*t->mutable_tags())[kv.first] = kv.second;
  }
  for (const auto& a : args.GetAll("affinity")) t->add_affinity_keys(a);
  for (const auto& l : args.GetAll("label")) t->add_required_labels(l);
  if (!args.GetInt("max_attempts", 0, &v, error)) return false;
  t->set_max_attempts(static_cast<int>(v));
  if (args.Has("timeout")) {
    absl::Duration d;
    if (!absl::ParseDuration(args.Get("timeout"), &d) ||
        d <= absl::ZeroDuration()) {
      *error = "--timeout must be a duration like 30s or 5m";
      return false;
    }
    *t->mutable_timeout() = ToProto(d);
  }
  if (args.Has("payload") && args.Has("payload_file")) {
    *error = "give --payload or --payload-file, not both";
    return false;
  }
  if (args.Has("payload")) t->set_payload(args.Get("payload"));
  if (args.Has("payload_file")) {
    std::ifstream f(args.Get("payload_file"), std::ios::binary);
    if (!f) {
      *error = "cannot read --payload-file " + args.Get("payload_file");
      return false;
    }
    std::stringstream ss;
    ss << f.rdbuf();
    t->set_payload(ss.str());
  }
  return true;
}

}  // namespace

int RunSubmit(const Context& c) {
  std::string error;
  if (!c.args.CheckAllowed(
          {"job", "id", "priority", "tag", "affinity", "label", "max_attempts",
           "timeout", "payload", "payload_file", "file", "batch"},
          &error)) {
    return Fail(kExitUsage, error);
  }
  kwq::v1::Task defaults;
  if (!TaskFromFlags(c.args, &defaults, &error)) return Fail(kExitUsage, error);
  long long batch_size = 1000;
  if (!c.args.GetInt("batch", 1000, &batch_size, &error) || batch_size < 1 ||
      batch_size > 10000) {
    return Fail(kExitUsage, error.empty() ? "--batch must be 1-10000" : error);
  }
  auto stub = c.SchedulerStub();
  std::vector<std::string> ids, duplicates;
  const bool progress = isatty(STDERR_FILENO);
  const absl::Time start = absl::Now();
  auto send = [&](kwq::v1::SubmitRequest& req) -> int {
    if (req.tasks_size() == 0) return kExitOk;
    grpc::ClientContext ctx;
    c.security.Apply(&ctx);
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(60));
    kwq::v1::SubmitResponse resp;
    grpc::Status st = stub->Submit(&ctx, req, &resp);
    if (!st.ok()) {
      return Fail(
          kExitFailure,
          absl::StrCat(RpcError("scheduler", c.scheduler, st),
                       ids.empty()
                           ? ""
                           : absl::StrCat(" (the ", ids.size(),
                                          " tasks before were submitted)")));
    }
    for (const auto& id : resp.task_ids()) {
      ids.push_back(id);
      if (c.format == Format::kJsonl)
        std::cout << "{\"task_id\":\"" << id << "\"}\n";
    }
    for (const auto& id : resp.duplicate_ids()) duplicates.push_back(id);
    req.clear_tasks();
    if (progress) {
      const double secs =
          std::max(1e-3, absl::ToDoubleSeconds(absl::Now() - start));
      std::cerr << "\rsubmitted "
                << Thousands(static_cast<long long>(ids.size())) << " tasks ("
                << static_cast<long long>(static_cast<double>(ids.size()) /
                                          secs)
                << "/s)" << std::flush;
    }
    return kExitOk;
  };

  kwq::v1::SubmitRequest req;
  if (!c.args.Has("file")) {
    if (defaults.job_id().empty()) {
      return Fail(kExitUsage,
                  "give --job JOB (or --file F.jsonl for many tasks)");
    }
    *req.add_tasks() = defaults;
    if (int rc = send(req); rc != kExitOk) return rc;
  } else {
    const std::string path = c.args.Get("file");
    std::ifstream file;
    if (path != "-") {
      file.open(path);
      if (!file) return Fail(kExitUsage, "cannot read --file " + path);
    }
    std::istream& in = path == "-" ? std::cin : file;
    std::string line;
    long long n = 0;
    google::protobuf::util::JsonParseOptions jo;
    jo.ignore_unknown_fields = false;
    while (std::getline(in, line)) {
      ++n;
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      kwq::v1::Task from_line;
      auto st =
          google::protobuf::util::JsonStringToMessage(line, &from_line, jo);
      if (!st.ok()) {
        return Fail(
            kExitUsage,
            absl::StrCat(
                path, ":", n, ": not a kwq.v1.Task: ", st.message().as_string(),
                ids.empty() ? ""
                            : absl::StrCat(" (the ", ids.size(),
                                           " tasks before were submitted)")));
      }
      kwq::v1::Task t = defaults;
      t.MergeFrom(from_line);
      if (t.job_id().empty()) {
        return Fail(kExitUsage, absl::StrCat(path, ":", n,
                                             ": no job_id (give it in the "
                                             "line or with --job)"));
      }
      *req.add_tasks() = std::move(t);
      if (req.tasks_size() >= batch_size) {
        if (int rc = send(req); rc != kExitOk) return rc;
      }
    }
    if (int rc = send(req); rc != kExitOk) return rc;
  }
  if (progress) std::cerr << "\n";
  if (c.format == Format::kJson) {
    std::string out = "{\"task_ids\":[";
    for (size_t i = 0; i < ids.size(); ++i)
      absl::StrAppend(&out, i ? "," : "", "\"", ids[i], "\"");
    out += "],\"duplicate_ids\":[";
    for (size_t i = 0; i < duplicates.size(); ++i) {
      absl::StrAppend(&out, i ? "," : "", "\"", duplicates[i], "\"");
    }
    std::cout << out << "]}\n";
  } else if (c.format == Format::kTable) {
    for (const auto& id : ids) std::cout << id << "\n";
    if (!duplicates.empty()) {
      std::cerr << duplicates.size()
                << " ids were submitted before (within the dedup window) and "
                   "not queued "
                   "again\n";
    }
  }
  return kExitOk;
}

}  // namespace kwq::ctl
