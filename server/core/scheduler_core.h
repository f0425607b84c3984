#pragma once

#include <array>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/time/time.h"
#include "kwq/v1/control.pb.h"
#include "kwq/v1/task.pb.h"
#include "kwq/v1/worker.pb.h"
#include "server/api/priorities.h"
#include "server/api/topics.h"
#include "server/core/control_state.h"
#include "server/core/effects.h"
#include "server/core/lease_signer.h"
#include "server/core/partition_ledger.h"
#include "server/core/pending_decisions.h"
#include "server/core/task_queues.h"
#include "server/util/clock.h"

namespace kwq::scheduler {

struct SchedulerOptions {
  std::string scheduler_id = "sched";
  std::string topic_prefix = "kwq";
  absl::Duration lease_period = absl::Seconds(10);
  absl::Duration heartbeat_period = absl::Seconds(2);
  // Retry budgets; a task's max_attempts, when set, bounds each of them.
  int max_task_errors = 3;
  int max_infra_failures = 3;
  // Backoff before retry n (1-based): base * 2^(n-1), capped, times a jitter in
  // [0.5, 1].
  absl::Duration retry_backoff_base = absl::Milliseconds(100);
  absl::Duration retry_backoff_max = absl::Seconds(30);
  // Records buffered per priority (queued or waiting for backoff) before that
  // priority's partitions are paused; resumed below half of it.
  int max_buffered_per_priority = 2000;
  size_t max_result_bytes = 1 << 20;
  // The largest record the producer and the topics accept (message.max.bytes,
  // max.message.bytes): dead letters are cut to fit it.
  size_t max_record_bytes = 1'000'000;
  // Soft affinity: a task with affinity keys waits at most this long for a free
  // worker holding one of its keys (when a connected worker holds one), then
  // goes to any worker. Zero: prefer a matching free worker, never wait.
  absl::Duration affinity_wait = absl::Milliseconds(20);
  // Job ids remembered (to answer NOT_FOUND for control requests on unknown
  // jobs).
  size_t known_jobs = 100000;
  // Reconnect adoption: a reconnecting worker reports the tasks it still runs.
  // One whose record this instance does not hold yet (it arrives when the dead
  // instance's partitions are reassigned here) is claimed for this long: when
  // the record comes, the running attempt is adopted instead of dispatched
  // again. Past it, the worker is told to cancel the task.
  absl::Duration adoption_wait = absl::Seconds(30);
  // Tasks of paused jobs held in memory per priority; beyond it they are
  // written to <prefix>.parked (and their records decided), from where the
  // ParkedReplayer moves them back when the job resumes. Paused jobs' tasks do
  // not count against max_buffered_per_priority, so they never hold other jobs
  // back.
  int max_parked_in_memory_per_priority = 1000;
  // An attempt's ALLOCATED event is held this long: a RUNNING or COMPLETED
  // that comes meanwhile is written as one event carrying the earlier stage
  // times (TaskEvent.allocated_time / running_time) instead of one event per
  // stage (a short task: 2 events instead of 4). Zero: every stage is written
  // at once as its own event.
  absl::Duration event_fold_window = absl::Milliseconds(20);
  // The key of lease ids (LeaseSigner), shared by the instances of a group so
  // that a worker failing over keeps its running tasks. Empty: until the
  // group's key arrives (control record "lease-key"), a random one.
  std::string lease_key;
};

struct SchedulerMetrics {
  int64_t records_received = 0;
  int64_t bad_records = 0;
  int64_t dispatched = 0;
  int64_t completed = 0;
  int64_t task_errors = 0;
  int64_t infra_failures = 0;
  int64_t retries = 0;
  int64_t dead_lettered = 0;
  int64_t stale_updates = 0;
  // Dispatches of a task while a higher-priority task this worker could run
  // waited here. Must stay 0.
  int64_t priority_inversions = 0;
  int64_t durable_failures = 0;
  // Records received again after the consumer rewound; skipped (this owner has
  // them).
  int64_t redelivered_records = 0;
  // Records skipped on arrival because the commit metadata says they were
  // decided (above a committed prefix held back by a long task).
  int64_t skipped_decided = 0;
  // Records the broker deleted before they were decided (offsets skipped in a
  // partition: retention.ms or DeleteRecords); their tasks are lost.
  int64_t records_never_read = 0;
  // Soft affinity: dispatches to a worker holding one of the task's keys, to
  // one that did not (after the wait, or none connected holds a key), and tasks
  // held back waiting.
  int64_t affinity_hits = 0;
  int64_t affinity_misses = 0;
  int64_t affinity_holds = 0;
  int64_t cancelled = 0;
  int64_t timeouts = 0;
  // Queued here with no connected worker that has the labels they require (a
  // gauge, computed when metrics are read).
  int64_t unrunnable = 0;
  // Reconnect adoption: running attempts taken over from a reconnecting worker
  // (lease of this instance, queued record, or record that arrived later), and
  // claims that expired without their record (the worker was told to cancel).
  int64_t adopted = 0;
  int64_t adoption_expired = 0;
  // Heartbeat messages received from workers (about one per worker per
  // heartbeat period; more means a worker sends them for other reasons).
  int64_t heartbeats = 0;
  // Worker input refused: streams closed for a malformed or oversized
  // message, reconnect claims whose lease was not issued to that worker,
  // heartbeats beyond the rate limit (ignored).
  int64_t rejected_worker_messages = 0;
  int64_t forged_claims = 0;
  int64_t heartbeats_dropped = 0;
  // Streams replaced by a newer stream of the same worker id.
  int64_t streams_replaced = 0;
  // Records of tasks whose decision is on its way (the partition was taken
  // away and given back meanwhile): left to that decision.
  int64_t redelivered_running = 0;
  // Records of a task running here already (its id produced twice).
  int64_t duplicate_records = 0;
  // Records of the control topic ignored: an unknown key, or a value that is
  // not a ControlRecord matching its key.
  int64_t bad_control_records = 0;
  // Tasks of paused jobs written to the parked topic (beyond the memory cap).
  int64_t parked_to_kafka = 0;
  // Gauges computed when metrics are read: tasks of paused jobs held in
  // memory, and per priority the age of the oldest queued task (seconds since
  // its submit time; 0 when none is queued).
  int64_t parked_in_memory = 0;
  int64_t events_folded = 0;  // stage events written inside a later one
  std::array<double, api::kNumPriorities> oldest_queued_seconds{};
  // Submit-to-start of first attempts (submit time to the worker's first
  // RUNNING), a cumulative histogram: start_latency_buckets[i] counts starts
  // within kStartLatencyBounds[i] seconds.
  static constexpr std::array<double, 14> kStartLatencyBounds = {
      0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 60};
  std::array<int64_t, 14> start_latency_buckets{};
  int64_t start_latency_count = 0;
  double start_latency_sum_seconds = 0;
  // Run time of completed attempts (the worker's RUNNING to the completion
  // made durable), with the same bounds.
  std::array<int64_t, 14> run_time_buckets{};
  int64_t run_time_count = 0;
  double run_time_sum_seconds = 0;
};

// The key of the control record that holds the group's lease key.
inline constexpr char kLeaseKeyRecord[] = "lease-key";

struct WorkerView {
  ConnId conn;
  kwq::v1::Hello hello;
  int credits;
  int in_flight;
  absl::Time connected_at;
  absl::Time last_heartbeat;
  int64_t completed;
  int64_t errors;
  bool draining;
};

// The scheduling state machine: buffered tasks per priority, workers and their
// credits, leases, retries, and the committable offset prefix per partition. It
// does no I/O and starts no threads: the shell feeds it events and carries out
// the Effects it returns. Single-threaded: every call must come from the
// shell's event loop.
class SchedulerCore {
 public:
  SchedulerCore(SchedulerOptions options, const Clock* clock,
                uint64_t random_seed = 1);

