#include "server/worker_stream.h"

#include "glog/logging.h"
#include "server/scheduler_service.h"

namespace kwq::scheduler {

void WorkerStream::Send(kwq::v1::SchedulerMessage msg) {
  const kwq::v1::SchedulerMessage* to_write = nullptr;
  WorkerReactor* reactor = nullptr;
  {
    absl::MutexLock lock(&mu_);
    if (reactor_ == nullptr || finished_) return;
    out_.push_back(std::move(msg));
    if (writing_) return;
    writing_ = true;
    to_write = &out_.front();  // deque: stable while other elements come and go
    reactor = reactor_;
  }
  reactor->StartWrite(to_write);
}

void WorkerStream::Close(const grpc::Status& status) {
  WorkerReactor* reactor = nullptr;
  {
    absl::MutexLock lock(&mu_);
    reactor = reactor_;
  }
  if (reactor != nullptr) reactor->FinishOnce(status);
}

WorkerReactor::WorkerReactor(SchedulerService* service, uint64_t conn,
                             std::string peer)
    : service_(service),
      conn_(conn),
      handle_(std::make_shared<WorkerStream>()) {
  handle_->reactor_ = this;
  handle_->peer_ = std::move(peer);
  StartRead(&in_);
}

void WorkerReactor::OnReadDone(bool ok) {
  if (!ok) {
    close_reported_ = true;
    service_->StreamClosed(conn_, "stream closed by the worker");
    FinishOnce(grpc::Status::OK);
    return;
  }
  if (!hello_seen_) {
    if (!in_.has_hello()) {
      FinishOnce(
          grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                       "the first message on the stream must be a hello"));
      return;
    }
    hello_seen_ = true;
    service_->StreamHello(conn_, handle_, in_.hello());
  } else {
    service_->StreamMessage(conn_, in_);
  }
  StartRead(&in_);
}

void WorkerReactor::OnWriteDone(bool ok) {
  const kwq::v1::SchedulerMessage* next = nullptr;
  std::optional<grpc::Status> finish;
  {
    absl::MutexLock lock(&handle_->mu_);
    handle_->out_.pop_front();
    if (!ok) handle_->out_.clear();  // the stream is broken; reads will end it
    if (!handle_->out_.empty() && !handle_->finished_) {
      next = &handle_->out_.front();
    } else {
      handle_->writing_ = false;
      if (handle_->finish_after_writes_) {
        finish = handle_->finish_after_writes_;
        handle_->finish_after_writes_.reset();
      }
    }
  }
  if (next != nullptr) StartWrite(next);
  if (finish) Finish(*finish);
}

void WorkerReactor::OnCancel() {
  FinishOnce(grpc::Status(grpc::StatusCode::CANCELLED, "stream cancelled"));
}

void WorkerReactor::FinishOnce(const grpc::Status& status) {
  bool now = false;
  {
    absl::MutexLock lock(&handle_->mu_);
    if (handle_->finished_) return;
    handle_->finished_ = true;
    if (handle_->writing_) {
      handle_->finish_after_writes_ = status;
    } else {
      now = true;
    }
  }
  if (now) Finish(status);
}

void WorkerReactor::OnDone() {
  {
    absl::MutexLock lock(&handle_->mu_);
    handle_->reactor_ = nullptr;
    handle_->finished_ = true;
  }
  if (!close_reported_) service_->StreamClosed(conn_, "stream ended");
  delete this;
}

}  // namespace kwq::scheduler
