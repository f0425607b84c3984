// SchedulerCore, dispatch: who runs what next (strict priority, labels, soft
// affinity), the metrics and Explain.
#include <algorithm>
#include <cmath>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "glog/logging.h"
#include "google/protobuf/unknown_field_set.h"
#include "server/api/ack_codes.h"
#include "server/api/limits.h"
#include "server/api/task_validation.h"
#include "server/core/scheduler_core.h"
#include "server/core/scheduler_core_internal.h"
#include "server/util/time_util.h"

namespace kwq::scheduler {

namespace {
constexpr int kInversionScan = 16;
// Tasks from the head of a priority queue that soft affinity looks through.
constexpr size_t kAffinityScan = 1024;
}  // namespace

bool SchedulerCore::Eligible(const Worker& w, const Task& task) const {
  for (const std::string& label : task.required_labels()) {
    if (!w.labels.count(label)) return false;
  }
  return true;
}

bool SchedulerCore::HoldsKey(const Worker& w, const Task& task) {
  for (const std::string& k : task.affinity_keys()) {
    if (w.affinity.count(k)) return true;
  }
  return false;
}

bool SchedulerCore::HeldForAffinity(const Queued& q, absl::Time now) const {
  if (q.task.affinity_keys().empty() ||
      options_.affinity_wait <= absl::ZeroDuration() ||
      (q.hold_start != absl::InfiniteFuture() &&
       now - q.hold_start >= options_.affinity_wait)) {
    return false;
  }
  // Held already: a worker held its key then; the wait is bounded anyway
  // (saves a scan of every worker per held task per dispatch).
  if (q.hold_start != absl::InfiniteFuture()) return true;
  // Worth waiting only if a connected worker holds a key (it may free a slot).
  for (const auto& [conn, w] : workers_) {
    if (!w.draining && Eligible(w, q.task) && HoldsKey(w, q.task)) return true;
  }
  return false;
}

SchedulerMetrics SchedulerCore::metrics() const {
  SchedulerMetrics m = metrics_;
  const absl::Time now = clock_->Now();
  // One pass over the queues: the oldest task per priority, and the tasks no
  // connected worker has the labels for.
  for (int p = 0; p < kNumPriorities; ++p) {
    m.parked_in_memory += queues_.parked(p);
    absl::Time oldest = absl::InfiniteFuture();
    for (const Queued& e : queues_.ready(p)) {
      if (e.task.has_submit_time()) {
        oldest = std::min(oldest, FromProto(e.task.submit_time()));
      }
      bool runnable = false;
      for (const auto& [conn, w] : workers_) {
        if (Eligible(w, e.task)) {
          runnable = true;
          break;
        }
      }
      if (!runnable) ++m.unrunnable;
    }
    m.oldest_queued_seconds[static_cast<size_t>(p)] =
        oldest == absl::InfiniteFuture()
            ? 0
            : std::max(0.0, absl::ToDoubleSeconds(now - oldest));
  }
  return m;
}

void SchedulerCore::Dispatch() {
  if (!leasing_ || control_.all_paused()) return;
  std::vector<ConnId> ready;
  for (const auto& [conn, w] : workers_) {
    if (w.credits > 0 && !w.draining) ready.push_back(conn);
  }
  if (ready.empty()) return;
  const absl::Time now = clock_->Now();
  dispatch_now_ = now;  // Assign judges inversions at the same instant
  // The ready worker with the most free credits that can run `task` (and, with
  // `keyed`, holds one of its affinity keys); ready.size() if none.
  auto pick = [&](const Task& task, bool keyed) {
    size_t best = ready.size();
    int best_credits = 0;
    for (size_t r = 0; r < ready.size(); ++r) {
      Worker& w = workers_[ready[r]];
      if (w.credits > best_credits && Eligible(w, task) &&
          (!keyed || HoldsKey(w, task))) {
        best = r;
        best_credits = w.credits;
      }
    }
    return best;
  };
  auto assign = [&](std::deque<Queued>& queue, size_t i, size_t r) {
    const ConnId conn = ready[r];
    Queued taken = std::move(queue[i]);
    queue.erase(queue.begin() + static_cast<long>(i));
    Worker& w = workers_[conn];
    Assign(conn, w, std::move(taken));
    if (w.credits == 0) ready.erase(ready.begin() + static_cast<long>(r));
  };
  for (int p = kMaxPriority; p >= 0 && !ready.empty(); --p) {
    if (control_.priority_paused(p)) continue;
    auto& queue = queues_.ready(p);
    if (!control_.paused_jobs().empty()) {
      // Tasks of paused jobs out of the way until the job resumes (still
      // counted as buffered).
      for (size_t i = 0; i < queue.size();) {
        if (control_.job_paused(queue[i].task.job_id())) {
          Park(std::move(queue[i]));
          queue.erase(queue.begin() + static_cast<long>(i));
        } else {
          ++i;
        }
      }
    }
    // Pass 1, soft affinity: tasks (of this priority, within a window from the
    // head) go to a free worker holding one of their keys. Skipped when no free
    // worker holds any key: it would look at up to kAffinityScan tasks for
    // nothing, on every dispatch.
    const bool keyed_worker_ready =
        std::any_of(ready.begin(), ready.end(),
                    [&](ConnId c) { return !workers_[c].affinity.empty(); });
    size_t scanned = 0;
    for (size_t i = 0; keyed_worker_ready && i < queue.size() &&
                       !ready.empty() && scanned < kAffinityScan;
         ++scanned) {
      if (queue[i].task.affinity_keys().empty()) {
        ++i;
        continue;
      }
      const size_t r = pick(queue[i].task, /*keyed=*/true);
      if (r == ready.size()) {
        ++i;
        continue;
      }
      ++metrics_.affinity_hits;
      assign(queue, i, r);
    }
    // Pass 2, in order: the rest to any eligible worker, except tasks waiting
    // (boundedly) for a worker holding their key. Held tasks are skipped, at
    // most kAffinityScan of them per dispatch: past that this round ends (a
    // lower priority must not go while a task here might) and the next event
    // or tick goes on; holds end within affinity_wait.
    size_t held = 0;
    for (size_t i = 0; i < queue.size() && !ready.empty();) {
      Queued& q = queue[i];
      const size_t r = pick(q.task, /*keyed=*/false);
      if (r == ready.size()) {
        ++i;  // nobody connected can run it now; lower tasks may still go
        continue;
      }
      if (!q.task.affinity_keys().empty()) {
        const size_t m = pick(q.task, /*keyed=*/true);
        if (m != ready.size()) {
          ++metrics_.affinity_hits;
          assign(queue, i, m);
          continue;
        }
        if (HeldForAffinity(q, now)) {
          if (q.hold_start == absl::InfiniteFuture()) {
            q.hold_start = now;
            ++metrics_.affinity_holds;
          }
          if (++held >= kAffinityScan) {
            UpdateBackpressure(p);
            return;
          }
          ++i;  // waits for a worker with its key; lower tasks may still go
          continue;
        }
        ++metrics_.affinity_misses;
      }
      assign(queue, i, r);
    }
    UpdateBackpressure(p);
  }
}

void SchedulerCore::ReportWaiting() {
  const absl::Time now = clock_->Now();
  if (now < next_waiting_scan_) return;
  next_waiting_scan_ = now + absl::Seconds(1);
  for (int p = 0; p < kNumPriorities; ++p) {
    for (Queued& q : queues_.ready(p)) {
      if (q.waiting_reported || q.task.required_labels().empty()) continue;
      bool someone_can = false;
      for (const auto& [conn, w] : workers_) {
        if (Eligible(w, q.task)) {
          someone_can = true;
          break;
        }
      }
      if (someone_can) continue;
      q.waiting_reported = true;
      TaskEvent ev = MakeEvent(q.task, kwq::v1::PENDING);
      ev.set_waiting(absl::StrCat("no connected worker has labels [",
                                  absl::StrJoin(q.task.required_labels(), ", "),
                                  "]"));
      effects_.produces.push_back({RecordsOf(EventRecord(ev)), 0});
    }
  }
}

void SchedulerCore::Assign(ConnId conn, Worker& w, Queued q) {
  if (leases_.contains(q.task.id())) {
    // Another record of a task that runs here already (its id produced
    // twice, or a retry record next to a redelivered original): never two
    // leases of one task; the running attempt decides for the task.
    ++metrics_.duplicate_records;
    ledger_.Decide(q.pos);
    return;
  }
  const int p = q.task.priority();
  // Measure, not assume: a higher-priority task this worker could run is still
  // waiting.
  for (int hp = p + 1; hp < kNumPriorities; ++hp) {
    const auto& hq = queues_.ready(hp);
    for (size_t i = 0; i < hq.size() && i < kInversionScan; ++i) {
      // Paused tasks and tasks waiting (boundedly) for a worker with their
      // affinity key are not available to this worker by policy.
      if (control_.IsPaused(hq[i].task) ||
          (!HoldsKey(w, hq[i].task) && HeldForAffinity(hq[i], dispatch_now_))) {
        continue;
      }
      if (Eligible(w, hq[i].task)) {
        ++metrics_.priority_inversions;
        LOG(ERROR) << "priority inversion: p" << p << " task " << q.task.id()
                   << " dispatched while p" << hp << " task " << hq[i].task.id()
                   << " waits";
        hp = kNumPriorities;
        break;
      }
    }
  }
  --w.credits;
  ++metrics_.dispatched;
  Lease lease;
  lease.pos = q.pos;
  lease.conn = conn;
  lease.deadline = clock_->Now() + options_.lease_period;
  lease.token.set_task_id(q.task.id());
  lease.token.set_attempt(q.task.attempt());
  lease.worker_id = w.hello.worker_id();
  lease.token.set_lease_id(signer_.Issue(options_.scheduler_id, next_lease_++,
                                         q.task.id(), q.task.attempt(),
                                         lease.worker_id));
  lease.task = std::move(q.task);
  // A worker that prefetches may queue the task: its timeout then starts
  // with its RUNNING update (Started).
  if (w.hello.prefetch() == 0) StartTimeout(lease);

  SchedulerMessage msg;
  auto* a = msg.mutable_assignment();
  if (!q.wire.empty()) {
    // The record's bytes as the task field, unparsed: an unknown field is
    // serialised as it is, and on the wire a length-delimited field 1 is
    // exactly `Task task = 1`. Saves copying the task, destroying the copy
    // and serialising it again (the worker parses the same bytes).
    a->GetReflection()
        ->MutableUnknownFields(a)
        ->AddLengthDelimited(kwq::v1::Assignment::kTaskFieldNumber)
        ->swap(q.wire);
  } else {
    *a->mutable_task() = lease.task;
  }
  *a->mutable_token() = lease.token;
  *a->mutable_lease_deadline() = ToProto(lease.deadline);
  effects_.sends.push_back({conn, std::move(msg)});

  if (options_.event_fold_window > absl::ZeroDuration()) {
    Hold(lease, {kwq::v1::ALLOCATED, clock_->Now()});
  } else {
    TaskEvent ev = MakeEvent(lease.task, kwq::v1::ALLOCATED);
    ev.set_worker_id(w.hello.worker_id());
    effects_.produces.push_back({RecordsOf(EventRecord(ev)), 0});
  }

  w.task_ids.insert(lease.task.id());
  std::string id = lease.task.id();
  leases_.emplace(std::move(id), std::move(lease));
}

std::vector<WorkerView> SchedulerCore::Workers() const {
  std::vector<WorkerView> out;
  for (const auto& [conn, w] : workers_) {
    out.push_back({conn, w.hello, w.credits,
                   static_cast<int>(w.task_ids.size()), w.connected_at,
                   w.last_heartbeat, w.completed, w.errors, w.draining});
  }
  return out;
}

std::vector<std::string> SchedulerCore::Explain(const std::string& task_id,
                                                TaskState* state,
                                                std::string* worker) const {
  std::vector<std::string> reasons;
  *state = kwq::v1::TASK_STATE_UNSPECIFIED;
  if (auto l = leases_.find(task_id); l != leases_.end()) {
    *state = kwq::v1::ALLOCATED;
    if (auto w = workers_.find(l->second.conn); w != workers_.end()) {
      *worker = w->second.hello.worker_id();
    }
    *state = l->second.running_reported ? kwq::v1::RUNNING : kwq::v1::ALLOCATED;
    if (l->second.conn == 0) {
      reasons.push_back(absl::StrCat(
          "its worker disconnected (attempt ", l->second.token.attempt(),
          "); waiting for it to reconnect until ",
          absl::FormatTime(l->second.deadline), ", then it is retried"));
      return reasons;
    }
    reasons.push_back(absl::StrCat(
        l->second.running_reported ? "running on worker "
                                   : "assigned to worker ",
        *worker, " (attempt ", l->second.token.attempt(), ")",
        l->second.progress > 0
            ? absl::StrCat(", ", static_cast<int>(l->second.progress * 100),
                           "% done")
            : ""));
    return reasons;
  }
  const Task* found = nullptr;
  const Queued* queued = nullptr;
  if (auto f = queues_.Find(task_id)) {
    found = &f->q->task;
    if (f->where == TaskQueues::Where::kDelayed) {
      reasons.push_back(absl::StrCat("retry backoff until ",
                                     absl::FormatTime(f->due), " (attempt ",
                                     found->attempt(), ")"));
    } else if (f->where == TaskQueues::Where::kReady) {
      queued = f->q;
    }
  }
  if (found == nullptr) return reasons;
  *state = kwq::v1::PENDING;
  if (control_.all_paused()) reasons.push_back("paused: all dispatch");
  if (control_.priority_paused(found->priority())) {
    reasons.push_back(absl::StrCat("paused: priority ", found->priority()));
  }
  if (control_.job_paused(found->job_id())) {
    reasons.push_back(absl::StrCat("paused: job ", found->job_id()));
  }
  if (queued != nullptr && HeldForAffinity(*queued, clock_->Now())) {
    reasons.push_back(absl::StrCat(
        "waiting up to ", absl::FormatDuration(options_.affinity_wait),
        " for a free worker holding ",
        absl::StrJoin(found->affinity_keys(), " or ")));
  }
  if (!leasing_)
    reasons.push_back("this scheduler is draining: it assigns nothing");
  bool any_eligible = false, any_free = false;
  for (const auto& [conn, w] : workers_) {
    if (Eligible(w, *found)) {
      any_eligible = true;
      if (w.credits > 0 && !w.draining) any_free = true;
    }
  }
  if (!any_eligible) {
    reasons.push_back(
        found->required_labels_size() > 0
            ? absl::StrCat("no connected worker has labels [",
                           absl::StrJoin(found->required_labels(), ", "), "]")
            : "no worker is connected");
  } else if (!any_free) {
    reasons.push_back("every eligible worker is busy (no free slots)");
  }
  size_t higher = 0;
  for (int p = found->priority() + 1; p < kNumPriorities; ++p)
    higher += buffered(p);
  if (higher > 0) {
    reasons.push_back(
        absl::StrCat("behind ", higher, " higher-priority tasks"));
  }
  if (reasons.empty()) reasons.push_back("queued; about to be dispatched");
  return reasons;
}

}  // namespace kwq::scheduler
