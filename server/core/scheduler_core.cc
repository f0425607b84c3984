// SchedulerCore: construction, the Kafka side (records, partitions, control,
// durability) and time. The worker side, dispatch and stage events are in
// scheduler_core_workers.cc, _dispatch.cc and _events.cc.
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
#include "server/api/task_events.h"
#include "server/api/task_validation.h"
#include "server/core/scheduler_core_internal.h"
#include "server/util/time_util.h"

namespace kwq::scheduler {

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
                                  const std::string& reason,
                                  const Task* parsed) {
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
  } else if (parsed != nullptr) {
    // It parsed but is not valid: the task itself, for a reader to fix and
    // resubmit.
    *dl.mutable_task() = *parsed;
    dl.set_reason(api::Truncated(reason, api::kMaxErrorBytes));
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

void SchedulerCore::OnTaskRecord(const RecordPosition& pos, std::string value) {
  ++metrics_.records_received;
  if (!ledger_.Received(pos)) {
    ++metrics_.redelivered_records;
    return;
  }
  metrics_.records_never_read = ledger_.unread_records();
  if (ledger_.DecidedBefore(pos)) {
    ++metrics_.skipped_decided;  // decided by an earlier owner: durable already
    return;
  }
  Task task;
  if (value.empty()) {
    DeadLetterRaw(
        pos, value,
        "a tombstone (null value): a task record needs a kwq.v1.Task");
    return;
  }
  if (!task.ParseFromString(value)) {
    DeadLetterRaw(pos, value, "record value is not a kwq.v1.Task");
    return;
  }
  api::ValidationLimits limits;
  limits.max_payload_bytes =
      SIZE_MAX;  // the producer's broker limit already applied
  if (task.id().empty()) {
    DeadLetterRaw(pos, value, "the record's task has no id", &task);
    return;
  }
  // The topic a record is in decides its priority (a direct producer may
  // leave the field unset or contradict it); its retries stay there.
  // Whether the core changed the task: then the record's bytes are not what a
  // worker must receive (QueuedTask::wire).
  bool changed = false;
  if (auto p = topics_.PriorityOf(pos.topic); p && task.priority() != *p) {
    task.set_priority(*p);
    changed = true;
  }
  if (absl::Status s = api::ValidateTask(task, -1, limits); !s.ok()) {
    DeadLetterRaw(pos, value, std::string(s.message()), &task);
    return;
  }
  control_.RememberJob(task.job_id());
  if (task.attempt() <= 0) {
    task.set_attempt(1);
    changed = true;
  }
  if (auto c = claims_.find(task.id());
      c != claims_.end() && c->second.token.attempt() == task.attempt()) {
    // A reconnected worker runs this attempt already: adopt it, unless
    // another attempt of the task holds a lease here (two live records of
    // one task, e.g. a retry record and a redelivered original): then the
    // claim loses and the worker is told to stop.
    Claim claim = std::move(c->second);
    claims_.erase(c);
    auto w = workers_.find(claim.conn);  // claims end with their stream
    if (w != workers_.end()) w->second.claimed.erase(task.id());
    if (w == workers_.end() || leases_.contains(task.id())) {
      if (w != workers_.end()) {
        SchedulerMessage cancel;
        *cancel.mutable_cancel()->mutable_token() = claim.token;
        cancel.mutable_cancel()->set_reason(
            "another attempt of the task runs on this scheduler");
        effects_.sends.push_back({claim.conn, std::move(cancel)});
        FreeSlot(w->second, "");
      }
      // The record goes on as any other (below).
    } else {
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
    changed = true;
    effects_.produces.push_back(
        {{EventRecord(api::FirstPendingEvent(task, options_.scheduler_id))},
         0});
  }
  Queued q;
  q.pos = pos;
  q.task = std::move(task);
  if (!changed) q.wire = std::move(value);
  Enqueue(std::move(q));
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

void SchedulerCore::Unpark(const std::string& job_id) {
  queues_.Unpark(job_id);
}

std::optional<SchedulerCore::Queued> SchedulerCore::TakeQueued(
    const std::string& task_id, int attempt) {
  std::optional<Queued> found = queues_.Take(task_id, attempt);
  if (found) UpdateBackpressure(found->task.priority());
  return found;
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
      if (l != leases_.end() && l->second.started_at != absl::InfinitePast()) {
        const double secs = std::max(
            0.0, absl::ToDoubleSeconds(clock_->Now() - l->second.started_at));
        ++metrics_.run_time_count;
        metrics_.run_time_sum_seconds += secs;
        for (size_t b = 0; b < SchedulerMetrics::kStartLatencyBounds.size();
             ++b) {
          if (secs <= SchedulerMetrics::kStartLatencyBounds[b]) {
            ++metrics_.run_time_buckets[b];
          }
        }
      }
      if (l != leases_.end()) {
        if (auto w = workers_.find(l->second.conn); w != workers_.end()) {
          w->second.task_ids.erase(d.task_id);
          --w->second.deciding;
          ++w->second.completed;
        }
        leases_.erase(l);
      }
      SendAck(d.ack_conn, d.ack_token, kAckOk, "");
      RememberAcked(d.ack_token.lease_id());
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
    Queued q;
    q.pos = d.pos;
    q.task = std::move(retry->task);
    Enqueue(std::move(q));
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

void SchedulerCore::StopDispatchingFrom(
    const std::vector<std::pair<std::string, int32_t>>& partitions) {
  std::set<std::pair<std::string, int32_t>> gone(partitions.begin(),
                                                 partitions.end());
  queues_.RemoveIf([&](const Queued& q) {
    return gone.count({q.pos.topic, q.pos.partition}) > 0;
  });
  for (int p = 0; p < kNumPriorities; ++p) UpdateBackpressure(p);
}

size_t SchedulerCore::InFlightIn(
    const std::vector<std::pair<std::string, int32_t>>& partitions) const {
  std::set<std::pair<std::string, int32_t>> in(partitions.begin(),
                                               partitions.end());
  size_t n = pending_.CountIn(partitions);
  for (const auto& [id, lease] : leases_) {
    if (!lease.deciding && in.count({lease.pos.topic, lease.pos.partition})) {
      ++n;
    }
  }
  return n;
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

void SchedulerCore::RememberAcked(const std::string& lease_id) {
  if (lease_id.empty() || acked_leases_.contains(lease_id)) return;
  acked_leases_.insert(acked_order_.emplace_back(lease_id));
  if (acked_order_.size() > kRememberedAcks) {
    acked_leases_.erase(acked_order_.front());
    acked_order_.pop_front();
  }
}

}  // namespace kwq::scheduler
