#include "server/scheduler_service.h"

#include <unistd.h>

#include <algorithm>
#include <random>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "glog/logging.h"
#include "server/api/limits.h"
#include "server/auth/server_security.h"
#include "server/util/time_util.h"
#include "server/worker_stream.h"

namespace kwq::scheduler {
namespace {

// How long a revoke waits for the decisions on their way about records of the
// partitions it gives up (see on_revoked).
constexpr absl::Duration kRevokeWait = absl::Seconds(3);

grpc::Status ToGrpc(const absl::Status& s) {
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()),
                      std::string(s.message()));
}

}  // namespace

SchedulerService::SchedulerService(ServiceOptions options,
                                   SchedulerBackend* backend,
                                   const Clock* clock)
    : options_(std::move(options)),
      topics_(options_.core.topic_prefix),
      admission_({options_.core.scheduler_id, options_.core.topic_prefix,
                  options_.limits, options_.dedup_window_ids,
                  options_.core.known_jobs}),
      backend_(backend),
      clock_(clock) {
  core_ = std::make_unique<SchedulerCore>(
      options_.core, clock_,
      static_cast<uint64_t>(absl::ToUnixNanos(absl::Now())));
  loop_ = std::make_unique<EventLoop>(
      [this] {
        core_->OnTick();
        Execute(core_->TakeEffects());
        UpdateGroupMembership();
      },
      absl::Milliseconds(10), [this] { FlushOutbox(); });
}

SchedulerService::~SchedulerService() {
  if (parked_) parked_->Stop();
  if (jobs_) jobs_->Stop();
  if (control_) control_->Stop();
  if (log_) log_->Stop(absl::Seconds(5));
  loop_->Stop();
}

absl::Status SchedulerService::Start() {
  std::vector<TopicSpec> topics;
  const std::vector<std::string>& priority_topics = topics_.Priorities();
  for (const std::string& topic : priority_topics) {
    topics.push_back({topic, options_.partitions, {}});
  }
  topics.push_back({topics_.Events(), options_.partitions, {}});
  topics.push_back({topics_.Results(), options_.partitions, {}});
  topics.push_back({topics_.Dlq(), 1, {}});
  topics.push_back({topics_.Control(), 1, {{"cleanup.policy", "compact"}}});
  // Every submitted job, keyed by job id, so that each instance knows the
  // jobs submitted through the others (NOT_FOUND answers); kept a week.
  topics.push_back(
      {topics_.Jobs(),
       1,
       {{"cleanup.policy", "compact,delete"}, {"retention.ms", "604800000"}}});
  // Tasks of paused jobs beyond the memory cap, keyed by task id: compaction
  // keeps the newest copy of each (see ParkedReplayer).
  topics.push_back(
      {topics_.Parked(), options_.partitions, {{"cleanup.policy", "compact"}}});
  if (absl::Status s = backend_->EnsureTopics(topics); !s.ok()) return s;

  // Pauses and cancels first: nothing is dispatched before they are known.
  auto control = backend_->Follow(
      topics_.Control(),
      [this](const std::string& key, const std::string& value) {
        WithCore([key, value](SchedulerCore& core) {
          core.OnControlRecord(key, value);
        });
      },
      absl::Seconds(30));
  if (!control.ok()) return control.status();
  control_ = std::move(*control);
  auto jobs = backend_->Follow(
      topics_.Jobs(),
      [this](const std::string& key, const std::string&) {
        WithCore([key](SchedulerCore& core) { core.OnJobSeen(key); });
      },
      absl::Seconds(30));
  if (!jobs.ok()) return jobs.status();
  jobs_ = std::move(*jobs);

  TaskLog::Callbacks callbacks;
  callbacks.on_record = [this](const std::string& topic, int32_t partition,
                               int64_t offset, std::string value) {
    WithCore([pos = RecordPosition{topic, partition, offset},
              value = std::move(value)](SchedulerCore& core) mutable {
      core.OnTaskRecord(pos, std::move(value));
    });
  };
  callbacks.on_assigned = [this](const std::vector<CommittedPosition>& parts) {
    std::vector<SchedulerCore::AssignedPartition> assigned;
    for (const auto& p : parts) {
      assigned.push_back({p.topic, p.partition, p.offset, p.metadata});
    }
    loop_->RunSync([&] { core_->OnPartitionsAssigned(assigned); });
  };
  callbacks.on_revoked =
      [this](const std::vector<std::pair<std::string, int32_t>>& parts) {
        // What a revoke keeps: nothing more of these partitions is dispatched;
        // attempts running and decisions on their way to Kafka are waited for
        // (at most kRevokeWait) and committed by this owner, so the next owner
        // does not run those tasks again. Longer attempts keep running; their
        // decisions are remembered if the partitions come back.
        const absl::Time deadline = absl::Now() + kRevokeWait;
        loop_->RunSync([&] {
          core_->StopDispatchingFrom(parts);
          Execute(core_->TakeEffects());
        });
        while (true) {
          size_t in_flight = 0;
          loop_->RunSync([&] { in_flight = core_->InFlightIn(parts); });
          if (in_flight == 0 || absl::Now() > deadline) break;
          absl::SleepFor(absl::Milliseconds(2));
        }
        loop_->RunSync([&] {
          core_->FlushCommits();  // before the ledger lets the partitions go
          core_->OnPartitionsRevoked(parts);
          Execute(core_->TakeEffects());
        });
      };
  ParkedReplayerOptions parked;
  parked.parked_topic = topics_.Parked();
  parked.group = options_.core.topic_prefix + ".parkers";
  parked.topic_for_priority = [this](int p) { return topics_.ForPriority(p); };
  parked.paused_jobs = [this] {
    std::set<std::string> jobs;
    loop_->RunSync([&] { jobs = core_->paused_jobs(); });
    return jobs;
  };
  auto replayer = backend_->StartParked(std::move(parked));
  if (!replayer.ok()) return replayer.status();
  parked_ = std::move(*replayer);

  auto log = backend_->OpenTaskLog(options_.core.topic_prefix + ".schedulers",
                                   priority_topics, std::move(callbacks));
  if (!log.ok()) return log.status();
  log_ = std::move(log).value();
  if (absl::Status s = EnsureGroupLeaseKey(); !s.ok()) return s;
  std::vector<std::string> produced_to = priority_topics;
  for (const auto& t : topics) produced_to.push_back(t.name);
  log_->WarmUp(produced_to);
  group_member_ = options_.release_partitions_after <= absl::ZeroDuration();
  log_->SetGroupMember(group_member_);
  log_->Start();
  ready_ = true;
  return absl::OkStatus();
}

