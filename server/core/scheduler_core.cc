#include "server/core/scheduler_core.h"

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
#include "server/util/time_util.h"

namespace kwq::scheduler {

using kwq::v1::SchedulerMessage;
using kwq::v1::Task;
using kwq::v1::TaskEvent;
using kwq::v1::TaskState;

namespace {
using api::kAckFailedPrecondition;
using api::kAckInvalidArgument;
using api::kAckOk;
using api::kAckUnavailable;
using api::kMaxPriority;
using api::kNumPriorities;
constexpr int kInversionScan = 16;
// Tasks from the head of a priority queue that soft affinity looks through.
constexpr size_t kAffinityScan = 1024;
}  // namespace

SchedulerCore::SchedulerCore(SchedulerOptions options, const Clock* clock,
                             uint64_t random_seed)
    : options_(std::move(options)),
      topics_(options_.topic_prefix),
      control_(options_.known_jobs),
      signer_(options_.lease_key),
      group_lease_key_(!options_.lease_key.empty()),
      clock_(clock),
      rng_(random_seed | 1) {}

Effects SchedulerCore::TakeEffects() {
  Effects out;
  std::swap(out, effects_);
  return out;
}

size_t SchedulerCore::buffered(int priority) const {
  // Paused jobs' tasks are not counted: they are bounded by their own memory
  // cap (the rest goes to the parked topic) and must not hold others back.
  return queues_.buffered(priority);
}

size_t SchedulerCore::buffered() const {
  size_t n = 0;
  for (int p = 0; p < kNumPriorities; ++p) n += buffered(p);
  return n;
}

uint64_t SchedulerCore::NextRandom() {
  // xorshift64*: deterministic for a given seed, which the tests rely on.
  rng_ ^= rng_ >> 12;
  rng_ ^= rng_ << 25;
  rng_ ^= rng_ >> 27;
  return rng_ * 2685821657736338717ULL;
}

absl::Duration SchedulerCore::Backoff(int retry) {
  absl::Duration d = options_.retry_backoff_base;
  for (int i = 1; i < retry && d < options_.retry_backoff_max; ++i) d *= 2;
  d = std::min(d, options_.retry_backoff_max);
  const double jitter = 0.5 + static_cast<double>(NextRandom() % 1000) / 2000.0;
  return d * jitter;
}

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
  metrics_.events_folded += lease.held_event->has_allocated_time();
  effects_.produces.push_back({{EventRecord(*lease.held_event)}, 0});
  lease.held_event.reset();
}

void SchedulerCore::Started(Lease& lease, const Worker& w, bool completing) {
  lease.running_reported = true;
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
  TaskEvent ev = MakeEvent(lease.task, kwq::v1::RUNNING);
  ev.set_worker_id(w.hello.worker_id());
  if (lease.held_event) {
    // Held in its place, carrying the ALLOCATED time.
    *ev.mutable_allocated_time() = lease.held_event->time();
    lease.held_event = std::move(ev);
  } else if (completing) {
    // Held for the completion to carry (written on its own if that
    // completion is not durable and the lease then ends otherwise).
    Hold(lease, std::move(ev));
  } else {
    effects_.produces.push_back({{EventRecord(ev)}, 0});
  }
}

void SchedulerCore::StartTimeout(Lease& lease) const {
  const Task& t = lease.task;
  if (t.has_timeout() && FromProto(t.timeout()) > absl::ZeroDuration()) {
    lease.run_deadline = clock_->Now() + FromProto(t.timeout());
  }
}