  // --- Kafka side ---
  // A record from a priority topic. Invalid records go to the dead-letter
  // topic.
  void OnTaskRecord(const RecordPosition& pos, std::string value);
  // Partitions assigned to this instance, with what the group committed for
  // them: records the commit metadata names as decided are skipped when they
  // arrive.
  using AssignedPartition = PartitionLedger::Assigned;
  void OnPartitionsAssigned(const std::vector<AssignedPartition>& partitions);
  // This instance no longer owns these partitions: drop what it buffered from
  // them (another instance will receive those records). Tasks running on
  // workers keep running; their decisions are remembered by the ledger.
  void OnPartitionsRevoked(
      const std::vector<std::pair<std::string, int32_t>>& partitions);
  // A batch produced with a cookie was acknowledged (ok) or failed.
  void OnDurable(uint64_t cookie, bool ok);

  // --- worker side ---
  void OnWorkerConnected(ConnId conn, const kwq::v1::Hello& hello);
  // One message or a batch of them (handled in order, one dispatch after).
  void OnWorkerMessage(ConnId conn, const kwq::v1::WorkerMessage& msg);
  void OnWorkerDisconnected(ConnId conn, const std::string& reason);

  // --- time ---
  // Expires leases, releases tasks whose backoff passed, dispatches.
  void OnTick();
  // Commits for the partitions whose decided records changed since the last
  // call: the prefix and the commit metadata. Called by OnTick, so that the
  // metadata (a walk over the partition's open records) is built once per
  // tick, not per decision.
  void FlushCommits();
  // Writes every held stage event now (see event_fold_window), e.g. before a
  // shutdown.
  void FlushHeldEvents() { WriteHeldEvents(absl::InfiniteFuture()); }
  // Whether the group's lease key arrived (control record "lease-key").
  bool has_group_lease_key() const { return group_lease_key_; }
  // Stop assigning (drain): nothing new goes out; in-flight work may finish.
  void StopLeasing() { leasing_ = false; }