void SchedulerService::UpdateGroupMembership() {
  if (!ready_ || options_.release_partitions_after <= absl::ZeroDuration()) {
    return;
  }
  const absl::Time now = clock_->Now();
  if (core_->serving_workers() > 0) {
    no_workers_since_ = absl::InfiniteFuture();
    if (!group_member_) {
      group_member_ = true;
      LOG(INFO) << "a worker connected: taking a share of the partitions";
      log_->SetGroupMember(true);
    }
    return;
  }
  if (no_workers_since_ == absl::InfiniteFuture()) no_workers_since_ = now;
  if (group_member_ &&
      now - no_workers_since_ >= options_.release_partitions_after) {
    group_member_ = false;
    LOG(INFO) << "no worker for "
              << absl::FormatDuration(options_.release_partitions_after)
              << ": giving the partitions to instances that have workers";
    log_->SetGroupMember(false);
  }
}

absl::Status SchedulerService::EnsureGroupLeaseKey() {
  auto has_key = [this] {
    bool has = false;
    loop_->RunSync([&] { has = core_->has_group_lease_key(); });
    return has;
  };
  if (has_key()) return absl::OkStatus();  // --lease_key_file, or the topic
  // The first instance of a group writes a random key to the control topic;
  // every instance (this one too) takes the last key the topic holds, so two
  // that start at once agree once both have read both records.
  std::random_device rd;
  std::string key(32, '\0');
  for (char& c : key) c = static_cast<char>(rd() & 0xff);
  absl::Notification written;
  bool ok = false;
  std::string error;
  log_->Produce({{topics_.Control(), kLeaseKeyRecord, key, /*urgent=*/true}},
                [&](const TaskLog::ProduceResult& r) {
                  ok = r.ok();
                  error = std::string(r.status.message());
                  written.Notify();
                });
  if (!written.WaitForNotificationWithTimeout(absl::Seconds(30)) || !ok) {
    return absl::UnavailableError(
        absl::StrCat("could not write the group's lease key to ",
                     topics_.Control(), ": ", error));
  }
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (!has_key()) {
    if (absl::Now() > deadline) {
      return absl::UnavailableError(absl::StrCat("the lease key written to ",
                                                 topics_.Control(),
                                                 " did not come back"));
    }
    absl::SleepFor(absl::Milliseconds(5));  // the control reader follows
  }
  return absl::OkStatus();
}

