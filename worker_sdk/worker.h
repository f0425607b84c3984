#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/time/time.h"
#include "kwq/v1/scheduler.grpc.pb.h"
#include "worker_sdk/client_security.h"

namespace kwq::worker {

struct WorkerOptions {
  // host:port of a kwq_scheduler.
  std::string scheduler_address = "127.0.0.1:50051";
  // Default: <host>-<pid>.
  std::string worker_id;
  // Tasks run at once (one thread each).
  int slots = 1;
  // Tasks taken beyond `slots` (0-4096): they wait here and a slot that
  // finishes a task starts the next without a round trip to the scheduler
  // (under load: no idle gap, fewer thread wake-ups). 0 (default) suits long
  // or uneven tasks: a queued task may wait here while another worker is free.
  // A queued task's timeout starts when it runs.
  int prefetch = 0;
  std::vector<std::string> affinity_keys;
  std::vector<std::string> labels;
  // Reconnect backoff: doubles from min to max, with jitter.
  absl::Duration reconnect_min = absl::Milliseconds(100);
  absl::Duration reconnect_max = absl::Seconds(5);
  // TLS (CA, client certificate for mutual TLS) and the bearer token sent on
  // the stream; default plaintext, no token. ClientSecurity::FromEnv() reads
  // KWQ_TLS_CA, KWQ_TLS_CERT, KWQ_TLS_KEY, KWQ_TOKEN. A secured scheduler
  // needs the token's (or certificate's) principal to hold the `work` role;
  // it knows this worker as "<principal>:<worker_id>".
  ClientSecurity security;
  // Progress reports of one task are sent at most this often.
  absl::Duration progress_interval = absl::Milliseconds(500);
  // Runs each task on the thread that received its assignment (one of gRPC's),
  // one task at a time per worker, instead of handing it to a slot thread: no
  // thread wake-up per task. For tasks of microseconds (a pricing call, a
  // lookup), where handing a task over costs more than running it. While a
  // handler runs, this worker's stream reads nothing (a Cancel or an ack waits
  // for it), so a long task delays everything behind it; `slots` still sets
  // how many assignments are granted (kept queued here), but tasks never run
  // in parallel. No RUNNING is reported: the completion dates the start. No
  // slot threads are started. gRPC's few callback threads are shared by every
  // stream of the process: never use it for tasks that block (README.md).
  bool run_inline = false;
};

// What a handler returns: result bytes, or an error that is retryable or fatal.
struct Outcome {
  bool ok = true;
  std::string result;
  std::string error;
  bool retryable = true;
  static Outcome Success(std::string result = "") {
    return {true, std::move(result), "", true};
  }
  static Outcome Error(std::string error, bool retryable = true) {
    return {false, "", std::move(error), retryable};
  }
};

// What a handler sees while it runs one task. Thread-safe.
class TaskContext {
 public:
  const kwq::v1::Task& task() const { return task_; }
  int attempt() const { return task_.attempt(); }
  // True once the scheduler cancelled this attempt (or its lease was lost, or
  // the worker is stopping past its grace period): stop soon.
  bool cancelled() const { return cancelled_; }
  // Reports how far the task is, in [0, 1]. Cheap to call often: at most one
  // report per WorkerOptions::progress_interval goes to the scheduler (each
  // also renews the lease).
  void ReportProgress(double fraction);

 private:
  friend class Worker;
  class Worker* worker_ = nullptr;
  kwq::v1::Task task_;
  kwq::v1::FencingToken token_;
  std::atomic<bool> cancelled_{false};
  std::atomic<int64_t> last_progress_ns_{0};
};

using Handler = std::function<Outcome(TaskContext&)>;

// A worker process's connection to the scheduler: it says hello, grants
// credits, runs assignments through the handler on `slots` threads, reports
// RUNNING / COMPLETED / ERROR, heartbeats, resends completions the scheduler
// could not yet make durable, reconnects with backoff (reporting what still
// runs), and drains on Stop(). An exception thrown by the handler is reported
// as a retryable task error. Thread-safe.
class Worker {
 public:
  Worker(WorkerOptions options, Handler handler);
  ~Worker();