  // --- control (records of <prefix>.control; see ControlKey) ---
  // A control record: `value` a serialized ControlRecord, or empty (a
  // tombstone: the pause or cancel under `key` is lifted). Pauses stop new
  // assignments of the scope; a cancel ends queued tasks of the scope as
  // CANCELLED (now and whenever their records arrive) and asks workers running
  // them to stop.
  void OnControlRecord(const std::string& key, const std::string& value);
  // Whether this instance has seen the job (bounded memory: the last
  // `known_jobs`).
  bool KnowsJob(const std::string& job_id) const {
    return control_.KnowsJob(job_id);
  }
  // Whether a task is queued or running here.
  bool HoldsTask(const std::string& task_id) const;

  Effects TakeEffects();

  SchedulerMetrics metrics() const;
  size_t buffered() const;
  size_t buffered(int priority) const;
  size_t leases() const { return leases_.size(); }
  // Connected workers that are not draining.
  size_t serving_workers() const {
    size_t n = 0;
    for (const auto& [conn, w] : workers_) n += w.draining ? 0 : 1;
    return n;
  }
  size_t pending_decisions() const { return pending_.size(); }
  // A revoke is coming for these partitions: their queued tasks are dropped
  // (the next owner reads them) so that nothing more of them is dispatched
  // here while the running ones finish.
  void StopDispatchingFrom(
      const std::vector<std::pair<std::string, int32_t>>& partitions);
  // Attempts running here and decisions on their way to Kafka about records
  // of these partitions: a revoke waits (bounded) for them to end and be
  // committed by this owner, so that the next owner does not run them again.
  size_t InFlightIn(
      const std::vector<std::pair<std::string, int32_t>>& partitions) const;
  // Pauses, cancels and known jobs (read-only, for ListQueues).
  const ControlState& control() const { return control_; }
  std::vector<WorkerView> Workers() const;
  // Why a task is held, or empty when this instance does not hold it.
  std::vector<std::string> Explain(const std::string& task_id,
                                   kwq::v1::TaskState* state,
                                   std::string* worker) const;

  const api::Topics& topics() const { return topics_; }
  const std::set<std::string>& paused_jobs() const {
    return control_.paused_jobs();
  }
  // A job submitted through any instance (<prefix>.jobs): known for control
  // requests (NOT_FOUND otherwise).
  void OnJobSeen(const std::string& job_id) { control_.RememberJob(job_id); }