void SchedulerService::FlushOutbox() {
  // Applied completions: one AckBatch per stream, after its other messages.
  if (!ok_acks_.empty()) {
    std::stable_sort(ok_acks_.begin(), ok_acks_.end(),
                     [](const Effects::OkAck& a, const Effects::OkAck& b) {
                       return a.conn < b.conn;
                     });
    for (size_t i = 0; i < ok_acks_.size();) {
      Effects::Send send{ok_acks_[i].conn, {}};
      auto* ids = send.msg.mutable_acks()->mutable_lease_ids();
      for (; i < ok_acks_.size() && ok_acks_[i].conn == send.conn; ++i) {
        ids->Add(std::move(ok_acks_[i].lease_id));
      }
      outbox_.push_back(std::move(send));
    }
    ok_acks_.clear();
  }
  // Grouped by connection, each stream's messages in the order the core made
  // them (a stable sort of indexes: sorting the messages moved each several
  // times).
  std::vector<uint32_t> order(outbox_.size());
  for (uint32_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [this](uint32_t a, uint32_t b) {
    return outbox_[a].conn < outbox_[b].conn;
  });
  for (size_t i = 0; i < order.size();) {
    const uint64_t conn = outbox_[order[i]].conn;
    size_t end = i + 1;
    while (end < order.size() && outbox_[order[end]].conn == conn) ++end;
    auto it = streams_.find(conn);
    if (it != streams_.end()) {
      std::vector<kwq::v1::SchedulerMessage> msgs;
      msgs.reserve(end - i);
      for (size_t k = i; k < end; ++k)
        msgs.push_back(std::move(outbox_[order[k]].msg));
      it->second->Send(std::move(msgs));
    }
    i = end;
  }
  outbox_.clear();
  for (auto& close : closing_) {
    auto it = streams_.find(close.conn);
    if (it != streams_.end()) {
      it->second->Close(
          grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, close.reason));
    }
  }
  closing_.clear();
}

void SchedulerService::WithCore(std::function<void(SchedulerCore&)> fn) {
  loop_->Post([this, fn = std::move(fn)] {
    fn(*core_);
    Execute(core_->TakeEffects());
  });
}

void SchedulerService::Execute(Effects effects) {
  if (outbox_.empty()) {
    outbox_ = std::move(effects.sends);
  } else {
    for (auto& send : effects.sends) outbox_.push_back(std::move(send));
  }
  for (auto& ack : effects.ok_acks) ok_acks_.push_back(std::move(ack));
  for (auto& close : effects.closes) closing_.push_back(std::move(close));
  for (auto& produce : effects.produces) {
    std::vector<LogRecord> records;
    records.reserve(produce.records.size());
    for (auto& r : produce.records) {
      records.push_back(
          {std::move(r.topic), std::move(r.key), std::move(r.value)});
    }
    const uint64_t cookie = produce.cookie;
    log_->Produce(std::move(records),
                  [this, cookie](const TaskLog::ProduceResult& r) {
                    const bool ok = r.ok();
                    if (!ok) LOG(WARNING) << "produce failed: " << r.status;
                    if (cookie == 0) return;
                    WithCore([cookie, ok](SchedulerCore& core) {
                      core.OnDurable(cookie, ok);
                    });
                  });
  }
  if (effects.replay_parked && parked_) parked_->RequestPass();
  for (auto& c : effects.commits)
    log_->Commit(c.topic, c.partition, c.next_offset, c.metadata);
  for (auto& p : effects.pauses) {
    VLOG(1) << (p.paused ? "pausing" : "resuming") << " priority "
            << p.priority;
    log_->SetTopicPaused(topics_.ForPriority(p.priority), p.paused);
  }
}