  // Runs until Stop(). Returns after the stream closed cleanly, or at once
  // (logged) when `security` names a TLS file that cannot be read.
  void Run();
  // Drain: take no more tasks, let running ones finish for up to `grace`, then
  // close.
  void Stop(absl::Duration grace = absl::Seconds(10));
  // The affinity keys this worker now holds ("curve=EUR" after loading that
  // curve); sent to the scheduler at once and used in every later hello.
  void SetAffinityKeys(std::vector<std::string> keys);

  int64_t completed() const { return completed_; }
  int64_t failed() const { return failed_; }
  int64_t connects() const { return connects_; }
  int64_t stale_acks() const { return stale_acks_; }
  // Completions sent and not acknowledged yet (kept, and sent again after a
  // reconnect, until the scheduler says they are durable).
  size_t unacknowledged() const {
    std::lock_guard<std::mutex> lock(mu_);
    return unacked_.size();
  }
  const std::string& worker_id() const { return options_.worker_id; }

 private:
  class Stream;
  bool RunOneStream();
  void SlotLoop();
  void HeartbeatLoop(absl::Duration period);
  // Queues `msg` on the current stream, sent without waiting for the network:
  // one write at a time, what queued behind it packed into one batch (under
  // load many updates share one write). Dropped when no stream is up
  // (completions stay in unacked_ and are resent after the next welcome).
  void Send(kwq::v1::WorkerMessage msg);
  // A message from the scheduler, on the stream's gRPC thread (a batch is
  // taken apart; assignments are moved out of it).
  void OnSchedulerMessage(kwq::v1::SchedulerMessage* msg);
  void HandleMessage(kwq::v1::SchedulerMessage* msg);
  // Runs the handler, turning an exception into a retryable error.
  Outcome RunHandler(TaskContext& ctx);
  void Finish(const std::shared_ptr<TaskContext>& ctx, const Outcome& outcome);
  friend class TaskContext;
  void SendProgress(const TaskContext& ctx, double fraction);
  void SendAffinity();

  WorkerOptions options_;
  std::string init_error_;  // a TLS file could not be read
  Handler handler_;
  std::unique_ptr<kwq::v1::Scheduler::Stub> stub_;

  mutable std::mutex mu_;
  // Two condition variables on mu_: a notify_one for a new task must wake a
  // slot thread, never the heartbeat or Stop() waiter (a lost wake-up left a
  // task queued forever).
  std::condition_variable
      work_cv_;  // queue_ or stopping_ changed: slot threads wait
  std::condition_variable cv_;  // stream_up_, running_, unacked_ changed
  std::deque<std::shared_ptr<TaskContext>> queue_;
  // At most one wake-up of a slot thread in flight: a new task wakes one idle
  // slot thread only if none is being woken; a woken thread that leaves tasks
  // queued wakes the next. A batch of assignments costs one wake-up, not one
  // per task, and busy slot threads take queued tasks without sleeping.
  int idle_slots_ = 0;         // slot threads waiting on work_cv_
  bool wake_pending_ = false;  // a notify_one not yet taken by a slot thread
  // By lease id: a task may come back under a new lease (a redelivery after a
  // scheduler restart) while its old attempt still runs here.
  // Hash maps: lease ids share long prefixes, which an ordered map compared at
  // every level, per task.
  absl::flat_hash_map<std::string, std::shared_ptr<TaskContext>> running_;
  absl::flat_hash_map<std::string, kwq::v1::WorkerMessage>
      unacked_;  // completions
  bool stopping_ = false;
  bool stream_up_ = false;
  absl::Duration heartbeat_period_ = absl::Seconds(2);

  std::thread heartbeat_;  // of the current stream (guarded by mu_)

  std::mutex stream_mu_;
  std::shared_ptr<Stream> stream_;  // the current one (guarded by stream_mu_)

  std::vector<std::thread> slots_;
  std::atomic<int64_t> completed_{0}, failed_{0}, connects_{0}, stale_acks_{0};
};

}  // namespace kwq::worker