 private:
  using Queued = QueuedTask;
  struct Lease {
    RecordPosition pos;
    kwq::v1::Task task;
    kwq::v1::FencingToken token;
    ConnId conn;
    std::string worker_id;  // the worker the lease was issued to
    absl::Time deadline;
    bool deciding = false;          // a decision is being made durable
    bool running_reported = false;  // the RUNNING event was written
    // A stage event not written yet (see event_fold_window): ALLOCATED, or
    // RUNNING carrying allocated_time. Written by its deadline, folded into
    // the attempt's COMPLETED, or written before any other end of the lease.
    // Kept as its times, not as an event: most are folded, never written.
    struct HeldStage {
      kwq::v1::TaskState state;                          // ALLOCATED or RUNNING
      absl::Time time;                                   // of that stage
      absl::Time allocated_time = absl::InfinitePast();  // RUNNING: if held
    };
    std::optional<HeldStage> held_event;
    absl::Time held_until;
    absl::Time run_deadline = absl::InfiniteFuture();  // the task's timeout
    absl::Time started_at = absl::InfinitePast();      // the worker's RUNNING
    double progress = 0;  // last reported by the worker, [0, 1]
  };
  struct Worker {
    kwq::v1::Hello hello;
    int credits = 0;
    std::set<std::string> labels;
    std::set<std::string> affinity;  // keys held now (hello, then heartbeats)
    // Hash sets: one insert and one erase per task (an ordered set compared
    // the long common prefixes of task ids at every level).
    absl::flat_hash_set<std::string> task_ids;  // leases held
    // Of those, leases whose completion is being made durable (done on the
    // worker's side: their slots are free).
    int deciding = 0;
    absl::flat_hash_set<std::string>
        claimed;  // running here, waiting for the record
    absl::Time connected_at;
    absl::Time last_heartbeat;
    absl::Time last_heartbeat_applied = absl::InfinitePast();
    int64_t completed = 0;
    int64_t errors = 0;
    bool draining = false;
  };
  // A task a reconnected worker still runs whose record this instance does not
  // hold yet (see adoption_wait).
  struct Claim {
    ConnId conn = 0;
    kwq::v1::FencingToken token;
    absl::Time expires;
    // A COMPLETED or ERROR that came before the record: applied on adoption
    // (the worker keeps it unacknowledged meanwhile).
    std::optional<kwq::v1::TaskUpdate> final_update;
  };