bool SchedulerService::Admit(grpc::CallbackServerContext* ctx,
                             grpc::ServerUnaryReactor* reactor, auth::Role role,
                             auth::Identity* who) {
  if (!ready_) {
    // The gRPC server answers (health probes) while Start() still waits for
    // Kafka; nothing of the service may run before it finished (a Submit or
    // ListQueues then reached the task log before it existed: SIGSEGV on a
    // restart under load, found by the 50M soak).
    reactor->Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                                 "the scheduler is starting; try again"));
    return false;
  }
  grpc::Status s = auth::CheckCall(options_.authorizer.get(), *ctx, role, who);
  if (s.ok()) return true;
  reactor->Finish(s);
  return false;
}

grpc::ServerUnaryReactor* SchedulerService::Submit(
    grpc::CallbackServerContext* ctx, const kwq::v1::SubmitRequest* request,
    kwq::v1::SubmitResponse* response) {
  auto* reactor = ctx->DefaultReactor();
  auth::Identity who;
  if (!Admit(ctx, reactor, auth::Role::kSubmit, &who)) return reactor;
  auto plan = std::make_shared<SubmitAdmission::Plan>();
  const bool authenticated =
      options_.authorizer != nullptr && !options_.authorizer->open();
  if (absl::Status s = admission_.Admit(
          *request, authenticated ? who.principal : ctx->peer(),
          ToProto(clock_->Now()), response, plan.get());
      !s.ok()) {
    reactor->Finish(ToGrpc(s));
    return reactor;
  }
  // The task records first, then the PENDING events of those that are
  // durable: a task Kafka refused never shows as PENDING in the tracker (a
  // phantom), and a PENDING event always names a task that exists. (An event
  // written after its task's ALLOCATED or RUNNING is harmless: the tracker
  // ranks stages, it does not take them in arrival order.)
  std::vector<LogRecord> first = std::move(plan->first);
  log_->Produce(
      std::move(first), [this, reactor, plan](const TaskLog::ProduceResult& r) {
        std::set<size_t> failed(r.failed.begin(), r.failed.end());
        std::vector<LogRecord> events;
        std::vector<std::string> again;  // tasks whose record is not durable
        for (size_t i = 0; i < plan->ids.size(); ++i) {
          if (failed.count(plan->task_record[i])) {
            again.push_back(plan->ids[i]);
          } else {
            events.push_back(std::move(plan->pending_events[i]));
          }
        }
        // Off the log's delivery thread: the loop produces the events and
        // answers.
        loop_->Post([this, reactor, plan, r, again = std::move(again),
                     events = std::move(events)]() mutable {
          const size_t durable = events.size();
          log_->Produce(
              std::move(events), [this, reactor, plan, r, again,
                                  durable](const TaskLog::ProduceResult& er) {
                if (!er.ok()) {
                  // The tasks are durable and will run; the tracker learns of
                  // them from their next event instead.
                  LOG(WARNING)
                      << er.failed.size() << " of " << durable
                      << " PENDING events not durable: " << er.status.message();
                }
                FinishSubmit(reactor, r, again, plan->new_jobs);
              });
        });
      });
  return reactor;
}

void SchedulerService::FinishSubmit(grpc::ServerUnaryReactor* reactor,
                                    const TaskLog::ProduceResult& r,
                                    const std::vector<std::string>& again,
                                    const std::vector<std::string>& new_jobs) {
  if (r.ok()) {
    reactor->Finish(grpc::Status::OK);
    return;
  }
  {
    admission_.Forget(again, new_jobs);
    // Bounded: 10,000 ids would not fit in a status message.
    constexpr size_t kListed = 20;
    std::string listed = absl::StrJoin(
        again.begin(), again.begin() + std::min(again.size(), kListed), ",");
    if (again.size() > kListed) {
      absl::StrAppend(&listed, " and ", again.size() - kListed, " more");
    }
    reactor->Finish(grpc::Status(
        grpc::StatusCode::UNAVAILABLE,
        api::Truncated(
            absl::StrCat("Kafka did not acknowledge ", r.failed.size(), " of ",
                         "the batch's records (", r.status.message(), "); ",
                         again.size(),
                         " tasks may not be durable, submit "
                         "them again with the same ids: ",
                         listed),
            4096)));
  }
}

