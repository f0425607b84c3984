#include "tracker/model/job_aggregate.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "server/api/limits.h"
#include "server/util/time_util.h"

namespace kwq::tracker {

using kwq::v1::StateCounts;
using kwq::v1::TaskState;

namespace {

void Bump(StateCounts* c, TaskState s, int64_t d) {
  switch (s) {
    case kwq::v1::PENDING:
      c->set_pending(c->pending() + d);
      break;
    case kwq::v1::ALLOCATED:
      c->set_allocated(c->allocated() + d);
      break;
    case kwq::v1::RUNNING:
      c->set_running(c->running() + d);
      break;
    case kwq::v1::COMPLETED:
      c->set_completed(c->completed() + d);
      break;
    case kwq::v1::ERROR:
      c->set_error(c->error() + d);
      break;
    case kwq::v1::FAILED:
      c->set_failed(c->failed() + d);
      break;
    case kwq::v1::CANCELLED:
      c->set_cancelled(c->cancelled() + d);
      break;
    default:
      break;
  }
}

void EarliestTime(google::protobuf::Timestamp* slot,
                  const google::protobuf::Timestamp& t) {
  if ((slot->seconds() == 0 && slot->nanos() == 0) ||
      FromProto(t) < FromProto(*slot)) {
    *slot = t;
  }
}

void LatestTime(google::protobuf::Timestamp* slot,
                const google::protobuf::Timestamp& t) {
  if (FromProto(t) > FromProto(*slot)) *slot = t;
}

void CountFinishIn(int64_t sec, internal::Aggregate* agg) {
  auto* recent = agg->mutable_recent();
  auto slot = std::find_if(
      recent->begin(), recent->end(),
      [&](const internal::SecondCount& sc) { return sc.second() == sec; });
  if (slot != recent->end()) {
    slot->set_finished(slot->finished() + 1);
    return;
  }
  internal::SecondCount sc;
  sc.set_second(sec);
  sc.set_finished(1);
  const int pos = static_cast<int>(
      std::find_if(recent->begin(), recent->end(),
                   [&](const auto& x) { return x.second() > sec; }) -
      recent->begin());
  recent->Add(std::move(sc));  // invalidates iterators: pos is an index
  for (int i = recent->size() - 1; i > pos; --i) {
    recent->SwapElements(i, i - 1);
  }
  while (recent->size() > kRecentSeconds) recent->DeleteSubrange(0, 1);
}

// The counts of `priority` in a job aggregate (kept sorted by priority).
StateCounts* PriorityCountsOf(internal::Aggregate* agg, int32_t priority) {
  auto* list = agg->mutable_by_priority();
  int pos = 0;
  while (pos < list->size() && list->Get(pos).priority() < priority) ++pos;
  if (pos < list->size() && list->Get(pos).priority() == priority) {
    return list->Mutable(pos)->mutable_counts();
  }
  internal::PriorityCounts* added = list->Add();
  added->set_priority(priority);
  for (int i = list->size() - 1; i > pos; --i) list->SwapElements(i, i - 1);
  return list->Mutable(pos)->mutable_counts();
}

}  // namespace

void ApplyToJob(const ApplyOutcome& o, const kwq::v1::TaskEvent& ev,
                const std::string& task_id, int32_t priority,
                internal::Aggregate* agg) {
  StateCounts* c = agg->mutable_counts();
  if (o.new_task) c->set_total(c->total() + 1);
  if (o.old_state != o.new_state) {
    Bump(c, o.old_state, -1);
    Bump(c, o.new_state, +1);
  }
  // By priority: an event's priority is untrusted input, 0-9 is what Submit
  // accepts.
  priority = std::clamp(priority, 0, 9);
  StateCounts* pc = PriorityCountsOf(agg, priority);
  if (o.priority_learned && !o.new_task && priority != 0) {
    // Counted under 0 until now (its first events came before its PENDING).
    StateCounts* zero = PriorityCountsOf(agg, 0);
    zero->set_total(zero->total() - 1);
    Bump(zero, o.old_state, -1);
    pc = PriorityCountsOf(agg, priority);  // the list may have moved
    pc->set_total(pc->total() + 1);
    Bump(pc, o.old_state, +1);
  }
  if (o.new_task) pc->set_total(pc->total() + 1);
  if (o.old_state != o.new_state) {
    Bump(pc, o.old_state, -1);
    Bump(pc, o.new_state, +1);
  }
  if (o.retry_started) c->set_retries(c->retries() + 1);
  if (o.repeated_execution) {
    c->set_repeated_executions(c->repeated_executions() + 1);
  }
  if (ev.state() == kwq::v1::PENDING && ev.attempt() <= 1) {
    EarliestTime(agg->mutable_first_submit(), ev.time());
  }
  if (o.finished) {
    LatestTime(agg->mutable_last_finish(), ev.time());
    CountFinishIn(ev.time().seconds(), agg);
  }
  if (o.attempt_errored && !ev.error().empty()) {
    auto* errors = agg->mutable_recent_errors();
    // Cut: a summary (and a page of ListJobs) stays small whatever the
    // workers wrote; the whole text is on the task.
    errors->Add(api::Truncated(
        absl::StrCat(task_id, " (attempt ", ev.attempt(), "): ", ev.error()),
        kMaxSummaryErrorBytes));
    for (int i = errors->size() - 1; i > 0; --i) {
      errors->SwapElements(i, i - 1);
    }
    while (errors->size() > kRecentErrors) errors->RemoveLast();
  }
}

bool TagsChange(const ApplyOutcome& o, const kwq::v1::TaskStatus& task) {
  return o.tags_learned ||
         (!task.tags().empty() &&
          (o.old_state != o.new_state || o.retry_started || o.finished));
}

void ApplyToTag(const ApplyOutcome& o, const kwq::v1::TaskEvent& ev,
                const kwq::v1::TaskStatus& task, internal::Aggregate* agg) {
  StateCounts* tc = agg->mutable_counts();
  if (o.tags_learned) {
    tc->set_total(tc->total() + 1);
    Bump(tc, o.new_state, +1);
    tc->set_retries(tc->retries() + std::max(0, task.attempts() - 1));
  } else {
    if (o.old_state != o.new_state) {
      Bump(tc, o.old_state, -1);
      Bump(tc, o.new_state, +1);
    }
    if (o.retry_started) tc->set_retries(tc->retries() + 1);
  }
  if (ev.state() == kwq::v1::PENDING && ev.attempt() <= 1) {
    EarliestTime(agg->mutable_first_submit(), ev.time());
  }
  if (o.finished) LatestTime(agg->mutable_last_finish(), ev.time());
}

}  // namespace kwq::tracker