  void Dispatch();
  bool Eligible(const Worker& w, const kwq::v1::Task& task) const;
  static bool HoldsKey(const Worker& w, const kwq::v1::Task& task);
  // The task waits for a worker holding one of its keys (see affinity_wait), so
  // a worker without one must not take it now.
  bool HeldForAffinity(const Queued& q, absl::Time now) const;
  absl::Time dispatch_now_;  // the time of the Dispatch pass in progress
  // Ends a task that will not run (cancelled) with a CANCELLED event; its
  // offset is decided once the event is durable.
  void CancelRecord(const RecordPosition& pos, const kwq::v1::Task& task,
                    const std::string& why, ConnId ack_conn = 0,
                    const kwq::v1::FencingToken& ack_token = {});
  void ApplyCancel();
  // Puts a resumed job's parked tasks back in their queues.
  void Unpark(const std::string& job_id);
  // Holds a task of a paused job: in memory up to the cap, else in the parked
  // topic (its record is decided once the copy is durable).
  void Park(Queued q);
  void Assign(ConnId conn, Worker& w, Queued q);
  // Turns a running attempt reported by a reconnected worker into a lease of
  // this instance (no assignment is sent; the worker runs it already).
  void Adopt(ConnId conn, Worker& w, const kwq::v1::FencingToken& token,
             RecordPosition pos, kwq::v1::Task task);
  // Removes the queued (or parked) record of `task_id` at `attempt`, if held.
  std::optional<Queued> TakeQueued(const std::string& task_id, int attempt);
  void ExpireClaims();
  // At most once a second: queued tasks that require labels no connected
  // worker has get one PENDING event saying so (TaskEvent.waiting).
  void ReportWaiting();
  // Slots of `w` busy from the worker's point of view: open leases and claims
  // (`except`: a task whose slot is being freed).
  int BusySlots(const Worker& w, const std::string& except = "") const;
  // Tasks `w` takes at once: its slots plus its prefetch queue.
  static int Capacity(const Worker& w) {
    return w.hello.slots() + w.hello.prefetch();
  }
  // One more credit for `w`, capped by its capacity minus the busy slots
  // (`freed`: the task whose slot this frees).
  void FreeSlot(Worker& w, const std::string& freed);
  // A slot of the worker on `conn` (if still connected) is free again.
  void GiveSlotBack(ConnId conn);
  void Enqueue(Queued q);
  // Why a hello cannot be accepted, or empty.
  std::string CheckHello(const kwq::v1::Hello& hello) const;
  // Closes a worker's stream for bad input (counted).
  void Reject(ConnId conn, const std::string& why);
  // false: the stream was closed (stop handling its messages).
  bool ApplyWorkerMessage(ConnId conn, const kwq::v1::WorkerMessage& msg);
  void HandleUpdate(ConnId conn, const kwq::v1::TaskUpdate& update);
  // Ends an attempt that did not complete: retry or dead-letter.
  void EndAttempt(Lease lease, const std::string& error,
                  const std::string& reason, bool infra, bool retryable,
                  ConnId ack_conn);
  void UpdateBackpressure(int priority);
  // An UpdateAck, or for an applied completion (code OK, no message) on a
  // stream whose hello set ack_batches an Effects::OkAck.
  void SendAck(ConnId conn, const kwq::v1::FencingToken& token, int code,
               const std::string& message);
  kwq::v1::TaskEvent MakeEvent(const kwq::v1::Task& task,
                               kwq::v1::TaskState state) const;
  OutRecord EventRecord(const kwq::v1::TaskEvent& ev) const;
  // The attempt's RUNNING stage, now: a RUNNING update, or a completion whose
  // RUNNING the worker left out (`completing`: the stage is held for the
  // completion's event to carry).
  void Started(Lease& lease, const Worker& w, bool completing);
  // Counts the task's timeout (if it has one) from now.
  void StartTimeout(Lease& lease) const;
  // Holds the stage in the lease for the fold window (see event_fold_window).
  void Hold(Lease& lease, Lease::HeldStage stage);
  // Writes the lease's held stage event, if any.
  void WriteHeldEvent(Lease& lease);
  // Writes the held stage events whose window ended by `now`.
  void WriteHeldEvents(absl::Time now);
  absl::Duration Backoff(int retry);
  uint64_t NextRandom();
  // Produces a decision's final records (a dead letter, a cancel).
  void ProduceFinal(Decision d, std::vector<OutRecord> records);
  // The largest payload, result or raw record a dead letter can carry.
  size_t MaxPayloadBytes() const;
  // A record that cannot be queued, to the dead-letter topic: as `parsed`
  // (the task, when it parsed but is invalid) or as its raw value.
  void DeadLetterRaw(const RecordPosition& pos, const std::string& raw,
                     const std::string& reason,
                     const kwq::v1::Task* parsed = nullptr);

  SchedulerOptions options_;
  api::Topics topics_;
  ControlState control_;  // pauses, cancels, known jobs
  LeaseSigner signer_;    // lease ids that cannot be forged
  bool group_lease_key_ = false;
  // The stream of each connected worker id (one live stream per worker).
  std::map<std::string, ConnId> conn_of_worker_;
  const Clock* clock_;
  uint64_t rng_;
  bool leasing_ = true;
  uint64_t next_lease_ = 1;
  TaskQueues queues_;  // ready, delayed and parked tasks; backpressure
  std::map<ConnId, Worker> workers_;
  absl::flat_hash_map<std::string, Lease> leases_;  // by task id
  // (task id, lease id) of leases holding a stage event, oldest first (the
  // window is the same for all, so this is deadline order).
  std::deque<std::pair<std::string, std::string>> held_order_;
  PartitionLedger ledger_;    // owned partitions, decided records, commits
  PendingDecisions pending_;  // decisions waiting for Kafka, by cookie
  SchedulerMetrics metrics_;
  Effects effects_;
  absl::flat_hash_map<std::string, Claim> claims_;  // by task id
  absl::Time next_waiting_scan_ = absl::InfinitePast();
  // Lease ids whose completion was acknowledged (ack 0), the latest
  // kRememberedAcks: a completion sent again (its ack was lost with a broken
  // stream) is answered "already applied" (0), not "no longer yours" (9).
  static constexpr size_t kRememberedAcks = 10000;
  // The ids are held once, in acked_order_ (a deque's elements stay put as it
  // grows and shrinks at its ends); the set views them.
  std::deque<std::string> acked_order_;
  absl::flat_hash_set<std::string_view> acked_leases_;
  void RememberAcked(const std::string& lease_id);
};

}  // namespace kwq::scheduler