grpc::ServerBidiReactor<kwq::v1::WorkerMessage, kwq::v1::SchedulerMessage>*
SchedulerService::Connect(grpc::CallbackServerContext* ctx) {
  auth::Identity who;
  grpc::Status admitted =
      auth::CheckCall(options_.authorizer.get(), *ctx, auth::Role::kWork, &who);
  return new WorkerReactor(this, ctx, next_conn_++, admitted,
                           std::move(who.principal));
}

void SchedulerService::StreamHello(uint64_t conn,
                                   std::shared_ptr<WorkerStream> stream,
                                   kwq::v1::Hello hello) {
  if (!ready_) {
    // Not before the pauses, cancels and the group's lease key are known: a
    // reconnecting worker's leases could not be verified yet.
    stream->Close(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                               "the scheduler is starting; connect again"));
    return;
  }
  if (options_.authorizer != nullptr && !options_.authorizer->open()) {
    // A worker's identity lives under its principal: leases are signed for
    // "<principal>:<worker_id>", so no principal can take over (or adopt the
    // leases of) another one's workers by naming them.
    const std::string prefix = stream->principal() + ":";
    if (!absl::StartsWith(hello.worker_id(), prefix)) {
      hello.set_worker_id(prefix + hello.worker_id());
    }
  }
  loop_->Post([this, conn, stream = std::move(stream), hello] {
    streams_[conn] = stream;
    LOG(INFO) << "worker " << hello.worker_id() << " connected from "
              << stream->peer() << " with " << hello.slots() << " slots";
    core_->OnWorkerConnected(conn, hello);
    Execute(core_->TakeEffects());
  });
}

void SchedulerService::StreamMessage(uint64_t conn,
                                     kwq::v1::WorkerMessage msg) {
  WithCore([conn, msg = std::move(msg)](SchedulerCore& core) {
    core.OnWorkerMessage(conn, msg);
  });
}

void SchedulerService::StreamClosed(uint64_t conn, const std::string& reason) {
  loop_->Post([this, conn, reason] {
    if (streams_.erase(conn) > 0)
      LOG(INFO) << "worker stream " << conn << ": " << reason;
    core_->OnWorkerDisconnected(conn, reason);
    Execute(core_->TakeEffects());
  });
}

grpc::ServerUnaryReactor* SchedulerService::ListWorkers(
    grpc::CallbackServerContext* ctx, const kwq::v1::ListWorkersRequest*,
    kwq::v1::ListWorkersResponse* response) {
  auto* reactor = ctx->DefaultReactor();
  if (!Admit(ctx, reactor, auth::Role::kView)) return reactor;
  loop_->Post([this, reactor, response] {
    response->set_scheduler_id(options_.core.scheduler_id);
    for (const WorkerView& w : core_->Workers()) {
      auto* info = response->add_workers();
      info->set_worker_id(w.hello.worker_id());
      if (auto it = streams_.find(w.conn); it != streams_.end()) {
        info->set_peer(it->second->peer());
      }
      info->set_slots(w.hello.slots());
      info->set_prefetch(w.hello.prefetch());
      info->set_in_flight(w.in_flight);
      info->set_free_credits(w.credits);
      *info->mutable_affinity_keys() = w.hello.affinity_keys();
      *info->mutable_labels() = w.hello.labels();
      *info->mutable_connected_at() = ToProto(w.connected_at);
      *info->mutable_last_heartbeat() = ToProto(w.last_heartbeat);
      info->set_completed(w.completed);
      info->set_errors(w.errors);
      info->set_draining(w.draining);
      info->set_sdk(w.hello.sdk());
    }
    reactor->Finish(grpc::Status::OK);
  });
  return reactor;
}

