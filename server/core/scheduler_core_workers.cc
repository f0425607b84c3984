// SchedulerCore, the worker side: hellos (checked before trusted), worker
// messages, updates, the end of an attempt, adoption and claims, slots.
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

void SchedulerCore::Adopt(ConnId conn, Worker& w,
                          const kwq::v1::FencingToken& token,
                          RecordPosition pos, Task task) {
  if (leases_.contains(token.task_id()))
    return;  // never two leases of one task
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
  const int max_in_flight =
      api::MaxHelloInFlight(hello.slots(), hello.prefetch());
  if (hello.in_flight_size() > max_in_flight) {
    return absl::StrCat("hello.in_flight lists ", hello.in_flight_size(),
                        " tasks; at most min(16 x (slots + prefetch) + 1024, "
                        "10000) = ",
                        max_in_flight);
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
  if (workers_.count(conn)) {
    // A stream says hello once (the shell passes later ones as messages);
    // taking a second would orphan the first one's leases.
    Reject(conn, "hello sent twice on one stream");
    return;
  }
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
  auto w = workers_.find(conn);
  if (w == workers_.end()) return;
  if (code == kAckOk && message.empty() && w->second.hello.ack_batches()) {
    effects_.ok_acks.push_back({conn, token.lease_id()});
    return;
  }
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
    if (update.state() == kwq::v1::COMPLETED &&
        acked_leases_.contains(update.token().lease_id())) {
      // Sent again after its ack was lost: it was applied; drop it.
      SendAck(conn, update.token(), kAckOk,
              "already applied: this completion was acknowledged before");
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
        if (held->state == kwq::v1::ALLOCATED) {
          *ev.mutable_allocated_time() = ToProto(held->time);
        } else {
          if (held->allocated_time != absl::InfinitePast()) {
            *ev.mutable_allocated_time() = ToProto(held->allocated_time);
          }
          *ev.mutable_running_time() = ToProto(held->time);
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
      effects_.produces.push_back(
          {RecordsOf(EventRecord(ev),
                     OutRecord{topics_.Results(), lease.task.job_id(),
                               result.SerializeAsString()}),
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
        !infra && !retryable
            ? absl::StrCat("a non-retryable error on attempt ", task.attempt(),
                           ": ", error)
            : absl::StrCat(infra ? "infrastructure failures" : "task errors",
                           " used up its ", infra ? max_infra : max_task_errors,
                           " attempts; last error: ", error));
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

}  // namespace kwq::scheduler
