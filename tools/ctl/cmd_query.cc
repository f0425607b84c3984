// kwqctl job / task / queue / worker: reads from the tracker, control through
// the scheduler.
#include <unistd.h>

#include <iostream>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "server/util/time_util.h"
#include "tools/ctl/commands.h"
#include "tools/ctl/monitor.h"

namespace kwq::ctl {

std::shared_ptr<grpc::Channel> Context::Channel(
    const std::string& address) const {
  return grpc::CreateCustomChannel(
      address, credentials ? credentials : grpc::InsecureChannelCredentials(),
      security.ChannelArgs());
}
std::unique_ptr<kwq::v1::Scheduler::Stub> Context::SchedulerStub() const {
  return kwq::v1::Scheduler::NewStub(Channel(scheduler));
}
std::unique_ptr<kwq::v1::Tracker::Stub> Context::TrackerStub() const {
  return kwq::v1::Tracker::NewStub(Channel(tracker));
}
void Context::Prepare(grpc::ClientContext* ctx) const {
  ctx->set_deadline(std::chrono::system_clock::now() +
                    std::chrono::seconds(timeout_s));
  security.Apply(ctx);
}

int Fail(int code, const std::string& message) {
  std::cerr << "kwqctl: " << message << "\n";
  return code;
}

namespace {

std::string Time(const google::protobuf::Timestamp& t) {
  if (t.seconds() == 0 && t.nanos() == 0) return "-";
  return absl::FormatTime("%Y-%m-%d %H:%M:%E3S", FromProto(t),
                          absl::LocalTimeZone());
}

std::string StateName(kwq::v1::TaskState s) {
  return kwq::v1::TaskState_Name(s);
}

int TrackerFail(const Context& c, const grpc::Status& s) {
  return Fail(kExitFailure, RpcError("tracker", c.tracker, s));
}
int SchedulerFail(const Context& c, const grpc::Status& s) {
  return Fail(kExitFailure, RpcError("scheduler", c.scheduler, s));
}

// What the scheduler says is paused (the tracker does not know): best effort,
// `known` false when the scheduler does not answer within 2 s.
struct Pauses {
  bool known = false;
  bool all = false;
  std::set<std::string> jobs;
  bool Of(const std::string& job) const { return all || jobs.count(job) > 0; }
};
Pauses AskPauses(const Context& c) {
  Pauses p;
  grpc::ClientContext ctx;
  c.security.Apply(&ctx);
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
  kwq::v1::ListQueuesResponse resp;
  if (!c.SchedulerStub()
           ->ListQueues(&ctx, kwq::v1::ListQueuesRequest(), &resp)
           .ok()) {
    return p;
  }
  p.known = true;
  p.all = resp.all_paused();
  p.jobs.insert(resp.paused_jobs().begin(), resp.paused_jobs().end());
  return p;
}

// A job's state in words: done (and how), PAUSED, or running.
std::string JobState(const kwq::v1::JobSummary& j, const Pauses& pauses) {
  const auto& k = j.counts();
  if (j.done()) {
    if (k.cancelled() > 0) return "cancelled";
    return k.failed() > 0 ? "done, failed" : "done";
  }
  if (pauses.Of(j.job_id())) return "PAUSED";
  return "running";
}

void PrintSummaryTable(const kwq::v1::JobSummary& s) {
  const auto& k = s.counts();
  std::cout << "job " << s.job_id() << (s.done() ? " (done)" : "") << "\n";
  PrintTable(
      {"TOTAL", "PENDING", "RUNNING", "COMPLETED", "RETRYING", "FAILED",
       "CANCELLED", "RETRIES", "RATE/S", "ETA"},
      {{Thousands(k.total()), Thousands(k.pending()),
        Thousands(k.running() + k.allocated()), Thousands(k.completed()),
        Thousands(k.error()), Thousands(k.failed()), Thousands(k.cancelled()),
        Thousands(k.retries()), FormatRate(s.rate_per_second()),
        s.done() ? "-" : FormatEta(s.eta_seconds())}});
  if (k.repeated_executions() > 0) {
    std::cout << "repeated executions: " << Thousands(k.repeated_executions())
              << " (attempts that ran more than once; see kwqctl task get)\n";
  }
  std::cout << "first submit " << Time(s.first_submit()) << ", last finish "
            << Time(s.last_finish()) << "\n";
  if (s.tags_size() > 0) {
    std::vector<std::vector<std::string>> rows;
    for (const auto& t : s.tags()) {
      rows.push_back(
          {t.tag(), Thousands(t.counts().total()),
           Thousands(t.counts().completed()), Thousands(t.counts().failed()),
           Thousands(t.counts().error()),
           Thousands(t.counts().running() + t.counts().allocated())});
    }
    std::cout << "\n";
    PrintTable({"TAG", "TOTAL", "COMPLETED", "FAILED", "RETRYING", "RUNNING"},
               rows);
  }
  if (s.recent_errors_size() > 0) {
    std::cout << "\nlatest errors:\n";
    for (const auto& e : s.recent_errors()) std::cout << "  " << e << "\n";
  }
}

int JobWatch(const Context& c, const std::string& job) {
  auto stub = c.TrackerStub();
  {
    // A job submitted a moment ago may not be known to the tracker yet: the
    // watch waits for it (up to 10 s); say so instead of sitting silent.
    grpc::ClientContext probe;
    c.Prepare(&probe);
    kwq::v1::GetJobSummaryRequest req;
    req.set_job_id(job);
    kwq::v1::JobSummary s;
    if (stub->GetJobSummary(&probe, req, &s).error_code() ==
        grpc::StatusCode::NOT_FOUND) {
      std::cerr << "kwqctl: job " << job
                << " is not known to the tracker yet; waiting up to 10 s\n";
    }
  }
  grpc::ClientContext ctx;
  c.security.Apply(&ctx);
  kwq::v1::WatchJobRequest req;
  req.set_job_id(job);
  auto reader = stub->WatchJob(&ctx, req);
  JobMonitor monitor(std::cout,
                     c.format == Format::kTable ? STDOUT_FILENO : -1);
  kwq::v1::JobSummary s, last;
  bool any = false;
  while (reader->Read(&s)) {
    any = true;
    last = s;
    if (c.format == Format::kTable) {
      monitor.Draw(s);
    } else {
      std::cout << ToJson(s) << "\n" << std::flush;
    }
  }
  grpc::Status st = reader->Finish();
  if (!st.ok()) return TrackerFail(c, st);
  if (!any || !last.done())
    return Fail(kExitFailure, "the watch ended before the job was done");
  if (c.format == Format::kTable) {
    monitor.Done();
    std::cout << "job " << job << " done: " << last.counts().completed()
              << " completed, " << last.counts().failed() << " failed, "
              << last.counts().cancelled() << " cancelled\n";
  }
  return last.counts().failed() + last.counts().cancelled() > 0 ? kExitFailure
                                                                : kExitOk;
}

int Control(const Context& c, const std::string& verb,
            const kwq::v1::Scope& scope) {
  auto stub = c.SchedulerStub();
  grpc::ClientContext ctx;
  c.Prepare(&ctx);
  grpc::Status st;
  const std::string who =
      absl::StrCat("kwqctl@", getlogin() ? getlogin() : "unknown");
  if (verb == "pause") {
    kwq::v1::PauseRequest req;
    *req.mutable_scope() = scope;
    req.set_requested_by(who);
    kwq::v1::PauseResponse resp;
    st = stub->Pause(&ctx, req, &resp);
  } else if (verb == "resume") {
    kwq::v1::ResumeRequest req;
    *req.mutable_scope() = scope;
    req.set_requested_by(who);
    kwq::v1::ResumeResponse resp;
    st = stub->Resume(&ctx, req, &resp);
  } else {
    kwq::v1::CancelRequest req;
    *req.mutable_scope() = scope;
    req.set_requested_by(who);
    kwq::v1::CancelResponse resp;
    st = stub->Cancel(&ctx, req, &resp);
  }
  if (!st.ok()) return SchedulerFail(c, st);
  if (c.format != Format::kTable) {
    std::cout << "{\"ok\":true}\n";
    return kExitOk;
  }
  const std::string what = scope.has_job_id()    ? "Job " + scope.job_id()
                           : scope.has_task_id() ? "Task " + scope.task_id()
                           : scope.has_priority()
                               ? absl::StrCat("Priority ", scope.priority())
                               : "The whole grid";
  if (verb == "pause") {
    std::cout << what
              << " is paused: its queued tasks wait and none starts until it "
                 "is resumed (running tasks finish). Every scheduler instance "
                 "obeys, also after a restart.\n";
  } else if (verb == "resume") {
    std::cout << what << " is resumed: its queued tasks may start again.\n";
  } else {
    std::cout << what
              << " is cancelled: queued tasks end CANCELLED, running ones are "
                 "told to stop. Watch it with kwqctl job watch.\n";
  }
  return kExitOk;
}

}  // namespace

int RunJob(const Context& c) {
  const std::string verb = c.args.word(1);
  std::string error;
  if (!c.args.CheckAllowed({"page_size", "page_token", "max_tags",
                            "bootstrap_servers", "topic_prefix"},
                           &error)) {
    return Fail(kExitUsage, error);
  }
  auto stub = c.TrackerStub();
  if (verb == "list") {
    long long page_size = 0;
    if (!c.args.GetInt("page_size", 0, &page_size, &error))
      return Fail(kExitUsage, error);
    kwq::v1::ListJobsRequest req;
    req.set_page_size(static_cast<int>(page_size));
    req.set_page_token(c.args.Get("page_token"));
    kwq::v1::ListJobsResponse resp;
    grpc::ClientContext ctx;
    c.Prepare(&ctx);
    grpc::Status st = stub->ListJobs(&ctx, req, &resp);
    if (!st.ok()) return TrackerFail(c, st);
    if (c.format == Format::kJson) {
      std::cout << ToJson(resp) << "\n";
    } else if (c.format == Format::kJsonl) {
      for (const auto& j : resp.jobs()) std::cout << ToJson(j) << "\n";
    } else {
      const Pauses pauses = AskPauses(c);
      std::vector<std::vector<std::string>> rows;
      for (const auto& j : resp.jobs()) {
        const auto& k = j.counts();
        rows.push_back(
            {j.job_id(), JobState(j, pauses), Thousands(k.total()),
             Thousands(k.completed()), Thousands(k.failed()),
             Thousands(k.cancelled()), Thousands(k.running() + k.allocated()),
             Thousands(k.pending() + k.error()),
             FormatRate(j.rate_per_second()), Time(j.first_submit())});
      }
      PrintTable({"JOB", "STATE", "TOTAL", "COMPLETED", "FAILED", "CANCELLED",
                  "RUNNING", "PENDING", "RATE/S", "FIRST SUBMIT"},
                 rows);
      if (!pauses.known) {
        std::cout << "(the scheduler at " << c.scheduler
                  << " did not answer: paused jobs are not marked)\n";
      }
      if (!resp.next_page_token().empty()) {
        std::cout << "more: --page-token " << resp.next_page_token() << "\n";
      }
    }
    return kExitOk;
  }
  const std::string job = c.args.word(2);
  if (verb.empty() || job.empty()) {
    return Fail(
        kExitUsage,
        "usage: kwqctl job list | job get|watch|pause|resume|cancel JOB");
  }
  if (verb == "get") {
    long long max_tags = 0;
    if (!c.args.GetInt("max_tags", 0, &max_tags, &error))
      return Fail(kExitUsage, error);
    kwq::v1::GetJobSummaryRequest req;
    req.set_job_id(job);
    req.set_max_tags(static_cast<int>(max_tags));
    kwq::v1::JobSummary resp;
    grpc::ClientContext ctx;
    c.Prepare(&ctx);
    grpc::Status st = stub->GetJobSummary(&ctx, req, &resp);
    if (!st.ok()) return TrackerFail(c, st);
    if (c.format == Format::kTable) {
      const Pauses pauses = AskPauses(c);
      if (!resp.done() && pauses.Of(job)) resp.clear_eta_seconds();
      PrintSummaryTable(resp);
      std::cout << "state " << JobState(resp, pauses)
                << (!resp.done() && pauses.Of(job)
                        ? " (nothing starts until kwqctl job resume " + job +
                              ")"
                        : "")
                << "\n";
    } else {
      std::cout << ToJson(resp) << "\n";
    }
    return kExitOk;
  }
  if (verb == "watch") return JobWatch(c, job);
  if (verb == "results") return JobResults(c, job);
  if (verb == "pause" || verb == "resume" || verb == "cancel") {
    kwq::v1::Scope scope;
    scope.set_job_id(job);
    return Control(c, verb, scope);
  }
  return Fail(kExitUsage,
              "unknown verb 'job " + verb + "' (see kwqctl --help)");
}

int RunTask(const Context& c) {
  const std::string verb = c.args.word(1);
  std::string error;
  if (!c.args.CheckAllowed({"job", "state", "tag", "page_size", "page_token"},
                           &error)) {
    return Fail(kExitUsage, error);
  }
  if (verb == "get" || verb == "why") {
    const std::string id = c.args.word(2);
    if (id.empty())
      return Fail(kExitUsage, "usage: kwqctl task " + verb + " TASK_ID");
    grpc::ClientContext ctx;
    c.Prepare(&ctx);
    if (verb == "why") {
      kwq::v1::ExplainTaskRequest req;
      req.set_task_id(id);
      kwq::v1::ExplainTaskResponse resp;
      grpc::Status st = c.SchedulerStub()->ExplainTask(&ctx, req, &resp);
      if (!st.ok()) return SchedulerFail(c, st);
      if (c.format != Format::kTable) {
        std::cout << ToJson(resp) << "\n";
      } else {
        std::cout << "task " << id << ": " << StateName(resp.state())
                  << (resp.worker_id().empty() ? "" : " on " + resp.worker_id())
                  << "\n";
        for (const auto& r : resp.reasons()) std::cout << "  - " << r << "\n";
      }
      return kExitOk;
    }
    kwq::v1::GetTaskRequest req;
    req.set_task_id(id);
    kwq::v1::TaskStatus t;
    grpc::Status st = c.TrackerStub()->GetTask(&ctx, req, &t);
    if (!st.ok()) return TrackerFail(c, st);
    if (c.format != Format::kTable) {
      std::cout << ToJson(t) << "\n";
      return kExitOk;
    }
    std::vector<std::string> tags;
    for (const auto& [k, v] : t.tags()) tags.push_back(k + "=" + v);
    std::sort(tags.begin(), tags.end());
    std::cout << "task " << t.task_id() << "  job " << t.job_id()
              << "  priority " << t.priority() << "  state "
              << StateName(t.state()) << "  attempts " << t.attempts() << "\n";
    if (!tags.empty()) std::cout << "tags " << absl::StrJoin(tags, " ") << "\n";
    if (!t.last_error().empty())
      std::cout << "last error: " << t.last_error() << "\n";
    if (t.repeated_executions() > 0) {
      std::cout << "repeated executions: " << t.repeated_executions()
                << " (an attempt ran again: its record was delivered again, "
                   "or the id was produced twice; the first outcome stands)\n";
    }
    std::vector<std::vector<std::string>> rows;
    for (const auto& a : t.history()) {
      rows.push_back({absl::StrCat(a.attempt()), StateName(a.state()),
                      a.worker_id(), Time(a.pending_time()),
                      Time(a.allocated_time()), Time(a.running_time()),
                      Time(a.finished_time()), a.error()});
    }
    PrintTable({"ATTEMPT", "STATE", "WORKER", "PENDING", "ALLOCATED", "RUNNING",
                "FINISHED", "ERROR"},
               rows);
    for (const auto& a : t.history()) {
      if (!a.waiting().empty()) {
        std::cout << "attempt " << a.attempt() << " waits: " << a.waiting()
                  << "\n";
      }
    }
    return kExitOk;
  }
  if (verb == "list") {
    kwq::v1::ListTasksRequest req;
    req.set_job_id(c.args.Get("job"));
    if (req.job_id().empty())
      return Fail(kExitUsage, "usage: kwqctl task list --job JOB");
    if (c.args.Has("state")) {
      kwq::v1::TaskState s;
      std::string name = c.args.Get("state");
      std::transform(name.begin(), name.end(), name.begin(), ::toupper);
      if (!kwq::v1::TaskState_Parse(name, &s)) {
        return Fail(
            kExitUsage,
            "--state must be one of PENDING ALLOCATED RUNNING COMPLETED "
            "ERROR FAILED CANCELLED");
      }
      req.set_state(s);
    }
    req.set_tag(c.args.Get("tag"));
    long long page_size = 0;
    if (!c.args.GetInt("page_size", 0, &page_size, &error))
      return Fail(kExitUsage, error);
    req.set_page_size(static_cast<int>(page_size));
    req.set_page_token(c.args.Get("page_token"));
    grpc::ClientContext ctx;
    c.Prepare(&ctx);
    kwq::v1::ListTasksResponse resp;
    grpc::Status st = c.TrackerStub()->ListTasks(&ctx, req, &resp);
    if (!st.ok()) return TrackerFail(c, st);
    if (c.format == Format::kJson) {
      std::cout << ToJson(resp) << "\n";
    } else if (c.format == Format::kJsonl) {
      for (const auto& t : resp.tasks()) std::cout << ToJson(t) << "\n";
    } else {
      std::vector<std::vector<std::string>> rows;
      for (const auto& t : resp.tasks()) {
        const auto* last =
            t.history().empty() ? nullptr : &t.history(t.history_size() - 1);
        rows.push_back(
            {t.task_id(), StateName(t.state()), absl::StrCat(t.attempts()),
             last ? last->worker_id() : "",
             last ? Time(last->finished_time()) : "-", t.last_error()});
      }
      PrintTable(
          {"TASK", "STATE", "ATTEMPTS", "WORKER", "FINISHED", "LAST ERROR"},
          rows);
      if (!resp.next_page_token().empty()) {
        std::cout << "more: --page-token " << resp.next_page_token() << "\n";
      }
    }
    return kExitOk;
  }
  return Fail(kExitUsage,
              "usage: kwqctl task get|why ID | task list --job JOB");
}

// kwqctl queue list: depth and oldest age per priority on the instance at
// --scheduler, and what is paused there.
int QueueList(const Context& c) {
  grpc::ClientContext ctx;
  c.Prepare(&ctx);
  kwq::v1::ListQueuesResponse resp;
  grpc::Status st =
      c.SchedulerStub()->ListQueues(&ctx, kwq::v1::ListQueuesRequest(), &resp);
  if (!st.ok()) return SchedulerFail(c, st);
  if (c.format != Format::kTable) {
    std::cout << ToJson(resp) << "\n";
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows;
  for (const auto& q : resp.queues()) {
    rows.push_back({absl::StrCat("p", q.priority()), Thousands(q.depth()),
                    q.depth() > 0
                        ? absl::StrFormat("%.1f s", q.oldest_age_seconds())
                        : "-",
                    q.paused() || resp.all_paused() ? "paused" : ""});
  }
  std::cout << "scheduler " << resp.scheduler_id() << "\n";
  PrintTable({"PRIORITY", "QUEUED", "OLDEST", ""}, rows);
  std::cout << "in flight " << Thousands(resp.in_flight()) << ", not read yet "
            << (resp.consumer_lag() < 0 ? "-" : Thousands(resp.consumer_lag()))
            << (resp.all_paused() ? ", everything paused" : "") << "\n";
  if (resp.paused_jobs_total() > 0) {
    std::cout << "paused jobs (" << resp.paused_jobs_total()
              << "): " << absl::StrJoin(resp.paused_jobs(), " ") << "\n";
  }
  return kExitOk;
}

int RunQueue(const Context& c) {
  const std::string verb = c.args.word(1);
  std::string error;
  if (!c.args.CheckAllowed({"priority"}, &error))
    return Fail(kExitUsage, error);
  if (verb == "list") return QueueList(c);
  if (verb != "pause" && verb != "resume") {
    return Fail(kExitUsage,
                "usage: kwqctl queue list | queue pause|resume [--priority P]");
  }
  kwq::v1::Scope scope;
  if (c.args.Has("priority")) {
    long long p = 0;
    if (!c.args.GetInt("priority", 0, &p, &error) || p < 0 || p > 9) {
      return Fail(kExitUsage, "--priority must be 0-9");
    }
    scope.set_priority(static_cast<int>(p));
  } else {
    scope.set_all(true);
  }
  return Control(c, verb, scope);
}

int RunWorker(const Context& c) {
  if (c.args.word(1) != "list")
    return Fail(kExitUsage, "usage: kwqctl worker list");
  std::string error;
  if (!c.args.CheckAllowed({}, &error)) return Fail(kExitUsage, error);
  grpc::ClientContext ctx;
  c.Prepare(&ctx);
  kwq::v1::ListWorkersResponse resp;
  grpc::Status st = c.SchedulerStub()->ListWorkers(
      &ctx, kwq::v1::ListWorkersRequest(), &resp);
  if (!st.ok()) return SchedulerFail(c, st);
  if (c.format == Format::kJson) {
    std::cout << ToJson(resp) << "\n";
  } else if (c.format == Format::kJsonl) {
    for (const auto& w : resp.workers()) std::cout << ToJson(w) << "\n";
  } else {
    std::vector<std::vector<std::string>> rows;
    for (const auto& w : resp.workers()) {
      rows.push_back(
          {w.worker_id(),
           w.prefetch() > 0 ? absl::StrCat(w.slots(), " (+", w.prefetch(), ")")
                            : absl::StrCat(w.slots()),
           absl::StrCat(w.in_flight()), Thousands(w.completed()),
           Thousands(w.errors()), absl::StrJoin(w.affinity_keys(), ","),
           absl::StrJoin(w.labels(), ","), Time(w.last_heartbeat()),
           w.draining() ? "draining" : ""});
    }
    std::cout << "scheduler " << resp.scheduler_id() << "\n";
    PrintTable({"WORKER", "SLOTS", "IN FLIGHT", "COMPLETED", "ERRORS",
                "AFFINITY", "LABELS", "LAST HEARTBEAT", ""},
               rows);
  }
  return kExitOk;
}

}  // namespace kwq::ctl