void SchedulerCore::Hold(Lease& lease, TaskEvent ev) {
  lease.held_event = std::move(ev);
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

void SchedulerCore::FlushCommits() {
  for (auto& c : ledger_.TakeCommits())
    effects_.commits.push_back(std::move(c));
}

void SchedulerCore::OnPartitionsAssigned(
    const std::vector<AssignedPartition>& partitions) {
  ledger_.OnAssigned(partitions);
}

void SchedulerCore::DeadLetterRaw(const RecordPosition& pos,
                                  const std::string& raw,
                                  const std::string& reason) {
  ++metrics_.bad_records;
  LOG(WARNING) << "bad record " << pos.topic << "/" << pos.partition << "@"
               << pos.offset << " to " << topics_.Dlq() << ": " << reason;
  kwq::v1::DeadLetter dl;
  // A dead letter must always be writable: a record too large to copy whole
  // (with the dead letter's own fields) is copied cut, never left to wedge
  // its partition.
  const size_t room = MaxPayloadBytes();
  if (raw.size() > room) {
    dl.set_raw_value(raw.substr(0, room));
    dl.set_reason(
        api::Truncated(absl::StrCat(reason, " (raw_value cut from ", raw.size(),
                                    " to ", room, " bytes)"),
                       api::kMaxErrorBytes));
  } else {
    dl.set_raw_value(raw);
    dl.set_reason(api::Truncated(reason, api::kMaxErrorBytes));
  }
  dl.set_source_topic(pos.topic);
  dl.set_source_partition(pos.partition);
  dl.set_source_offset(pos.offset);
  *dl.mutable_time() = ToProto(clock_->Now());
  Decision d;
  d.pos = pos;
  ProduceFinal(std::move(d),
               {{topics_.Dlq(),
                 absl::StrCat(pos.topic, "/", pos.partition, "/", pos.offset),
                 dl.SerializeAsString()}});
}

size_t SchedulerCore::MaxPayloadBytes() const {
  return options_.max_record_bytes > api::kRecordOverheadBytes
             ? options_.max_record_bytes - api::kRecordOverheadBytes
             : options_.max_record_bytes / 2;
}

void SchedulerCore::ProduceFinal(Decision d, std::vector<OutRecord> records) {
  d.what = Decision::Final{records};
  const uint64_t cookie = pending_.Add(std::move(d));
  effects_.produces.push_back({std::move(records), cookie});
}

void SchedulerCore::OnTaskRecord(const RecordPosition& pos,
                                 const std::string& value) {
  ++metrics_.records_received;
  if (!ledger_.Received(pos)) {
    ++metrics_.redelivered_records;
    return;
  }
  if (ledger_.DecidedBefore(pos)) {
    ++metrics_.skipped_decided;  // decided by an earlier owner: durable already
    return;
  }
  Task task;
  if (!task.ParseFromString(value)) {
    DeadLetterRaw(pos, value, "record value is not a kwq.v1.Task");
    return;
  }
  api::ValidationLimits limits;
  limits.max_payload_bytes =
      SIZE_MAX;  // the producer's broker limit already applied
  if (task.id().empty()) {
    DeadLetterRaw(pos, value, "task has no id");
    return;
  }
  // The topic a record is in decides its priority (a direct producer may
  // leave the field unset or contradict it); its retries stay there.
  if (auto p = topics_.PriorityOf(pos.topic)) task.set_priority(*p);
  if (absl::Status s = api::ValidateTask(task, 0, limits); !s.ok()) {
    DeadLetterRaw(pos, value, std::string(s.message()));
    return;
  }
  control_.RememberJob(task.job_id());
  if (task.attempt() <= 0) task.set_attempt(1);
  if (auto c = claims_.find(task.id());
      c != claims_.end() && c->second.token.attempt() == task.attempt()) {
    // A reconnected worker runs this attempt already: adopt it.
    Claim claim = std::move(c->second);
    claims_.erase(c);
    auto w = workers_.find(claim.conn);  // claims end with their stream
    w->second.claimed.erase(task.id());
    const bool cancelled = control_.IsCancelled(task);
    Adopt(claim.conn, w->second, claim.token, pos, std::move(task));
    if (claim.final_update) {
      HandleUpdate(claim.conn, *claim.final_update);
    } else if (cancelled) {
      SchedulerMessage cancel;
      *cancel.mutable_cancel()->mutable_token() = claim.token;
      cancel.mutable_cancel()->set_reason("cancelled");
      effects_.sends.push_back({claim.conn, std::move(cancel)});
    }
    Dispatch();
    return;
  }
  if (control_.IsCancelled(task)) {
    CancelRecord(pos, task, "cancelled before it ran");
    return;
  }
  if (auto l = leases_.find(task.id()); l != leases_.end()) {
    if (SameRecord(l->second.pos, pos)) {
      // Its own record again: the partition was taken away and given back
      // while the attempt runs. The attempt decides it when it ends
      // (deciding it now would commit past a task still running: if this
      // instance then died, nobody would run it again).
      ++metrics_.redelivered_running;
      return;
    }
    // Another record of a task that runs here already (its id produced
    // twice): the running attempt decides for the task.
    VLOG(1) << "duplicate record of running task " << task.id();
    ++metrics_.duplicate_records;
    ledger_.Decide(pos);
    return;
  }
  if (pending_.Deciding(pos)) {
    // Its own record again while its decision (a retry, a dead letter, a
    // cancel) is being made durable: that decision decides it.
    ++metrics_.redelivered_running;
    return;
  }
  if (!task.has_submit_time()) {
    // Written straight into the topic by a foreign producer: announce it to the
    // tracker.
    *task.mutable_submit_time() = ToProto(clock_->Now());
    TaskEvent ev = MakeEvent(task, kwq::v1::PENDING);
    ev.set_priority(task.priority());
    *ev.mutable_tags() = task.tags();
    *ev.mutable_affinity_keys() = task.affinity_keys();
    effects_.produces.push_back({{EventRecord(ev)}, 0});
  }
  Enqueue({pos, std::move(task), absl::InfiniteFuture()});
  Dispatch();
}

void SchedulerCore::Enqueue(Queued q) {
  const int p = q.task.priority();
  if (q.task.has_not_before() &&
      FromProto(q.task.not_before()) > clock_->Now()) {
    const absl::Time due = FromProto(q.task.not_before());
    queues_.PushDelayed(due, std::move(q));
  } else if (control_.job_paused(q.task.job_id())) {
    Park(std::move(q));
  } else {
    queues_.PushReady(std::move(q));
  }
  UpdateBackpressure(p);
}

void SchedulerCore::Park(Queued q) {
  if (queues_.parked(q.task.priority()) <
      options_.max_parked_in_memory_per_priority) {
    queues_.Park(std::move(q));
    return;
  }
  ++metrics_.parked_to_kafka;
  std::vector<OutRecord> records = {
      {topics_.Parked(), q.task.id(), q.task.SerializeAsString()}};
  Decision d;
  d.pos = q.pos;
  d.task_id = q.task.id();
  d.what = Decision::Park{std::move(q)};
  const uint64_t cookie = pending_.Add(std::move(d));
  effects_.produces.push_back({std::move(records), cookie});
}

void SchedulerCore::UpdateBackpressure(int p) {
  if (auto paused =
          queues_.UpdateBackpressure(p, options_.max_buffered_per_priority)) {
    effects_.pauses.push_back({p, *paused});
  }
}

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

bool SchedulerCore::HoldsTask(const std::string& task_id) const {
  return leases_.contains(task_id) || queues_.Find(task_id).has_value();
}

void SchedulerCore::CancelRecord(const RecordPosition& pos, const Task& task,
                                 const std::string& why, ConnId ack_conn,
                                 const kwq::v1::FencingToken& ack_token) {
  ++metrics_.cancelled;
  const std::string who = control_.CancelledBy(task);
  TaskEvent ev = MakeEvent(task, kwq::v1::CANCELLED);
  ev.set_reason("cancelled");
  ev.set_error(
      api::Truncated(who.empty() ? why : absl::StrCat(why, " (by ", who, ")"),
                     api::kMaxErrorBytes));
  Decision d;
  d.pos = pos;
  d.task_id = task.id();
  d.ack_conn = ack_conn;
  d.ack_token = ack_token;
  ProduceFinal(std::move(d), {EventRecord(ev)});
}

void SchedulerCore::OnControlRecord(const std::string& key,
                                    const std::string& value) {
  if (key == kLeaseKeyRecord) {
    if (value.size() < 16 || value.size() > 1024) {
      ++metrics_.bad_control_records;
      LOG(WARNING) << "ignoring a lease key of " << value.size()
                   << " bytes (16-1024)";
      return;
    }
    if (!options_.lease_key.empty()) return;  // --lease_key_file wins
    signer_.SetKey(value);
    group_lease_key_ = true;
    LOG(INFO) << "using the group's lease key";
    return;
  }
  absl::StatusOr<ControlChange> change = ControlState::Decode(key, value);
  if (!change.ok()) {
    // Never read as a tombstone: a garbage value must not lift a pause.
    ++metrics_.bad_control_records;
    LOG(WARNING) << "ignoring control record under key '" << key.substr(0, 200)
                 << "': " << change.status().message();
    return;
  }
  control_.Apply(*change);
  LOG(INFO) << "control " << key << (change->set ? " set" : " lifted")
            << (change->requested_by.empty() ? ""
                                             : " by " + change->requested_by);
  using Kind = ControlChange::Kind;
  if (change->kind == Kind::kPauseJob && !change->set) {
    Unpark(change->id);
    effects_.replay_parked = true;  // its tasks in the parked topic too
  }
  if (change->kind == Kind::kCancelJob && change->set) {
    effects_.replay_parked = true;  // to end them CANCELLED
  }
  if (change->set &&
      (change->kind == Kind::kCancelJob || change->kind == Kind::kCancelTask)) {
    ApplyCancel();
  }
  Dispatch();  // a resume may free work
}

void SchedulerCore::ApplyCancel() {
  // Queued and waiting tasks of a cancelled scope end now.
  for (auto& [where, q] : queues_.RemoveIf(
           [this](const Queued& q) { return control_.IsCancelled(q.task); })) {
    CancelRecord(q.pos, q.task,
                 where == TaskQueues::Where::kReady ? "cancelled while queued"
                 : where == TaskQueues::Where::kDelayed
                     ? "cancelled while waiting to retry"
                     : "cancelled while its job was paused");
  }
  // Running ones are asked to stop; the attempt ends CANCELLED when the worker
  // answers (or its lease runs out).
  for (auto& [id, lease] : leases_) {
    if (!lease.deciding && control_.IsCancelled(lease.task)) {
      SchedulerMessage cancel;
      *cancel.mutable_cancel()->mutable_token() = lease.token;
      cancel.mutable_cancel()->set_reason("cancelled");
      effects_.sends.push_back({lease.conn, std::move(cancel)});
    }
  }
  for (int p = 0; p < kNumPriorities; ++p) UpdateBackpressure(p);
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

void SchedulerCore::Unpark(const std::string& job_id) {
  queues_.Unpark(job_id);
}

void SchedulerCore::Adopt(ConnId conn, Worker& w,
                          const kwq::v1::FencingToken& token,
                          RecordPosition pos, Task task) {
  Lease lease;
  lease.pos = std::move(pos);
  lease.conn = conn;
  lease.token = token;
  lease.worker_id = w.hello.worker_id();
  lease.deadline = clock_->Now() + options_.lease_period;
  lease.running_reported = true;  // its RUNNING event was written before
  lease.task = std::move(task);
  StartTimeout(lease);
  w.task_ids.insert(token.task_id());
  ++metrics_.adopted;
  VLOG(1) << "adopted " << token.task_id() << " attempt " << token.attempt()
          << " running on " << w.hello.worker_id();
  leases_.emplace(token.task_id(), std::move(lease));
}

std::optional<SchedulerCore::Queued> SchedulerCore::TakeQueued(
    const std::string& task_id, int attempt) {
  std::optional<Queued> found = queues_.Take(task_id, attempt);
  if (found) UpdateBackpressure(found->task.priority());
  return found;
}

void SchedulerCore::ExpireClaims() {
  const absl::Time now = clock_->Now();
  for (auto it = claims_.begin(); it != claims_.end();) {
    if (it->second.expires > now) {
      ++it;
      continue;
    }
    Claim claim = std::move(it->second);
    claims_.erase(it++);
    ++metrics_.adoption_expired;
    const std::string why = absl::StrCat(
        "its record did not reach scheduler ", options_.scheduler_id,
        " within ", absl::FormatDuration(options_.adoption_wait),
        " of the reconnect; another instance owns the task");
    if (claim.final_update) {
      SendAck(claim.conn, claim.token, kAckFailedPrecondition, why);
    } else {
      SchedulerMessage cancel;
      *cancel.mutable_cancel()->mutable_token() = claim.token;
      cancel.mutable_cancel()->set_reason(why);
      effects_.sends.push_back({claim.conn, std::move(cancel)});
    }
    auto w = workers_.find(claim.conn);
    if (w == workers_.end()) continue;
    w->second.claimed.erase(claim.token.task_id());
    FreeSlot(w->second, "");
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
      effects_.produces.push_back({{EventRecord(ev)}, 0});
    }
  }
}

void SchedulerCore::GiveSlotBack(ConnId conn) {
  // The scheduler ended the attempt itself (timeout, expired lease): the
  // worker's own answer will be stale and free nothing, so the slot comes
  // back now (capped by the capacity, so a worker that also sends a credit
  // for it gets no more than its slots).
  if (auto w = workers_.find(conn); w != workers_.end()) {
    FreeSlot(w->second, "");
  }
}

void SchedulerCore::FreeSlot(Worker& w, const std::string& freed) {
  w.credits =
      std::min(w.credits + 1, std::max(0, Capacity(w) - BusySlots(w, freed)));
}

int SchedulerCore::BusySlots(const Worker& w, const std::string& except) const {
  // Every id in task_ids has its lease here, held by this worker; the deciding
  // ones are counted as they change (a walk over the leases per freed slot
  // cost O(slots) per completion).
  int busy = static_cast<int>(w.task_ids.size()) - w.deciding +
             static_cast<int>(w.claimed.size());
  if (!except.empty()) {
    if (w.task_ids.count(except)) {
      auto l = leases_.find(except);
      if (l != leases_.end() && !l->second.deciding) --busy;
    }
    if (w.claimed.count(except)) --busy;
  }
#ifndef NDEBUG
  int walked = 0;  // the definition, checked in tests (debug builds)
  for (const std::string& id : w.task_ids) {
    auto l = leases_.find(id);
    if (l != leases_.end() && !l->second.deciding && id != except) ++walked;
  }
  for (const std::string& id : w.claimed) {
    if (id != except) ++walked;
  }
  DCHECK_EQ(busy, walked) << "worker " << w.hello.worker_id();
#endif
  return busy;
}

void SchedulerCore::Assign(ConnId conn, Worker& w, Queued q) {
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
  *a->mutable_task() = lease.task;
  *a->mutable_token() = lease.token;
  *a->mutable_lease_deadline() = ToProto(lease.deadline);
  effects_.sends.push_back({conn, std::move(msg)});

  TaskEvent ev = MakeEvent(lease.task, kwq::v1::ALLOCATED);
  ev.set_worker_id(w.hello.worker_id());
  if (options_.event_fold_window > absl::ZeroDuration()) {
    Hold(lease, std::move(ev));
  } else {
    effects_.produces.push_back({{EventRecord(ev)}, 0});
  }

  w.task_ids.insert(lease.task.id());
  std::string id = lease.task.id();
  leases_.emplace(std::move(id), std::move(lease));
}

namespace {

bool ValidKeys(const google::protobuf::RepeatedPtrField<std::string>& keys,
               int max_count) {
  if (keys.size() > max_count) return false;
  for (const std::string& k : keys) {
    if (k.empty() || k.size() > api::kMaxKeyBytes) return false;
  }
  return true;
}

bool ValidToken(const kwq::v1::FencingToken& t) {
  return api::IsValidId(t.task_id()) && api::IsValidId(t.lease_id()) &&
         t.attempt() >= 1;
}

}  // namespace

std::string SchedulerCore::CheckHello(const kwq::v1::Hello& hello) const {
  if (!api::IsValidId(hello.worker_id())) {
    return "hello.worker_id must be 1-128 characters of [A-Za-z0-9._:-]";
  }
  if (hello.slots() < 1 || hello.slots() > 4096) {
    return "hello.slots must be 1-4096";
  }
  if (hello.prefetch() < 0 || hello.prefetch() > 4096) {
    return "hello.prefetch must be 0-4096";
  }
  if (!ValidKeys(hello.labels(), api::kMaxWorkerLabels)) {
    return absl::StrCat("hello.labels: at most ", api::kMaxWorkerLabels,
                        " labels of 1-", api::kMaxKeyBytes, " bytes");
  }
  if (!ValidKeys(hello.affinity_keys(), api::kMaxWorkerAffinityKeys)) {
    return absl::StrCat("hello.affinity_keys: at most ",
                        api::kMaxWorkerAffinityKeys, " keys of 1-",
                        api::kMaxKeyBytes, " bytes");
  }
  // What a worker still runs (at most its capacity) plus the completions it
  // holds unacknowledged (a few per slot while the scheduler was away).
  const int max_in_flight = 4 * (hello.slots() + hello.prefetch()) + 64;
  if (hello.in_flight_size() > max_in_flight) {
    return absl::StrCat(
        "hello.in_flight lists ", hello.in_flight_size(),
        " tasks; at most 4 x (slots + prefetch) + 64 = ", max_in_flight);
  }
  std::set<std::string> seen;
  for (const auto& token : hello.in_flight()) {
    if (!ValidToken(token)) {
      return "hello.in_flight: every token needs a valid task_id and lease_id "
             "(1-128 characters of [A-Za-z0-9._:-]) and attempt >= 1";
    }
    if (!seen.insert(token.task_id()).second) {
      return "hello.in_flight names a task twice";
    }
  }
  return "";
}

void SchedulerCore::Reject(ConnId conn, const std::string& why) {
  ++metrics_.rejected_worker_messages;
  effects_.closes.push_back({conn, why});
}

void SchedulerCore::OnWorkerConnected(ConnId conn,
                                      const kwq::v1::Hello& hello) {
  if (std::string why = CheckHello(hello); !why.empty()) {
    Reject(conn, why);
    return;
  }
  // One live stream per worker id: a new one replaces the old (a worker that
  // reconnects before its broken stream is noticed). The old stream's leases
  // wait for the new hello, which adopts them.
  if (auto old = conn_of_worker_.find(hello.worker_id());
      old != conn_of_worker_.end() && old->second != conn) {
    const ConnId old_conn = old->second;
    ++metrics_.streams_replaced;
    effects_.closes.push_back(
        {old_conn, "replaced by a newer stream of the same worker_id"});
    OnWorkerDisconnected(old_conn, "replaced by a newer stream");
  }
  Worker w;
  w.hello = hello;
  w.labels.insert(hello.labels().begin(), hello.labels().end());
  w.affinity.insert(hello.affinity_keys().begin(), hello.affinity_keys().end());
  w.connected_at = w.last_heartbeat = clock_->Now();
  SchedulerMessage msg;
  auto* welcome = msg.mutable_welcome();
  welcome->set_scheduler_id(options_.scheduler_id);
  *welcome->mutable_lease_period() = ToProto(options_.lease_period);
  *welcome->mutable_heartbeat_period() = ToProto(options_.heartbeat_period);
  Worker& wr = workers_[conn] = std::move(w);
  conn_of_worker_[hello.worker_id()] = conn;
  // Adopt the tasks this worker still runs: under a lease of this instance,
  // from a record queued here, or (claimed) from a record that comes later.
  // Only leases issued to this worker id: a lease id names its worker
  // (LeaseSigner), so another worker's lease, a made-up one or one for a task
  // never leased is refused.
  for (const auto& token : hello.in_flight()) {
    if (!signer_.Verify(token, hello.worker_id())) {
      ++metrics_.forged_claims;
      *welcome->add_rejected() = token;
      continue;
    }
    auto it = leases_.find(token.task_id());
    if (it != leases_.end()) {
      if (it->second.token.lease_id() == token.lease_id() &&
          it->second.token.attempt() == token.attempt() &&
          it->second.worker_id == hello.worker_id() && !it->second.deciding) {
        if (auto old = workers_.find(it->second.conn); old != workers_.end()) {
          old->second.task_ids.erase(token.task_id());
        }
        it->second.conn = conn;
        it->second.deadline = clock_->Now() + options_.lease_period;
        wr.task_ids.insert(token.task_id());
        ++metrics_.adopted;
        *welcome->add_adopted() = token;
      } else {
        *welcome->add_rejected() = token;  // another attempt owns the task
      }
      continue;
    }
    if (auto q = TakeQueued(token.task_id(), token.attempt())) {
      Adopt(conn, wr, token, std::move(q->pos), std::move(q->task));
      *welcome->add_adopted() = token;
      continue;
    }
    if (auto c = claims_.find(token.task_id()); c != claims_.end()) {
      if (auto old = workers_.find(c->second.conn); old != workers_.end()) {
        old->second.claimed.erase(token.task_id());
      }
    }
    Claim& claim = claims_[token.task_id()];
    claim = Claim{conn, token, clock_->Now() + options_.adoption_wait, {}};
    wr.claimed.insert(token.task_id());
    *welcome->add_claimed() = token;
  }
  wr.credits = std::max(0, Capacity(wr) - BusySlots(wr));
  effects_.sends.push_back({conn, std::move(msg)});
  Dispatch();
}

void SchedulerCore::OnWorkerMessage(ConnId conn,
                                    const kwq::v1::WorkerMessage& msg) {
  if (!workers_.count(conn)) {
    effects_.closes.push_back(
        {conn, "the first message must be a valid hello"});
    return;
  }
  if (msg.has_batch()) {
    for (const kwq::v1::WorkerMessage& m : msg.batch().messages()) {
      if (m.has_batch() || m.has_hello()) {
        effects_.closes.push_back(
            {conn, "a worker batch holds no batch and no hello"});
        return;
      }
      if (!ApplyWorkerMessage(conn, m)) return;
    }
  } else if (!ApplyWorkerMessage(conn, msg)) {
    return;
  }
  Dispatch();
}

bool SchedulerCore::ApplyWorkerMessage(ConnId conn,
                                       const kwq::v1::WorkerMessage& msg) {
  auto it = workers_.find(conn);
  if (it == workers_.end()) return false;  // closed by an earlier message
  Worker& w = it->second;
  switch (msg.msg_case()) {
    case kwq::v1::WorkerMessage::kCredits: {
      // Slots still busy from the worker's point of view: leases whose
      // completion is being made durable are done there already.
      // 64-bit and clamped: a huge or negative add cannot overflow.
      const int64_t want =
          static_cast<int64_t>(w.credits) + msg.credits().add();
      w.credits = static_cast<int>(std::clamp<int64_t>(
          want, 0, std::max(0, Capacity(w) - BusySlots(w))));
      break;
    }
    case kwq::v1::WorkerMessage::kHeartbeat: {
      ++metrics_.heartbeats;
      const absl::Time now = clock_->Now();
      w.last_heartbeat = now;
      if (msg.heartbeat().affinity_changed() &&
          !ValidKeys(msg.heartbeat().affinity_keys(),
                     api::kMaxWorkerAffinityKeys)) {
        Reject(conn, absl::StrCat("heartbeat.affinity_keys: at most ",
                                  api::kMaxWorkerAffinityKeys, " keys of 1-",
                                  api::kMaxKeyBytes, " bytes"));
        return false;
      }
      // Renewing every lease costs a walk over them: at most ten times a
      // heartbeat period (a flood of heartbeats is absorbed, not applied).
      if (!msg.heartbeat().affinity_changed() &&
          now - w.last_heartbeat_applied < options_.heartbeat_period / 10) {
        ++metrics_.heartbeats_dropped;
        break;
      }
      w.last_heartbeat_applied = now;
      for (const std::string& id : w.task_ids) {
        auto l = leases_.find(id);
        if (l != leases_.end())
          l->second.deadline = clock_->Now() + options_.lease_period;
      }
      if (msg.heartbeat().affinity_changed()) {
        *w.hello.mutable_affinity_keys() = msg.heartbeat().affinity_keys();
        w.affinity = {msg.heartbeat().affinity_keys().begin(),
                      msg.heartbeat().affinity_keys().end()};
      }
      break;
    }
    case kwq::v1::WorkerMessage::kUpdate:
      if (!ValidToken(msg.update().token())) {
        // Never echoed back: an id may be megabytes long.
        Reject(conn,
               "update.token needs a valid task_id and lease_id (1-128 "
               "characters of [A-Za-z0-9._:-]) and attempt >= 1");
        return false;
      }
      HandleUpdate(conn, msg.update());
      break;
    case kwq::v1::WorkerMessage::kDrain:
      w.draining = true;
      w.credits = 0;
      break;
    case kwq::v1::WorkerMessage::kHello:
      effects_.closes.push_back({conn, "hello sent twice on one stream"});
      return false;
    case kwq::v1::WorkerMessage::kBatch:  // handled by OnWorkerMessage
    case kwq::v1::WorkerMessage::MSG_NOT_SET:
      break;
  }
  return true;
}

void SchedulerCore::SendAck(ConnId conn, const kwq::v1::FencingToken& token,
                            int code, const std::string& message) {
  if (!workers_.count(conn)) return;
  SchedulerMessage msg;
  auto* ack = msg.mutable_ack();
  *ack->mutable_token() = token;
  ack->set_code(code);
  ack->set_message(message);
  effects_.sends.push_back({conn, std::move(msg)});
}

void SchedulerCore::HandleUpdate(ConnId conn,
                                 const kwq::v1::TaskUpdate& update) {
  auto it = leases_.find(update.token().task_id());
  const bool current =
      it != leases_.end() && it->second.conn == conn &&
      it->second.token.lease_id() == update.token().lease_id() &&
      it->second.token.attempt() == update.token().attempt() &&
      !it->second.deciding;
  if (!current) {
    if (auto c = claims_.find(update.token().task_id());
        c != claims_.end() && c->second.conn == conn &&
        c->second.token.lease_id() == update.token().lease_id()) {
      // Claimed, record not here yet: keep the outcome for the adoption; no
      // acknowledgement until then (the worker holds it as unacknowledged).
      if (update.state() == kwq::v1::COMPLETED ||
          update.state() == kwq::v1::ERROR) {
        c->second.final_update = update;
      }
      return;
    }
    ++metrics_.stale_updates;
    SendAck(conn, update.token(), kAckFailedPrecondition,
            "stale lease: this attempt is no longer yours; the update was not "
            "applied");
    return;
  }
  Lease& lease = it->second;
  Worker& w = workers_[conn];
  if (w.hello.implicit_credits() && (update.state() == kwq::v1::COMPLETED ||
                                     update.state() == kwq::v1::ERROR)) {
    // The update frees the slot (no separate Credits message from this worker).
    FreeSlot(w, update.token().task_id());
  }
  switch (update.state()) {
    case kwq::v1::RUNNING: {
      // The first RUNNING is the stage event; later ones are progress reports:
      // they renew the lease and are kept for Explain, not written as events.
      lease.deadline = clock_->Now() + options_.lease_period;
      lease.progress = std::isfinite(update.progress())
                           ? std::clamp(update.progress(), 0.0, 1.0)
                           : 0.0;
      if (!lease.running_reported) Started(lease, w, /*completing=*/false);
      return;
    }
    case kwq::v1::COMPLETED: {
      // A worker may leave out the RUNNING of a task it finished before that
      // update was sent: it started now, by this clock (the two would have
      // arrived together).
      if (!lease.running_reported) Started(lease, w, /*completing=*/true);
      if (update.result().size() > options_.max_result_bytes) {
        // The worker learns at once that this result will never be taken
        // (code 3, not a resend-forever 14); the task fails.
        const std::string why = absl::StrCat(
            "result of ", update.result().size(),
            " bytes exceeds --max_result_bytes=", options_.max_result_bytes);
        SendAck(conn, update.token(), kAckInvalidArgument, why);
        Lease l = std::move(lease);
        leases_.erase(it);
        EndAttempt(std::move(l), why, "task_error", /*infra=*/false,
                   /*retryable=*/false, /*ack_conn=*/0);
        return;
      }
      lease.deciding = true;
      ++w.deciding;
      TaskEvent ev = MakeEvent(lease.task, kwq::v1::COMPLETED);
      ev.set_worker_id(w.hello.worker_id());
      ev.set_result_size(static_cast<int64_t>(update.result().size()));
      if (const auto& held = lease.held_event) {
        // Kept in the lease until this event is durable (see WriteHeldEvents).
        if (held->state() == kwq::v1::ALLOCATED) {
          *ev.mutable_allocated_time() = held->time();
        } else {
          if (held->has_allocated_time()) {
            *ev.mutable_allocated_time() = held->allocated_time();
          }
          *ev.mutable_running_time() = held->time();
        }
        metrics_.events_folded +=
            ev.has_allocated_time() + ev.has_running_time();
      }
      kwq::v1::TaskResult result;
      result.set_task_id(lease.task.id());
      result.set_job_id(lease.task.job_id());
      result.set_attempt(lease.task.attempt());
      result.set_worker_id(w.hello.worker_id());
      result.set_result(update.result());
      *result.mutable_time() = ev.time();
      Decision d;
      d.pos = lease.pos;
      d.task_id = lease.task.id();
      d.ack_conn = conn;
      d.ack_token = lease.token;
      d.what = Decision::Completion{};
      const uint64_t cookie = pending_.Add(std::move(d));
      effects_.produces.push_back({{EventRecord(ev),
                                    {topics_.Results(), lease.task.job_id(),
                                     result.SerializeAsString()}},
                                   cookie});
      return;
    }
    case kwq::v1::ERROR: {
      Lease l = std::move(lease);
      leases_.erase(it);
      EndAttempt(std::move(l), update.error(),
                 update.cancelled() ? "cancelled" : "task_error",
                 /*infra=*/false, update.retryable(), conn);
      return;
    }
    default:
      SendAck(
          conn, update.token(), kAckInvalidArgument,
          absl::StrCat("update state must be RUNNING, COMPLETED or ERROR, not ",
                       kwq::v1::TaskState_Name(update.state())));
      return;
  }
}

void SchedulerCore::EndAttempt(Lease lease, const std::string& error_text,
                               const std::string& reason, bool infra,
                               bool retryable, ConnId ack_conn) {
  const std::string error = api::Truncated(error_text, api::kMaxErrorBytes);
  WriteHeldEvent(lease);  // the stages the attempt reached, before its end
  std::string worker_id;
  if (auto w = workers_.find(lease.conn); w != workers_.end()) {
    w->second.task_ids.erase(lease.task.id());
    ++w->second.errors;
    worker_id = w->second.hello.worker_id();
  }
  if (control_.IsCancelled(lease.task)) {
    // A cancelled task's attempt ended (the worker stopped it, or it was lost):
    // the task is CANCELLED, never retried.
    CancelRecord(
        lease.pos, lease.task,
        absl::StrCat("cancelled while running on ", worker_id, ": ", error),
        ack_conn, lease.token);
    return;
  }
  Task task = std::move(lease.task);
  if (infra) {
    ++metrics_.infra_failures;
    task.set_infra_failures(task.infra_failures() + 1);
  } else {
    ++metrics_.task_errors;
    task.set_task_errors(task.task_errors() + 1);
  }
  task.set_last_error(error);
  const int max_task_errors =
      task.max_attempts() > 0 ? task.max_attempts() : options_.max_task_errors;
  const int max_infra = task.max_attempts() > 0 ? task.max_attempts()
                                                : options_.max_infra_failures;
  const bool exhausted =
      infra ? task.infra_failures() >= max_infra
            : (!retryable || task.task_errors() >= max_task_errors);

  std::vector<OutRecord> records;
  TaskEvent err = MakeEvent(task, kwq::v1::ERROR);
  err.set_worker_id(worker_id);
  err.set_error(error);
  err.set_retryable(!exhausted);
  err.set_reason(reason);
  records.push_back(EventRecord(err));
  if (exhausted) {
    ++metrics_.dead_lettered;
    TaskEvent failed = MakeEvent(task, kwq::v1::FAILED);
    failed.set_worker_id(worker_id);
    failed.set_error(
        absl::StrCat(infra ? "infrastructure failures" : "task errors",
                     " used up its attempts; last error: ", error));
    failed.set_reason(reason);
    records.push_back(EventRecord(failed));
    kwq::v1::DeadLetter dl;
    *dl.mutable_task() = task;
    dl.set_reason(failed.error());
    dl.set_source_topic(lease.pos.topic);
    dl.set_source_partition(lease.pos.partition);
    dl.set_source_offset(lease.pos.offset);
    *dl.mutable_time() = ToProto(clock_->Now());
    if (dl.ByteSizeLong() > options_.max_record_bytes) {
      // Always writable: the payload is cut (the source record keeps it).
      const size_t size = dl.task().payload().size();
      dl.mutable_task()->mutable_payload()->resize(
          std::min(size, MaxPayloadBytes() / 2));
      dl.set_reason(absl::StrCat(dl.reason(), " (task payload cut from ", size,
                                 " bytes)"));
    }
    records.push_back({topics_.Dlq(), task.id(), dl.SerializeAsString()});
  } else {
    ++metrics_.retries;
    task.set_attempt(task.attempt() + 1);
    *task.mutable_not_before() =
        ToProto(clock_->Now() + Backoff(task.attempt() - 1));
    TaskEvent pending = MakeEvent(task, kwq::v1::PENDING);
    pending.set_reason(reason);
    records.push_back(EventRecord(pending));
    records.push_back({topics_.ForPriority(task.priority()), task.id(),
                       task.SerializeAsString()});
  }
  Decision d;
  d.pos = lease.pos;
  d.task_id = task.id();
  d.ack_conn = ack_conn;
  d.ack_token = lease.token;
  if (exhausted) {
    ProduceFinal(std::move(d), std::move(records));
    return;
  }
  // Kept so that a failed hand-off retries here instead of losing the task.
  d.what = Decision::Retry{std::move(task)};
  const uint64_t cookie = pending_.Add(std::move(d));
  effects_.produces.push_back({std::move(records), cookie});
}

void SchedulerCore::OnDurable(uint64_t cookie, bool ok) {
  std::optional<Decision> taken = pending_.Take(cookie);
  if (!taken) return;
  Decision& d = *taken;
  if (!ok) ++metrics_.durable_failures;
  if (std::holds_alternative<Decision::Completion>(d.what)) {
    auto l = leases_.find(d.task_id);
    if (ok) {
      ++metrics_.completed;
      if (l != leases_.end()) {
        if (auto w = workers_.find(l->second.conn); w != workers_.end()) {
          w->second.task_ids.erase(d.task_id);
          --w->second.deciding;
          ++w->second.completed;
        }
        leases_.erase(l);
      }
      SendAck(d.ack_conn, d.ack_token, kAckOk, "");
      ledger_.Decide(d.pos);
    } else {
      if (l != leases_.end()) {
        l->second.deciding = false;
        if (auto w = workers_.find(l->second.conn); w != workers_.end()) {
          --w->second.deciding;
        }
      }
      SendAck(d.ack_conn, d.ack_token, kAckUnavailable,
              "the completion is not durable in Kafka yet: send it again");
    }
    Dispatch();
    return;
  }
  if (auto* park = std::get_if<Decision::Park>(&d.what)) {
    if (ok) {
      ledger_.Decide(d.pos);  // the parked topic holds it now
    } else {
      queues_.Park(std::move(park->q));  // over the cap: better than losing it
    }
    return;
  }
  // The worker's part is done either way: the scheduler carries the rest.
  if (d.ack_conn != 0) SendAck(d.ack_conn, d.ack_token, kAckOk, "");
  d.ack_conn = 0;
  if (ok) {
    ledger_.Decide(d.pos);
  } else if (auto* retry = std::get_if<Decision::Retry>(&d.what)) {
    // The hand-off to Kafka failed: keep the task here (its offset stays
    // open) so that it still runs; a restart would redeliver it from its
    // original record.
    LOG(WARNING) << "retry hand-off of " << retry->task.id()
                 << " not durable; retrying it locally";
    Enqueue({d.pos, std::move(retry->task), absl::InfiniteFuture()});
  } else if (auto* final = std::get_if<Decision::Final>(&d.what)) {
    // A dead letter or a cancel: never re-run (its budget is spent or it was
    // cancelled); write it again until it is durable (its records fit the
    // broker's limit, so only an outage fails them, and the producer's own
    // delivery timeout paces this).
    LOG(WARNING) << "final records of " << d.task_id
                 << " not durable; writing them again";
    std::vector<OutRecord> records = std::move(final->records);
    ProduceFinal(std::move(d), std::move(records));
  }
  Dispatch();
}

void SchedulerCore::OnWorkerDisconnected(ConnId conn,
                                         const std::string& reason) {
  auto it = workers_.find(conn);
  if (it == workers_.end()) return;
  for (const std::string& id : it->second.claimed) claims_.erase(id);
  // Its leases stay until their deadline: a worker that reconnects (here or,
  // after a failover, to the instance that gets the records) reports them and
  // they are adopted; otherwise they expire as worker_lost.
  for (const std::string& id : it->second.task_ids) {
    auto l = leases_.find(id);
    if (l != leases_.end() && l->second.conn == conn) l->second.conn = 0;
  }
  if (auto c = conn_of_worker_.find(it->second.hello.worker_id());
      c != conn_of_worker_.end() && c->second == conn) {
    conn_of_worker_.erase(c);
  }
  VLOG(1) << "worker " << it->second.hello.worker_id() << " disconnected ("
          << reason << ") with " << it->second.task_ids.size() << " leases";
  workers_.erase(it);
  Dispatch();
}

void SchedulerCore::OnTick() {
  FlushCommits();
  WriteHeldEvents(clock_->Now());
  ExpireClaims();
  ReportWaiting();
  const absl::Time now = clock_->Now();
  std::vector<std::string> expired, timed_out;
  for (const auto& [id, lease] : leases_) {
    if (lease.deciding) continue;
    if (lease.deadline <= now) {
      expired.push_back(id);
    } else if (lease.run_deadline <= now) {
      timed_out.push_back(id);
    }
  }
  for (const std::string& id : timed_out) {
    auto l = leases_.find(id);
    Lease lease = std::move(l->second);
    leases_.erase(l);
    ++metrics_.timeouts;
    const std::string why =
        absl::StrCat("timed out after ",
                     absl::FormatDuration(FromProto(lease.task.timeout())));
    SchedulerMessage cancel;
    *cancel.mutable_cancel()->mutable_token() = lease.token;
    cancel.mutable_cancel()->set_reason(why);
    effects_.sends.push_back({lease.conn, std::move(cancel)});
    const ConnId conn = lease.conn;
    // A task error: the task-error retry budget applies.
    EndAttempt(std::move(lease), why, "timeout", /*infra=*/false,
               /*retryable=*/true, 0);
    GiveSlotBack(conn);
  }
  for (const std::string& id : expired) {
    auto l = leases_.find(id);
    Lease lease = std::move(l->second);
    leases_.erase(l);
    if (lease.conn == 0) {
      EndAttempt(std::move(lease),
                 "worker lost: it disconnected and did not come back within "
                 "the lease",
                 "worker_lost", /*infra=*/true, /*retryable=*/true, 0);
      continue;
    }
    SchedulerMessage cancel;
    *cancel.mutable_cancel()->mutable_token() = lease.token;
    cancel.mutable_cancel()->set_reason("lease expired");
    effects_.sends.push_back({lease.conn, std::move(cancel)});
    const ConnId conn = lease.conn;
    EndAttempt(std::move(lease), "lease expired (no heartbeat)",
               "lease_expired",
               /*infra=*/true, /*retryable=*/true, 0);
    GiveSlotBack(conn);
  }
  queues_.ReleaseDue(now);
  Dispatch();
}

void SchedulerCore::OnPartitionsRevoked(
    const std::vector<std::pair<std::string, int32_t>>& partitions) {
  std::set<std::pair<std::string, int32_t>> gone(partitions.begin(),
                                                 partitions.end());
  auto from_gone = [&](const RecordPosition& pos) {
    return gone.count({pos.topic, pos.partition}) > 0;
  };
  queues_.RemoveIf([&](const Queued& q) { return from_gone(q.pos); });
  // Leases and pending decisions keep their records' positions: a decision
  // made durable while the partition is away is remembered by the ledger, and
  // the record is skipped if the partition comes back.
  ledger_.OnRevoked(partitions);
  for (int p = 0; p < kNumPriorities; ++p) UpdateBackpressure(p);
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
