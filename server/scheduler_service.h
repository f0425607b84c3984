#pragma once

#include <atomic>
#include <deque>
#include <map>
#include <memory>
#include <string>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "kwq/v1/scheduler.grpc.pb.h"
#include "server/api/priorities.h"
#include "server/api/task_validation.h"
#include "server/api/topics.h"
#include "server/auth/authorizer.h"
#include "server/core/scheduler_core.h"
#include "server/kafka/scheduler_backend.h"
#include "server/metrics_exporter.h"
#include "server/submit_admission.h"
#include "server/util/clock.h"
#include "server/util/event_loop.h"
#include "server/worker_stream.h"

namespace kwq::scheduler {

struct ServiceOptions {
  SchedulerOptions core;
  api::ValidationLimits limits;
  int partitions = 4;
  // Client-given task ids remembered for Submit idempotency (per scheduler
  // instance).
  size_t dedup_window_ids = 1'000'000;
  absl::Duration submit_timeout = absl::Seconds(30);
  // An instance with no connected worker for this long leaves the consumer
  // group, so its partitions go to instances that have workers (and it joins
  // again when a worker connects; it starts out of the group until then).
  // Zero (the in-process default; kwq_scheduler's flag is 5 s): always a
  // member.
  absl::Duration release_partitions_after = absl::ZeroDuration();
  // Who may call which RPC (server/auth); null: every caller may do
  // everything (the loopback dev default).
  std::shared_ptr<auth::Authorizer> authorizer;
};

// The gRPC adapter of the scheduler: Submit, the worker streams (one callback
// reactor per worker) and the admin RPCs. Owns the core, which lives on one
// EventLoop; gRPC and Kafka threads only post into that loop. Thread-safe.
class SchedulerService final : public kwq::v1::Scheduler::CallbackService,
                               public WorkerStreamHandler {
 public:
  // `backend` (not owned) is Kafka in production (MakeKafkaBackend), memory
  // in fast tests (MakeMemoryBackend).
  SchedulerService(ServiceOptions options, SchedulerBackend* backend,
                   const Clock* clock = SystemClock::Get());
  ~SchedulerService() override;

  // Creates the topics when missing, opens the task log and starts consuming.
  absl::Status Start();
  // Drain: stop leasing, wait up to `grace` for in-flight work, tell workers to
  // go away, leave the group (undecided offsets stay uncommitted).
  void Drain(absl::Duration grace);

  grpc::ServerUnaryReactor* Submit(grpc::CallbackServerContext* ctx,
                                   const kwq::v1::SubmitRequest* request,
                                   kwq::v1::SubmitResponse* response) override;
  grpc::ServerBidiReactor<kwq::v1::WorkerMessage, kwq::v1::SchedulerMessage>*
  Connect(grpc::CallbackServerContext* ctx) override;
  grpc::ServerUnaryReactor* ListWorkers(
      grpc::CallbackServerContext* ctx,
      const kwq::v1::ListWorkersRequest* request,
      kwq::v1::ListWorkersResponse* response) override;
  grpc::ServerUnaryReactor* ExplainTask(
      grpc::CallbackServerContext* ctx,
      const kwq::v1::ExplainTaskRequest* request,
      kwq::v1::ExplainTaskResponse* response) override;
  grpc::ServerUnaryReactor* ListQueues(
      grpc::CallbackServerContext* ctx,
      const kwq::v1::ListQueuesRequest* request,
      kwq::v1::ListQueuesResponse* response) override;
  grpc::ServerUnaryReactor* Pause(grpc::CallbackServerContext* ctx,
                                  const kwq::v1::PauseRequest* request,
                                  kwq::v1::PauseResponse* response) override;
  grpc::ServerUnaryReactor* Resume(grpc::CallbackServerContext* ctx,
                                   const kwq::v1::ResumeRequest* request,
                                   kwq::v1::ResumeResponse* response) override;
  grpc::ServerUnaryReactor* Cancel(grpc::CallbackServerContext* ctx,
                                   const kwq::v1::CancelRequest* request,
                                   kwq::v1::CancelResponse* response) override;

  // For tests and metrics: a snapshot taken on the loop.
  SchedulerMetrics Metrics();
  // Everything /metrics reports, taken on the loop.
  MetricsSnapshot Snapshot();

  // WorkerStreamHandler (gRPC threads).
  void StreamHello(uint64_t conn, std::shared_ptr<WorkerStream> stream,
                   kwq::v1::Hello hello) override;
  void StreamMessage(uint64_t conn, kwq::v1::WorkerMessage msg) override;
  void StreamClosed(uint64_t conn, const std::string& reason) override;

 private:
  // The key lease ids are signed with, the same in every instance of the
  // group: from --lease_key_file, or the control topic (written there by the
  // first instance).
  absl::Status EnsureGroupLeaseKey();
  // True when the caller holds `role` (then `who` says who it is); otherwise
  // finishes `reactor` with UNAUTHENTICATED or PERMISSION_DENIED.
  bool Admit(grpc::CallbackServerContext* ctx,
             grpc::ServerUnaryReactor* reactor, auth::Role role,
             auth::Identity* who = nullptr);
  // Answers a Submit once its records were produced: OK, or UNAVAILABLE
  // listing the tasks (`again`) that are not durable.
  void FinishSubmit(grpc::ServerUnaryReactor* reactor,
                    const TaskLog::ProduceResult& r,
                    const std::vector<std::string>& again,
                    const std::vector<std::string>& new_jobs);
  grpc::ServerUnaryReactor* Control(grpc::CallbackServerContext* ctx,
                                    const kwq::v1::Scope& scope, bool cancel,
                                    bool set, const std::string& requested_by);
  // On the loop: produces, commits and pauses at once; stream writes and
  // closes go to the outbox.
  void Execute(Effects effects);
  // On the loop, after each batch of its work: every message the batch meant
  // for a stream in one Send (one stream write under load, where the worker
  // takes batches), then the closes.
  void FlushOutbox();
  void WithCore(
      std::function<void(SchedulerCore&)> fn);  // post + execute effects

  ServiceOptions options_;
  const api::Topics topics_;
  SubmitAdmission admission_;  // Submit's decisions (dedup, ids, records)
  SchedulerBackend* backend_;
  const Clock* clock_;
  std::unique_ptr<SchedulerCore> core_;  // loop thread only
  std::unique_ptr<TopicFeed> control_;
  std::unique_ptr<TopicFeed> jobs_;  // <prefix>.jobs: every submitted job
  std::unique_ptr<ParkedPasses> parked_;
  std::unique_ptr<TaskLog> log_;  // from the backend
  std::unique_ptr<EventLoop> loop_;
  std::map<uint64_t, std::shared_ptr<WorkerStream>>
      streams_;                          // loop thread only
  std::vector<Effects::Send> outbox_;    // loop thread only
  std::vector<Effects::OkAck> ok_acks_;  // loop thread only
  std::vector<Effects::Close> closing_;  // loop thread only
  std::atomic<uint64_t> next_conn_{1};
  std::atomic<bool> ready_{false};  // Start() finished: streams are taken
  // Group membership follows the workers (see release_partitions_after);
  // loop thread only.
  void UpdateGroupMembership();
  bool group_member_ = false;
  absl::Time no_workers_since_ = absl::InfiniteFuture();
};

}  // namespace kwq::scheduler