grpc::ServerUnaryReactor* SchedulerService::ExplainTask(
    grpc::CallbackServerContext* ctx,
    const kwq::v1::ExplainTaskRequest* request,
    kwq::v1::ExplainTaskResponse* response) {
  auto* reactor = ctx->DefaultReactor();
  if (!Admit(ctx, reactor, auth::Role::kView)) return reactor;
  if (!api::IsValidId(request->task_id())) {
    reactor->Finish(
        grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                     "task_id must be 1-128 characters of [A-Za-z0-9._:-]"));
    return reactor;
  }
  loop_->Post([this, reactor, request, response] {
    kwq::v1::TaskState state;
    std::string worker;
    auto reasons = core_->Explain(request->task_id(), &state, &worker);
    if (reasons.empty()) {
      reactor->Finish(grpc::Status(
          grpc::StatusCode::NOT_FOUND,
          absl::StrCat(
              "task ", request->task_id(),
              " is not queued or running on this scheduler instance (it may be "
              "finished, unknown, or held by another instance)")));
      return;
    }
    response->set_task_id(request->task_id());
    response->set_state(state);
    response->set_worker_id(worker);
    for (auto& r : reasons) response->add_reasons(r);
    reactor->Finish(grpc::Status::OK);
  });
  return reactor;
}

grpc::ServerUnaryReactor* SchedulerService::Control(
    grpc::CallbackServerContext* ctx, const kwq::v1::Scope& scope, bool cancel,
    bool set, const std::string& requested_by) {
  auto* reactor = ctx->DefaultReactor();
  auth::Identity who;
  if (!Admit(ctx, reactor, auth::Role::kOperate, &who)) return reactor;
  // With identities, who asked is the authenticated principal (the request's
  // free text is not trusted).
  const bool authenticated =
      options_.authorizer != nullptr && !options_.authorizer->open();
  auto fail = [&](grpc::StatusCode code, const std::string& msg) {
    reactor->Finish(grpc::Status(code, msg));
    return reactor;
  };
  if (absl::Status s =
          ControlState::ValidateRequest(scope, cancel, requested_by);
      !s.ok()) {
    return fail(grpc::StatusCode::INVALID_ARGUMENT, std::string(s.message()));
  }
  const std::string key = ControlState::Key(scope, cancel);
  std::string value;  // empty: a tombstone (resume)
  if (set) {
    kwq::v1::ControlRecord rec;
    *rec.mutable_scope() = scope;
    rec.set_paused(!cancel);
    rec.set_cancelled(cancel);
    *rec.mutable_time() = ToProto(clock_->Now());
    rec.set_requested_by(authenticated          ? who.principal
                         : requested_by.empty() ? ctx->peer()
                                                : requested_by);
    value = rec.SerializeAsString();
  }
  // On the loop (no gRPC thread waits for it): unknown jobs and tasks are
  // NOT_FOUND (what this instance has seen; see README), the rest produced.
  loop_->Post([this, reactor, scope, key, value, check = set || cancel] {
    const bool known =
        !check || (scope.has_job_id()    ? core_->KnowsJob(scope.job_id())
                   : scope.has_task_id() ? core_->HoldsTask(scope.task_id())
                                         : true);
    if (!known) {
      reactor->Finish(grpc::Status(
          grpc::StatusCode::NOT_FOUND,
          scope.has_job_id()
              ? absl::StrCat("no job ", scope.job_id(),
                             " is known to this scheduler")
              : absl::StrCat("task ", scope.task_id(),
                             " is not queued or running on this scheduler")));
      return;
    }
    log_->Produce(
        {{topics_.Control(), key, value, /*urgent=*/true}},
        [this, reactor, key, value](const TaskLog::ProduceResult& r) {
          if (!r.ok()) {
            const std::string error(r.status.message());
            reactor->Finish(grpc::Status(
                grpc::StatusCode::UNAVAILABLE,
                absl::StrCat("the control record is not durable: ", error)));
            return;
          }
          // Obeyed here at once; other instances as they read the topic.
          WithCore([key, value](SchedulerCore& core) {
            core.OnControlRecord(key, value);
          });
          reactor->Finish(grpc::Status::OK);
        });
  });
  return reactor;
}

