#include "server/core/control_state.h"

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "server/api/priorities.h"
#include "server/api/task_validation.h"

namespace kwq::scheduler {
namespace {

using Kind = ControlChange::Kind;

absl::Status Invalid(const std::string& msg) {
  return absl::InvalidArgumentError(msg);
}

bool IsPrintable(const std::string& s) {
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f) return false;
  }
  return true;
}

}  // namespace

std::string ControlState::Key(const kwq::v1::Scope& scope, bool cancel) {
  const std::string kind = cancel ? "cancel/" : "pause/";
  switch (scope.target_case()) {
    case kwq::v1::Scope::kAll:
      return kind + "all";
    case kwq::v1::Scope::kPriority:
      return absl::StrCat(kind, "p", scope.priority());
    case kwq::v1::Scope::kJobId:
      return kind + "job/" + scope.job_id();
    case kwq::v1::Scope::kTaskId:
      return kind + "task/" + scope.task_id();
    default:
      return "";
  }
}

absl::Status ControlState::ValidateRequest(const kwq::v1::Scope& scope,
                                           bool cancel,
                                           const std::string& requested_by) {
  if (requested_by.size() > kMaxRequestedByBytes) {
    return Invalid(absl::StrCat("requested_by has ", requested_by.size(),
                                " bytes; at most ", kMaxRequestedByBytes));
  }
  if (!IsPrintable(requested_by)) {
    return Invalid("requested_by must not hold control characters");
  }
  switch (scope.target_case()) {
    case kwq::v1::Scope::kAll:
      if (cancel) {
        return Invalid("cancel applies to a job_id or a task_id, not to all");
      }
      if (!scope.all()) return Invalid("scope.all must be true");
      return absl::OkStatus();
    case kwq::v1::Scope::kPriority:
      if (cancel) {
        return Invalid(
            "cancel applies to a job_id or a task_id, not to a priority");
      }
      if (!api::IsValidPriority(scope.priority())) {
        return Invalid(absl::StrCat("scope.priority must be 0-",
                                    api::kMaxPriority, ", not ",
                                    scope.priority()));
      }
      return absl::OkStatus();
    case kwq::v1::Scope::kJobId:
      if (!api::IsValidId(scope.job_id())) {
        return Invalid(
            "scope.job_id must be 1-128 characters of [A-Za-z0-9._:-]");
      }
      return absl::OkStatus();
    case kwq::v1::Scope::kTaskId:
      if (!cancel) {
        return Invalid(
            "pause and resume apply to all, a priority or a job; a single "
            "task can be cancelled");
      }
      if (!api::IsValidId(scope.task_id())) {
        return Invalid(
            "scope.task_id must be 1-128 characters of [A-Za-z0-9._:-]");
      }
      return absl::OkStatus();
    default:
      return Invalid("scope must set one of all, priority, job_id, task_id");
  }
}

absl::StatusOr<ControlChange> ControlState::Decode(const std::string& key,
                                                   const std::string& value) {
  ControlChange c;
  bool cancel = false;
  int p = -1;
  if (key == "pause/all") {
    c.kind = Kind::kPauseAll;
  } else if (absl::StartsWith(key, "pause/p") &&
             absl::SimpleAtoi(key.substr(7), &p) && api::IsValidPriority(p) &&
             key == absl::StrCat("pause/p", p)) {
    c.kind = Kind::kPausePriority;
    c.priority = p;
  } else if (absl::StartsWith(key, "pause/job/") &&
             api::IsValidId(key.substr(10))) {
    c.kind = Kind::kPauseJob;
    c.id = key.substr(10);
  } else if (absl::StartsWith(key, "cancel/job/") &&
             api::IsValidId(key.substr(11))) {
    c.kind = Kind::kCancelJob;
    c.id = key.substr(11);
    cancel = true;
  } else if (absl::StartsWith(key, "cancel/task/") &&
             api::IsValidId(key.substr(12))) {
    c.kind = Kind::kCancelTask;
    c.id = key.substr(12);
    cancel = true;
  } else {
    return Invalid(
        "not a control key (pause/all, pause/p<0-9>, "
        "pause/job/<id>, cancel/job/<id>, cancel/task/<id>)");
  }
  if (value.empty()) return c;  // a tombstone: lifted
  kwq::v1::ControlRecord rec;
  if (!rec.ParseFromString(value)) {
    return Invalid("value is not a kwq.v1.ControlRecord");
  }
  if (Key(rec.scope(), cancel) != key) {
    return Invalid("the record's scope does not match its key");
  }
  if (rec.paused() == cancel || rec.cancelled() != cancel) {
    return Invalid(cancel ? "a cancel record must say cancelled (only)"
                          : "a pause record must say paused (only)");
  }
  if (rec.requested_by().size() > kMaxRequestedByBytes) {
    return Invalid("requested_by is too long");
  }
  c.set = true;
  c.requested_by = rec.requested_by();
  return c;
}

void ControlState::Apply(const ControlChange& c) {
  auto set_entry = [&](std::map<std::string, std::string>& m) {
    if (c.set) {
      m[c.id] = c.requested_by;
    } else {
      m.erase(c.id);
    }
  };
  switch (c.kind) {
    case Kind::kPauseAll:
      paused_all_ = c.set;
      break;
    case Kind::kPausePriority:
      if (c.set) {
        paused_priorities_.insert(c.priority);
      } else {
        paused_priorities_.erase(c.priority);
      }
      break;
    case Kind::kPauseJob:
      if (c.set) {
        paused_jobs_.insert(c.id);
      } else {
        paused_jobs_.erase(c.id);
      }
      break;
    case Kind::kCancelJob:
      set_entry(cancelled_jobs_);
      break;
    case Kind::kCancelTask:
      set_entry(cancelled_tasks_);
      break;
  }
}

std::string ControlState::CancelledBy(const kwq::v1::Task& task) const {
  if (auto t = cancelled_tasks_.find(task.id()); t != cancelled_tasks_.end()) {
    return t->second;
  }
  if (auto j = cancelled_jobs_.find(task.job_id());
      j != cancelled_jobs_.end()) {
    return j->second;
  }
  return "";
}

void ControlState::RememberJob(const std::string& job_id) {
  if (!known_jobs_.insert(job_id).second) return;
  known_jobs_order_.push_back(job_id);
  while (known_jobs_order_.size() > known_jobs_cap_) {
    known_jobs_.erase(known_jobs_order_.front());
    known_jobs_order_.pop_front();
  }
}

}  // namespace kwq::scheduler
