#include "server/submit_admission.h"

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "kwq/v1/control.pb.h"
#include "server/api/task_events.h"

namespace kwq::scheduler {

SubmitAdmission::SubmitAdmission(Options options)
    : options_(std::move(options)), topics_(options_.topic_prefix) {}

absl::Status SubmitAdmission::Admit(const kwq::v1::SubmitRequest& request,
                                    const std::string& submitter,
                                    const google::protobuf::Timestamp& now,
                                    kwq::v1::SubmitResponse* response,
                                    Plan* plan) {
  if (request.tasks_size() == 0 || request.tasks_size() > 10000) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tasks: a batch holds 1-10000 tasks, not ", request.tasks_size()));
  }
  for (int i = 0; i < request.tasks_size(); ++i) {
    if (absl::Status s =
            api::ValidateTask(request.tasks(i), i, options_.limits);
        !s.ok()) {
      return s;
    }
  }
  const std::string* previous_job = nullptr;  // a Submit is mostly one job
  for (const kwq::v1::Task& in : request.tasks()) {
    if (previous_job != nullptr && *previous_job == in.job_id()) continue;
    previous_job = &in.job_id();
    if (!FirstSubmitOfJob(in.job_id())) continue;
    kwq::v1::ControlRecord reg;
    reg.mutable_scope()->set_job_id(in.job_id());
    *reg.mutable_time() = now;
    reg.set_requested_by(submitter);
    plan->first.push_back({topics_.Jobs(), in.job_id(), reg.SerializeAsString(),
                           /*urgent=*/true});
    plan->new_jobs.push_back(in.job_id());
  }
  // Urgent: the caller waits. A large Submit goes batched: its caller waits
  // for all of it, and sending each record at once would cost the broker
  // dozens of small requests per Submit.
  const bool batched = request.tasks_size() >= options_.batched_from_tasks;
  // The ids seen recently (this request's earlier tasks included), decided
  // under one lock.
  std::vector<bool> duplicate(request.tasks_size(), false);
  {
    absl::MutexLock lock(&mu_);
    for (int i = 0; i < request.tasks_size(); ++i) {
      const std::string& id = request.tasks(i).id();
      if (!id.empty()) duplicate[i] = SeenRecentlyLocked(id);
    }
  }
  kwq::v1::Task task;  // reused: a copy keeps the memory of the last one
  for (int i = 0; i < request.tasks_size(); ++i) {
    task = request.tasks(i);
    if (task.id().empty()) {
      task.set_id(NewTaskId());
    } else if (duplicate[i]) {
      response->add_task_ids(task.id());
      response->add_duplicate_ids(task.id());
      continue;
    }
    task.set_attempt(1);
    task.set_infra_failures(0);
    task.set_task_errors(0);
    task.clear_not_before();
    if (!task.has_submit_time()) *task.mutable_submit_time() = now;
    response->add_task_ids(task.id());
    plan->ids.push_back(task.id());
    plan->task_record.push_back(plan->first.size());
    plan->first.push_back({topics_.ForPriority(task.priority()), task.id(),
                           task.SerializeAsString(), /*urgent=*/true, batched});
    plan->pending_events.push_back(
        {topics_.Events(), task.job_id(),
         api::FirstPendingEvent(task, options_.scheduler_id)
             .SerializeAsString(),
         /*urgent=*/true, batched});
  }
  return absl::OkStatus();
}

void SubmitAdmission::Forget(const std::vector<std::string>& ids,
                             const std::vector<std::string>& jobs) {
  absl::MutexLock lock(&mu_);
  for (const auto& id : ids) seen_.erase(id);
  for (const auto& job : jobs) registered_.erase(job);
}

std::string SubmitAdmission::NewTaskId() {
  return absl::StrCat(options_.scheduler_id, "-",
                      absl::ToUnixMicros(absl::Now()), "-", next_id_++);
}

bool SubmitAdmission::SeenRecentlyLocked(const std::string& id) {
  if (!seen_.insert(id).second) return true;
  seen_order_.push_back(id);
  while (seen_order_.size() > options_.dedup_window_ids) {
    seen_.erase(seen_order_.front());
    seen_order_.pop_front();
  }
  return false;
}

bool SubmitAdmission::FirstSubmitOfJob(const std::string& job) {
  absl::MutexLock lock(&mu_);
  if (!registered_.insert(job).second) return false;
  registered_order_.push_back(job);
  while (registered_order_.size() > options_.known_jobs) {
    registered_.erase(registered_order_.front());
    registered_order_.pop_front();
  }
  return true;
}

}  // namespace kwq::scheduler