grpc::ServerUnaryReactor* SchedulerService::Pause(
    grpc::CallbackServerContext* ctx, const kwq::v1::PauseRequest* request,
    kwq::v1::PauseResponse*) {
  return Control(ctx, request->scope(), /*cancel=*/false, /*set=*/true,
                 request->requested_by());
}
grpc::ServerUnaryReactor* SchedulerService::Resume(
    grpc::CallbackServerContext* ctx, const kwq::v1::ResumeRequest* request,
    kwq::v1::ResumeResponse*) {
  return Control(ctx, request->scope(), /*cancel=*/false, /*set=*/false,
                 request->requested_by());
}
grpc::ServerUnaryReactor* SchedulerService::Cancel(
    grpc::CallbackServerContext* ctx, const kwq::v1::CancelRequest* request,
    kwq::v1::CancelResponse*) {
  return Control(ctx, request->scope(), /*cancel=*/true, /*set=*/true,
                 request->requested_by());
}

grpc::ServerUnaryReactor* SchedulerService::ListQueues(
    grpc::CallbackServerContext* ctx, const kwq::v1::ListQueuesRequest*,
    kwq::v1::ListQueuesResponse* response) {
  auto* reactor = ctx->DefaultReactor();
  if (!Admit(ctx, reactor, auth::Role::kView)) return reactor;
  const int64_t lag = log_->GetStats().consumer_lag;
  loop_->Post([this, reactor, response, lag] {
    response->set_scheduler_id(options_.core.scheduler_id);
    const SchedulerMetrics m = core_->metrics();
    const ControlState& control = core_->control();
    for (int p = api::kNumPriorities - 1; p >= 0; --p) {
      auto* q = response->add_queues();
      q->set_priority(p);
      q->set_depth(static_cast<int64_t>(core_->buffered(p)));
      q->set_oldest_age_seconds(
          m.oldest_queued_seconds[static_cast<size_t>(p)]);
      q->set_paused(control.priority_paused(p));
    }
    response->set_in_flight(static_cast<int64_t>(core_->leases()));
    response->set_consumer_lag(lag);
    response->set_all_paused(control.all_paused());
    response->set_paused_jobs_total(
        static_cast<int64_t>(control.paused_jobs().size()));
    for (const auto& job : control.paused_jobs()) {
      if (response->paused_jobs_size() >= 100) break;
      response->add_paused_jobs(job);
    }
    reactor->Finish(grpc::Status::OK);
  });
  return reactor;
}

MetricsSnapshot SchedulerService::Snapshot() {
  MetricsSnapshot s;
  loop_->RunSync([&] {
    s.core = core_->metrics();
    for (int p = 0; p < api::kNumPriorities; ++p)
      s.queued[static_cast<size_t>(p)] = core_->buffered(p);
    s.in_flight = core_->leases();
    s.workers = streams_.size();
  });
  const TaskLog::Stats stats = log_->GetStats();
  s.commit_errors = stats.commit_errors;
  s.consumer_lag = stats.consumer_lag;
  return s;
}

SchedulerMetrics SchedulerService::Metrics() {
  SchedulerMetrics m;
  loop_->RunSync([&] { m = core_->metrics(); });
  return m;
}

void SchedulerService::Drain(absl::Duration grace) {
  LOG(INFO) << "draining: no new assignments; waiting up to "
            << absl::FormatDuration(grace) << " for in-flight tasks";
  loop_->RunSync([&] { core_->StopLeasing(); });
  const absl::Time deadline = absl::Now() + grace;
  while (absl::Now() < deadline) {
    size_t open = 0;
    loop_->RunSync(
        [&] { open = core_->leases() + core_->pending_decisions(); });
    if (open == 0) break;
    absl::SleepFor(absl::Milliseconds(20));
  }
  loop_->RunSync([&] {
    core_->FlushCommits();     // what was decided in the last tick interval
    core_->FlushHeldEvents();  // stage events still held for folding
    Execute(core_->TakeEffects());
    FlushOutbox();  // before the goodbye and the close
    kwq::v1::SchedulerMessage bye;
    bye.mutable_go_away()->set_reason("scheduler shutting down");
    for (auto& [conn, stream] : streams_) {
      stream->Send(bye);
      stream->Close(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                                 "scheduler shutting down"));
    }
  });
  if (parked_) parked_->Stop();
  if (jobs_) jobs_->Stop();
  if (control_) control_->Stop();
  if (log_) log_->Stop(absl::Seconds(10));
}

}  // namespace kwq::scheduler
