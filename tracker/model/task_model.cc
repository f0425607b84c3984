#include "tracker/model/task_model.h"

#include <algorithm>

#include "server/api/limits.h"

namespace kwq::tracker {

using kwq::v1::AttemptStatus;
using kwq::v1::TaskEvent;
using kwq::v1::TaskState;
using kwq::v1::TaskStatus;

namespace {

bool IsAttemptTerminal(TaskState s) {
  return s == kwq::v1::COMPLETED || s == kwq::v1::ERROR ||
         s == kwq::v1::CANCELLED || s == kwq::v1::FAILED;
}

// Rank of a non-terminal stage; terminal stages rank above all.
int StageRank(TaskState s) {
  switch (s) {
    case kwq::v1::PENDING:
      return 1;
    case kwq::v1::ALLOCATED:
      return 2;
    case kwq::v1::RUNNING:
      return 3;
    default:
      return IsAttemptTerminal(s) ? 4 : 0;
  }
}

AttemptStatus* FindOrAddAttempt(TaskStatus* task, int attempt, bool* added) {
  auto* history = task->mutable_history();
  auto it = std::lower_bound(
      history->begin(), history->end(), attempt,
      [](const AttemptStatus& a, int n) { return a.attempt() < n; });
  if (it != history->end() && it->attempt() == attempt) {
    *added = false;
    return &*it;
  }
  *added = true;
  const int index = static_cast<int>(it - history->begin());
  AttemptStatus* a = history->Add();
  a->set_attempt(attempt);
  // Move the new entry into place (attempts stay sorted).
  for (int i = history->size() - 1; i > index; --i)
    history->SwapElements(i, i - 1);
  return history->Mutable(index);
}

google::protobuf::Timestamp* StageTime(AttemptStatus* a, TaskState s) {
  switch (s) {
    case kwq::v1::PENDING:
      return a->mutable_pending_time();
    case kwq::v1::ALLOCATED:
      return a->mutable_allocated_time();
    case kwq::v1::RUNNING:
      return a->mutable_running_time();
    default:
      return a->mutable_finished_time();
  }
}

bool HasStage(const AttemptStatus& a, TaskState s) {
  switch (s) {
    case kwq::v1::PENDING:
      return a.has_pending_time();
    case kwq::v1::ALLOCATED:
      return a.has_allocated_time();
    case kwq::v1::RUNNING:
      return a.has_running_time();
    default:
      return a.has_finished_time();
  }
}

// The task-level state derived from the record.
TaskState DeriveState(const TaskStatus& task) {
  if (task.history().empty()) return kwq::v1::TASK_STATE_UNSPECIFIED;
  return task.history(task.history_size() - 1).state();
}

}  // namespace

bool IsFinal(TaskState state) {
  return state == kwq::v1::COMPLETED || state == kwq::v1::FAILED ||
         state == kwq::v1::CANCELLED;
}

ApplyOutcome ApplyEvent(const TaskEvent& ev, TaskStatus* task) {
  ApplyOutcome out;
  out.new_task = task->task_id().empty();
  out.old_state =
      out.new_task ? kwq::v1::TASK_STATE_UNSPECIFIED : task->state();
  out.new_state = out.old_state;
  if (out.new_task) {
    task->set_task_id(ev.task_id());
    task->set_job_id(ev.job_id());
    out.changed = true;
  }
  const TaskState s = ev.state();
  const int attempt = std::max(1, ev.attempt());

  // Attributes arrive with the first attempt's PENDING event.
  if (s == kwq::v1::PENDING && attempt == 1 && task->tags().empty() &&
      task->affinity_keys().empty() && task->priority() == 0 &&
      (ev.priority() != 0 || !ev.tags().empty() ||
       !ev.affinity_keys().empty())) {
    task->set_priority(ev.priority());
    *task->mutable_tags() = ev.tags();
    *task->mutable_affinity_keys() = ev.affinity_keys();
    out.tags_learned = !ev.tags().empty();
    out.priority_learned = ev.priority() != 0;
    out.changed = true;
  }

  const int latest_before =
      task->history().empty()
          ? 0
          : task->history(task->history_size() - 1).attempt();
  const bool task_final = IsFinal(task->state());
  bool added = false;
  AttemptStatus* a = FindOrAddAttempt(task, attempt, &added);
  if (added) {
    out.changed = true;
    if (attempt > 1 && attempt > latest_before) out.retry_started = true;
  }

  // Earlier stages folded into this event by the scheduler: each as if it had
  // come as an event of its own (only their times; they rank below this one).
  if (ev.has_allocated_time() && !HasStage(*a, kwq::v1::ALLOCATED)) {
    *a->mutable_allocated_time() = ev.allocated_time();
    out.changed = true;
  }
  if (ev.has_running_time() && !HasStage(*a, kwq::v1::RUNNING)) {
    *a->mutable_running_time() = ev.running_time();
    out.changed = true;
  }

  // A repeated PENDING saying why a queued attempt waits: a note, not a stage.
  if (s == kwq::v1::PENDING && !ev.waiting().empty() && !added &&
      HasStage(*a, s)) {
    if (a->state() != kwq::v1::PENDING || a->waiting() == ev.waiting()) {
      out.kind = ApplyOutcome::kDuplicate;  // it runs already, or known
    } else {
      a->set_waiting(ev.waiting());
      out.changed = true;
    }
    return out;
  }
  if (s == kwq::v1::PENDING && a->state() == kwq::v1::TASK_STATE_UNSPECIFIED) {
    a->set_waiting(ev.waiting());
  } else if (s != kwq::v1::PENDING) {
    a->clear_waiting();
  }

  // FAILED ends the task; as an attempt stage it only stamps the finish time.
  const bool task_verdict = s == kwq::v1::FAILED;
  if (HasStage(*a, s) && !(task_verdict && !task_final)) {
    if ((s == kwq::v1::COMPLETED || s == kwq::v1::ERROR) &&
        IsAttemptTerminal(a->state()) &&
        (StageTime(a, s)->seconds() != ev.time().seconds() ||
         StageTime(a, s)->nanos() != ev.time().nanos() ||
         (!ev.worker_id().empty() && ev.worker_id() != a->worker_id()))) {
      // The same attempt ran again: not a replayed event (those repeat the
      // time and worker), another execution.
      task->set_repeated_executions(task->repeated_executions() + 1);
      out.repeated_execution = true;
      out.changed = true;
    }
    if (!IsAttemptTerminal(s) || a->state() == s ||
        (task_verdict && a->state() == kwq::v1::ERROR) ||
        (s == kwq::v1::ERROR && a->state() == kwq::v1::FAILED)) {
      out.kind = ApplyOutcome::kDuplicate;
    } else {
      out.kind = ApplyOutcome::kConflict;
    }
    return out;
  }
  if (IsAttemptTerminal(s) && IsAttemptTerminal(a->state()) && !task_verdict) {
    out.kind =
        ApplyOutcome::kConflict;  // first terminal state of the attempt wins
    if (s == kwq::v1::COMPLETED || s == kwq::v1::ERROR) {
      // A second run of the attempt that ended otherwise.
      task->set_repeated_executions(task->repeated_executions() + 1);
      out.repeated_execution = true;
      out.changed = true;
    }
    return out;
  }

  // Fill in the stage.
  if (!HasStage(*a, s)) *StageTime(a, s) = ev.time();
  out.changed = true;
  if (!ev.worker_id().empty() && s != kwq::v1::PENDING)
    a->set_worker_id(ev.worker_id());
  if (!ev.scheduler_id().empty()) a->set_scheduler_id(ev.scheduler_id());
  if (s == kwq::v1::COMPLETED) a->set_result_size(ev.result_size());
  if (!ev.error().empty()) {
    // Bounded whatever a producer wrote into the events topic.
    const std::string error = api::Truncated(ev.error(), api::kMaxErrorBytes);
    a->set_error(error);
    task->set_last_error(error);
  }
  if (s == kwq::v1::ERROR) a->set_retryable(ev.retryable());
  if (StageRank(s) > StageRank(a->state())) {
    a->set_state(s);
    if (s == kwq::v1::ERROR) out.attempt_errored = true;
  } else if (task_verdict && a->state() == kwq::v1::ERROR) {
    a->set_state(kwq::v1::FAILED);  // the attempt's error was the last one
  }
  task->set_attempts(std::max(task->attempts(), attempt));

  if (task_final) {
    out.kind =
        ApplyOutcome::kStale;  // history only; a finished task stays finished
    return out;
  }
  const int latest = task->history(task->history_size() - 1).attempt();
  if (attempt < latest && !task_verdict) {
    out.kind = ApplyOutcome::kStale;
    return out;
  }
  TaskState derived = DeriveState(*task);
  if (task_verdict) derived = kwq::v1::FAILED;
  if (s == kwq::v1::CANCELLED) derived = kwq::v1::CANCELLED;
  task->set_state(derived);
  out.new_state = derived;
  out.finished = IsFinal(derived);
  return out;
}

}  // namespace kwq::tracker
