// SchedulerCore, stage events: building them and folding an attempt's stages
// into one (see event_fold_window).
#include <algorithm>
#include <cmath>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "glog/logging.h"
#include "server/api/ack_codes.h"
#include "server/api/limits.h"
#include "server/api/task_validation.h"
#include "server/core/scheduler_core.h"
#include "server/core/scheduler_core_internal.h"
#include "server/util/time_util.h"

namespace kwq::scheduler {

TaskEvent SchedulerCore::MakeEvent(const Task& task, TaskState state) const {
  TaskEvent ev;
  ev.set_task_id(task.id());
  ev.set_job_id(task.job_id());
  ev.set_attempt(std::max(1, task.attempt()));
  ev.set_state(state);
  *ev.mutable_time() = ToProto(clock_->Now());
  ev.set_scheduler_id(options_.scheduler_id);
  return ev;
}

OutRecord SchedulerCore::EventRecord(const TaskEvent& ev) const {
  return {topics_.Events(), ev.job_id(), ev.SerializeAsString()};
}

void SchedulerCore::WriteHeldEvent(Lease& lease) {
  if (!lease.held_event) return;
  const Lease::HeldStage& held = *lease.held_event;
  TaskEvent ev = MakeEvent(lease.task, held.state);
  *ev.mutable_time() = ToProto(held.time);
  ev.set_worker_id(lease.worker_id);
  if (held.allocated_time != absl::InfinitePast()) {
    *ev.mutable_allocated_time() = ToProto(held.allocated_time);
    ++metrics_.events_folded;
  }
  effects_.produces.push_back({RecordsOf(EventRecord(ev)), 0});
  lease.held_event.reset();
}

void SchedulerCore::Started(Lease& lease, const Worker& w, bool completing) {
  lease.running_reported = true;
  lease.started_at = clock_->Now();
  if (lease.run_deadline == absl::InfiniteFuture()) StartTimeout(lease);
  if (lease.task.attempt() <= 1 && lease.task.has_submit_time()) {
    const double secs = absl::ToDoubleSeconds(
        clock_->Now() - FromProto(lease.task.submit_time()));
    ++metrics_.start_latency_count;
    metrics_.start_latency_sum_seconds += std::max(0.0, secs);
    for (size_t b = 0; b < SchedulerMetrics::kStartLatencyBounds.size(); ++b) {
      if (secs <= SchedulerMetrics::kStartLatencyBounds[b]) {
        ++metrics_.start_latency_buckets[b];
      }
    }
  }
  if (lease.held_event) {
    // Held in its place, carrying the ALLOCATED time.
    lease.held_event = Lease::HeldStage{kwq::v1::RUNNING, clock_->Now(),
                                        lease.held_event->time};
  } else if (completing) {
    // Held for the completion to carry (written on its own if that
    // completion is not durable and the lease then ends otherwise).
    Hold(lease, {kwq::v1::RUNNING, clock_->Now()});
  } else {
    TaskEvent ev = MakeEvent(lease.task, kwq::v1::RUNNING);
    ev.set_worker_id(w.hello.worker_id());
    effects_.produces.push_back({RecordsOf(EventRecord(ev)), 0});
  }
}

void SchedulerCore::StartTimeout(Lease& lease) const {
  const Task& t = lease.task;
  if (t.has_timeout() && FromProto(t.timeout()) > absl::ZeroDuration()) {
    lease.run_deadline = clock_->Now() + FromProto(t.timeout());
  }
}

void SchedulerCore::Hold(Lease& lease, Lease::HeldStage stage) {
  lease.held_event = stage;
  lease.held_until = clock_->Now() + options_.event_fold_window;
  held_order_.emplace_back(lease.task.id(), lease.token.lease_id());
}

void SchedulerCore::WriteHeldEvents(absl::Time now) {
  while (!held_order_.empty()) {
    const auto& [task_id, lease_id] = held_order_.front();
    auto it = leases_.find(task_id);
    if (it != leases_.end() && it->second.held_event &&
        it->second.token.lease_id() == lease_id) {
      Lease& lease = it->second;
      if (lease.held_until > now) break;
      // A lease whose COMPLETED is being made durable: that event carries the
      // held stages (if it fails, the worker sends it again, or the lease
      // ends in EndAttempt, which writes the held event).
      if (!lease.deciding) WriteHeldEvent(lease);
    }
    held_order_.pop_front();
  }
}

}  // namespace kwq::scheduler
