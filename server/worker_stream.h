#pragma once

#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "grpcpp/grpcpp.h"
#include "kwq/v1/worker.pb.h"

namespace kwq::scheduler {

class WorkerStream;

// What a worker stream reports to (the scheduler service implements it): the
// stream knows nothing of the service above it. Called on gRPC threads.
class WorkerStreamHandler {
 public:
  virtual ~WorkerStreamHandler() = default;
  // The stream's first message, a hello; `stream` is the handle to write to.
  virtual void StreamHello(uint64_t conn, std::shared_ptr<WorkerStream> stream,
                           kwq::v1::Hello hello) = 0;
  virtual void StreamMessage(uint64_t conn, kwq::v1::WorkerMessage msg) = 0;
  // Once per stream, when it ended (either side).
  virtual void StreamClosed(uint64_t conn, const std::string& reason) = 0;
};

// The handle the scheduler keeps for one worker stream. Send() and Close() are
// thread-safe and become no-ops once the stream finished; the reactor behind it
// is owned by gRPC and deleted in OnDone, after which the handle only remembers
// that it is gone.
class WorkerStream {
 public:
  void Send(kwq::v1::SchedulerMessage msg);
  // In order; one write for all of them if the worker takes batches and no
  // write is in flight.
  void Send(std::vector<kwq::v1::SchedulerMessage> msgs);
  void Close(const grpc::Status& status);
  const std::string& peer() const { return peer_; }
  // Who the caller authenticated as ("anonymous" on an open server).
  const std::string& principal() const { return principal_; }

 private:
  friend class WorkerReactor;
  // Moves the next write into in_write_: one message, or (for a worker that
  // takes batches) up to kMaxBatch queued ones packed into a batch.
  void TakeNextLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  static constexpr size_t kMaxBatch = 256;

 public:
  // Messages queued for a worker that does not read its stream, at most: past
  // it the stream is cancelled (RESOURCE_EXHAUSTED), so a client that never
  // reads cannot grow the scheduler's memory. A worker that reads is far
  // below it (its assignments are bounded by its credits).
  static constexpr size_t kMaxPending = 10000;

 private:
  class WorkerReactor* reactor_ = nullptr;  // guarded by mu_
  absl::Mutex mu_;
  std::deque<kwq::v1::SchedulerMessage> pending_;  // not yet being written
  kwq::v1::SchedulerMessage in_write_;  // owned by gRPC while writing_
  bool writing_ = false;
  bool batches_ = false;  // the worker's hello set `batches`
  bool finished_ = false;
  std::optional<grpc::Status> finish_after_writes_;
  std::string peer_;
  std::string principal_;
};

// One callback reactor per Connect call: reads worker messages and hands them
// to the handler; writes one message (or batch) at a time from the handle's
// queue; finishes exactly once.
class WorkerReactor
    : public grpc::ServerBidiReactor<kwq::v1::WorkerMessage,
                                     kwq::v1::SchedulerMessage> {
 public:
  // `admitted`: the call's authentication result; a stream that is not
  // admitted ends at once with that status and reaches no handler.
  WorkerReactor(WorkerStreamHandler* handler, grpc::CallbackServerContext* ctx,
                uint64_t conn, const grpc::Status& admitted,
                std::string principal);

  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

 private:
  friend class WorkerStream;
  void FinishOnce(const grpc::Status& status);

  WorkerStreamHandler* service_;
  uint64_t conn_;
  std::shared_ptr<WorkerStream> handle_;
  kwq::v1::WorkerMessage in_;
  bool hello_seen_ = false;
  bool close_reported_ = false;
};

}  // namespace kwq::scheduler
