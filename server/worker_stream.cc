#include "server/worker_stream.h"

#include <algorithm>

#include "glog/logging.h"

namespace kwq::scheduler {

void WorkerStream::Send(kwq::v1::SchedulerMessage msg) {
  std::vector<kwq::v1::SchedulerMessage> msgs;
  msgs.push_back(std::move(msg));
  Send(std::move(msgs));
}

void WorkerStream::Send(std::vector<kwq::v1::SchedulerMessage> msgs) {
  if (msgs.empty()) return;
  WorkerReactor* reactor = nullptr;
  bool overflow = false;
  {
    absl::MutexLock lock(&mu_);
    if (reactor_ == nullptr || finished_) return;
    reactor = reactor_;
    if (pending_.size() + msgs.size() > kMaxPending) {
      // A worker that does not read its stream: drop what waits and end the
      // call. Memory stays bounded by the one write in flight (the status
      // follows it if the worker ever reads; its own end frees it).
      overflow = true;
      pending_.clear();
    } else {
      for (auto& msg : msgs) pending_.push_back(std::move(msg));
      if (writing_) return;  // OnWriteDone takes it, with whatever else queued
      writing_ = true;
      TakeNextLocked();
    }
  }
  if (overflow) {
    LOG(WARNING) << "worker at " << peer_
                 << " does not read its stream; closing it";
    reactor->FinishOnce(grpc::Status(
        grpc::StatusCode::RESOURCE_EXHAUSTED,
        "the worker does not read its stream: more than 10000 messages waited "
        "for it"));
    return;
  }
  reactor->StartWrite(&in_write_);
}

void WorkerStream::TakeNextLocked() {
  // The welcome is the stream's first message, always alone.
  if (pending_.size() == 1 || !batches_ || pending_.front().has_welcome()) {
    in_write_ = std::move(pending_.front());
    pending_.pop_front();
    return;
  }
  in_write_.Clear();
  auto* batch = in_write_.mutable_batch()->mutable_messages();
  const size_t n = std::min(pending_.size(), kMaxBatch);
  batch->Reserve(static_cast<int>(n));
  for (size_t i = 0; i < n; ++i) {
    *batch->Add() = std::move(pending_.front());
    pending_.pop_front();
  }
}

void WorkerStream::Close(const grpc::Status& status) {
  WorkerReactor* reactor = nullptr;
  {
    absl::MutexLock lock(&mu_);
    reactor = reactor_;
  }
  if (reactor != nullptr) reactor->FinishOnce(status);
}

WorkerReactor::WorkerReactor(WorkerStreamHandler* handler,
                             grpc::CallbackServerContext* ctx, uint64_t conn,
                             const grpc::Status& admitted,
                             std::string principal)
    : service_(handler),
      conn_(conn),
      handle_(std::make_shared<WorkerStream>()) {
  handle_->reactor_ = this;
  handle_->peer_ = ctx->peer();
  handle_->principal_ = std::move(principal);
  if (!admitted.ok()) {
    close_reported_ = true;  // the handler never heard of it
    FinishOnce(admitted);
    return;
  }
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
    {
      absl::MutexLock lock(&handle_->mu_);
      handle_->batches_ = in_.hello().batches();
    }
    service_->StreamHello(conn_, handle_, in_.hello());
  } else {
    service_->StreamMessage(conn_, std::move(in_));
    in_.Clear();
  }
  StartRead(&in_);
}

void WorkerReactor::OnWriteDone(bool ok) {
  bool more = false;
  std::optional<grpc::Status> finish;
  {
    absl::MutexLock lock(&handle_->mu_);
    if (!ok) handle_->pending_.clear();  // the stream is broken; reads end it
    if (!handle_->pending_.empty() && !handle_->finished_) {
      handle_->TakeNextLocked();
      more = true;
    } else {
      handle_->writing_ = false;
      if (handle_->finish_after_writes_) {
        finish = handle_->finish_after_writes_;
        handle_->finish_after_writes_.reset();
      }
    }
  }
  if (more) StartWrite(&handle_->in_write_);
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
