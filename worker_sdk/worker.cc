#include "worker_sdk/worker.h"

#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <optional>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "glog/logging.h"
#include "grpcpp/grpcpp.h"

namespace kwq::worker {

using kwq::v1::SchedulerMessage;
using kwq::v1::WorkerMessage;

Worker::Worker(WorkerOptions options, Handler handler)
    : options_(std::move(options)), handler_(std::move(handler)) {
  if (options_.worker_id.empty()) {
    char host[256] = {0};
    gethostname(host, sizeof(host) - 1);
    options_.worker_id = absl::StrCat(host, "-", getpid());
  }
  if (options_.slots < 1) options_.slots = 1;
  options_.prefetch = std::clamp(options_.prefetch, 0, 4096);
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 10000);
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
  if (!options_.security.server_name.empty()) {
    args.SetSslTargetNameOverride(options_.security.server_name);
  }
  auto creds = options_.security.Credentials();
  if (!creds.ok()) {
    init_error_ = std::string(creds.status().message());
    creds = grpc::InsecureChannelCredentials();  // never used: Run() stops
  }
  stub_ = kwq::v1::Scheduler::NewStub(
      grpc::CreateCustomChannel(options_.scheduler_address, *creds, args));
  const int slot_threads = options_.run_inline ? 0 : options_.slots;
  for (int i = 0; i < slot_threads; ++i)
    slots_.emplace_back([this] {
      pthread_setname_np(pthread_self(), "kwq-slot");
      SlotLoop();
    });
}

Worker::~Worker() {
  Stop(absl::ZeroDuration());
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  work_cv_.notify_all();
  cv_.notify_all();
  for (auto& t : slots_) t.join();
}

// One connection to the scheduler: a gRPC callback reactor. Reads are handled
// on gRPC's threads as they arrive (no reader thread to wake); writes are
// queued and sent one at a time, what queued behind a write going out as one
// batch, so no caller ever waits for the network. Owned by a shared_ptr held
// by RunOneStream and by itself until OnDone.
class Worker::Stream
    : public grpc::ClientBidiReactor<WorkerMessage, SchedulerMessage> {
 public:
  // `hello` is the first write: whatever is queued before Start() waits
  // behind it.
  Stream(Worker* worker, WorkerMessage hello) : worker_(worker) {
    writing_ = std::move(hello);
    write_in_flight_ = true;
  }

  // Opens the stream.
  void Start(kwq::v1::Scheduler::Stub* stub, std::shared_ptr<Stream> self) {
    self_ = std::move(self);
    worker_->options_.security.Apply(&ctx_);
    stub->async()->Connect(&ctx_, this);
    // Writes are started from outside reactions (slot threads): the hold
    // keeps OnDone back until no write can start any more (RemoveHold once
    // the stream is closed and no write is in flight).
    AddHold();
    StartWrite(&writing_);
    StartRead(&in_);
    StartCall();
    std::lock_guard<std::mutex> lock(mu_);
    started_ = true;
    if (cancelled_) ctx_.TryCancel();
  }

  // Queues `msg`; dropped when the stream is closing.
  void Enqueue(WorkerMessage msg) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (closed_) return;
      if (write_in_flight_ || corked_) {
        if (msg.has_update() && msg.update().state() == kwq::v1::COMPLETED) {
          // Its RUNNING updates still queued say nothing the completion does
          // not: the scheduler takes a completion without a RUNNING as
          // started when it arrives, which is when they would have.
          const std::string& lease = msg.update().token().lease_id();
          out_.erase(
              std::remove_if(out_.begin(), out_.end(),
                             [&](const WorkerMessage& m) {
                               return m.has_update() &&
                                      m.update().state() == kwq::v1::RUNNING &&
                                      m.update().token().lease_id() == lease;
                             }),
              out_.end());
        }
        out_.push_back(std::move(msg));
        return;
      }
      write_in_flight_ = true;
      writing_ = std::move(msg);
    }
    StartWrite(&writing_);
  }

  void Cancel() {
    std::lock_guard<std::mutex> lock(mu_);
    cancelled_ = true;
    if (started_) ctx_.TryCancel();  // else Start() does
  }
  bool welcomed() const { return welcomed_; }
  // Blocks until the stream ended; its final status.
  grpc::Status Wait() {
    std::unique_lock<std::mutex> lock(mu_);
    done_cv_.wait(lock, [this] { return done_; });
    return status_;
  }

  void OnWriteDone(bool ok) override {
    bool more = false, release = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!ok) closed_ = true;  // the call is over; reads end too
      if (closed_ || out_.empty()) {
        write_in_flight_ = false;
        out_.clear();
        release = TakeHoldRelease();
      } else {
        TakeQueuedLocked();
        more = true;
      }
    }
    if (more) StartWrite(&writing_);
    if (release) RemoveHold();
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      bool release = false;
      {
        std::lock_guard<std::mutex> lock(mu_);
        closed_ = true;
        out_.clear();
        release = TakeHoldRelease();
      }
      if (release) RemoveHold();
      return;
    }
    if (in_.msg_case() == SchedulerMessage::kWelcome) welcomed_ = true;
    // What handling the message sends (the completions of inline tasks, the
    // resends after a welcome) goes out in one write after it, not the first
    // message alone and the rest in a second write.
    Cork();
    worker_->OnSchedulerMessage(&in_);
    Uncork();
    StartRead(&in_);
  }

  void OnDone(const grpc::Status& status) override {
    std::shared_ptr<Stream> keep = std::move(self_);
    std::lock_guard<std::mutex> lock(mu_);
    status_ = status;
    done_ = true;
    done_cv_.notify_all();
  }

 private:
  void Cork() {
    std::lock_guard<std::mutex> lock(mu_);
    corked_ = true;
  }
  // Ends Cork(): what queued meanwhile goes out unless a write is in flight
  // (then OnWriteDone takes it).
  void Uncork() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      corked_ = false;
      if (closed_ || write_in_flight_ || out_.empty()) return;
      write_in_flight_ = true;
      TakeQueuedLocked();
    }
    StartWrite(&writing_);
  }
  // Moves the queued messages into writing_: one alone, several as a batch.
  // Called with mu_ held and out_ not empty.
  void TakeQueuedLocked() {
    if (out_.size() == 1) {
      writing_ = std::move(out_.front());
    } else {
      writing_.Clear();
      auto* batch = writing_.mutable_batch()->mutable_messages();
      batch->Reserve(static_cast<int>(out_.size()));
      for (auto& m : out_) *batch->Add() = std::move(m);
    }
    out_.clear();
  }
  // True once, when the hold may go: the stream is closed (no write starts any
  // more) and no write is in flight. Called with mu_ held.
  bool TakeHoldRelease() {
    if (!closed_ || write_in_flight_ || released_) return false;
    released_ = true;
    return true;
  }

  Worker* const worker_;
  grpc::ClientContext ctx_;
  SchedulerMessage in_;
  std::shared_ptr<Stream> self_;  // until OnDone
  std::atomic<bool> welcomed_{false};

  std::mutex mu_;
  WorkerMessage writing_;           // owned by the write in flight
  std::vector<WorkerMessage> out_;  // queued behind it (guarded by mu_)
  bool write_in_flight_ = false;    // guarded by mu_
  bool corked_ = false;     // queue, do not write (guarded by mu_; OnReadDone)
  bool closed_ = false;     // guarded by mu_
  bool released_ = false;   // the hold was removed (guarded by mu_)
  bool started_ = false;    // guarded by mu_
  bool cancelled_ = false;  // guarded by mu_
  bool done_ = false;       // guarded by mu_
  grpc::Status status_;     // guarded by mu_
  std::condition_variable done_cv_;
};

void Worker::Send(WorkerMessage msg) {
  std::lock_guard<std::mutex> lock(stream_mu_);
  if (stream_ != nullptr) stream_->Enqueue(std::move(msg));
}

void Worker::Run() {
  if (!init_error_.empty()) {
    LOG(ERROR) << "worker not started: " << init_error_;
    return;
  }
  std::mt19937_64 rng(static_cast<uint64_t>(absl::ToUnixNanos(absl::Now())) ^
                      getpid());
  absl::Duration backoff = options_.reconnect_min;
  while (true) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_ && running_.empty() && queue_.empty()) return;
    }
    const bool was_welcomed = RunOneStream();
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return;
    }
    if (was_welcomed) backoff = options_.reconnect_min;
    const double jitter =
        0.5 + std::uniform_real_distribution<double>(0, 0.5)(rng);
    absl::SleepFor(backoff * jitter);
    backoff = std::min(backoff * 2, options_.reconnect_max);
  }
}

bool Worker::RunOneStream() {
  WorkerMessage hello;
  auto* h = hello.mutable_hello();
  h->set_worker_id(options_.worker_id);
  h->set_slots(options_.slots);
  h->set_prefetch(options_.prefetch);
  h->set_sdk("kwq-cpp-sdk/0.3");
  h->set_implicit_credits(true);  // a completion frees its slot
  h->set_batches(true);
  h->set_ack_batches(true);
  for (auto& l : options_.labels) h->add_labels(l);
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& k : options_.affinity_keys) h->add_affinity_keys(k);
    for (auto& [id, ctx_ptr] : running_) *h->add_in_flight() = ctx_ptr->token_;
    // Finished but unacknowledged: the scheduler adopts these too, then takes
    // the completion resent after the welcome. At most what a hello may list
    // (proto/README.md: min(16 x (slots + prefetch) + 1024, 10000)); a
    // completion left out is answered 9 when resent and its task runs again.
    const long long cap =
        std::min(16LL * (options_.slots + options_.prefetch) + 1024, 10000LL);
    size_t left_out = 0;
    for (auto& [id, m] : unacked_) {
      if (h->in_flight_size() >= cap) {
        ++left_out;
        continue;
      }
      *h->add_in_flight() = m.update().token();
    }
    if (left_out > 0) {
      LOG(WARNING) << left_out
                   << " unacknowledged completions do not fit in the hello; "
                      "their tasks may run again";
    }
  }
  auto stream = std::make_shared<Stream>(this, std::move(hello));
  {
    std::lock_guard<std::mutex> lock(stream_mu_);
    stream_ = stream;
  }
  stream->Start(stub_.get(), stream);
  {
    // Stopped before this stream was published, with nothing left to report.
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ && running_.empty() && unacked_.empty()) stream->Cancel();
  }
  grpc::Status status = stream->Wait();
  {
    std::lock_guard<std::mutex> lock(stream_mu_);
    stream_ = nullptr;
  }
  std::thread heartbeat;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stream_up_ = false;
    heartbeat.swap(heartbeat_);
  }
  cv_.notify_all();
  if (heartbeat.joinable()) heartbeat.join();
  const bool welcomed = stream->welcomed();
  bool stopping;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping = stopping_;
  }
  if (!status.ok() && !stopping) {
    if (welcomed) {
      LOG(WARNING) << "stream to " << options_.scheduler_address
                   << " ended: " << status.error_message() << "; reconnecting";
    } else if (status.error_code() == grpc::StatusCode::UNAUTHENTICATED ||
               status.error_code() == grpc::StatusCode::PERMISSION_DENIED) {
      // Retried too (the server's identities file may be fixed meanwhile),
      // but said every time: nothing will run until it is.
      LOG(ERROR) << "the scheduler at " << options_.scheduler_address
                 << " refused this worker: " << status.error_message()
                 << " (see WorkerOptions::security / KWQ_TOKEN)";
    } else {
      // Retried with backoff; say so now and then, not on every attempt.
      LOG_EVERY_N(WARNING, 20)
          << "cannot reach the scheduler at " << options_.scheduler_address
          << " (" << status.error_message() << "); retrying with backoff";
    }
  }
  return welcomed;
}

void Worker::OnSchedulerMessage(SchedulerMessage* msg) {
  switch (msg->msg_case()) {
    case SchedulerMessage::kWelcome: {
      const auto& welcome = msg->welcome();
      const absl::Duration period =
          absl::Seconds(welcome.heartbeat_period().seconds()) +
          absl::Nanoseconds(welcome.heartbeat_period().nanos());
      std::vector<WorkerMessage> resend;
      ++connects_;
      {
        std::lock_guard<std::mutex> lock(mu_);
        stream_up_ = true;
        heartbeat_period_ = period;
        for (const auto& t : welcome.rejected()) {
          auto it = running_.find(t.lease_id());
          if (it != running_.end()) it->second->cancelled_ = true;
        }
        // Completions never acknowledged go again (adopted leases accept
        // them).
        for (auto& [id, m] : unacked_) resend.push_back(m);
        if (!heartbeat_.joinable()) {
          heartbeat_ = std::thread([this, period] { HeartbeatLoop(period); });
        }
      }
      for (auto& m : resend) Send(std::move(m));
      break;
    }
    case SchedulerMessage::kBatch:
      for (auto& m : *msg->mutable_batch()->mutable_messages()) {
        HandleMessage(&m);
      }
      break;
    default:
      HandleMessage(msg);
      break;
  }
}

void Worker::HandleMessage(SchedulerMessage* in) {
  const SchedulerMessage& msg = *in;
  switch (msg.msg_case()) {
    case SchedulerMessage::kAssignment: {
      auto tc = std::make_shared<TaskContext>();
      tc->worker_ = this;
      tc->task_.Swap(in->mutable_assignment()->mutable_task());
      tc->token_.Swap(in->mutable_assignment()->mutable_token());
      if (options_.run_inline) {
        {
          std::lock_guard<std::mutex> lock(mu_);
          running_[tc->token_.lease_id()] = tc;
        }
        Finish(tc, RunHandler(*tc));
        break;
      }
      bool wake;
      {
        std::lock_guard<std::mutex> lock(mu_);
        running_[tc->token_.lease_id()] = tc;
        queue_.push_back(tc);
        wake = idle_slots_ > 0 && !wake_pending_;
        if (wake) wake_pending_ = true;
      }
      if (wake) work_cv_.notify_one();
      break;
    }
    case SchedulerMessage::kCancel: {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = running_.find(msg.cancel().token().lease_id());
      if (it != running_.end() &&
          it->second->token_.task_id() == msg.cancel().token().task_id()) {
        it->second->cancelled_ = true;
      }
      break;
    }
    case SchedulerMessage::kAck: {
      const auto& ack = msg.ack();
      std::optional<WorkerMessage> again;
      {
        std::lock_guard<std::mutex> lock(mu_);
        auto it = unacked_.find(ack.token().lease_id());
        if (it == unacked_.end() ||
            it->second.update().token().task_id() != ack.token().task_id()) {
          break;
        }
        if (ack.code() == 14) {
          again = it->second;  // not durable yet: send it again
        } else {
          if (ack.code() == 9) ++stale_acks_;
          unacked_.erase(it);
        }
      }
      if (again) Send(std::move(*again));
      break;
    }
    case SchedulerMessage::kAcks: {
      // Applied completions (what an UpdateAck with code 0 says), by lease.
      std::lock_guard<std::mutex> lock(mu_);
      for (const std::string& lease : msg.acks().lease_ids()) {
        unacked_.erase(lease);
      }
      break;
    }
    case SchedulerMessage::kGoAway:
      LOG(INFO) << "scheduler going away: " << msg.go_away().reason();
      break;
    default:
      break;
  }
}

void Worker::HeartbeatLoop(absl::Duration period) {
  std::unique_lock<std::mutex> lock(mu_);
  while (stream_up_) {
    // cv_ is notified for other reasons too (every finished task): only the
    // end of the period or the end of the stream counts, else a busy worker
    // would send a heartbeat per task.
    const auto due =
        std::chrono::steady_clock::now() + absl::ToChronoMilliseconds(period);
    if (cv_.wait_until(lock, due, [this] { return !stream_up_; })) break;
    lock.unlock();
    WorkerMessage hb;
    hb.mutable_heartbeat();
    Send(std::move(hb));
    lock.lock();
  }
}

void Worker::SlotLoop() {
  while (true) {
    std::shared_ptr<TaskContext> tc;
    bool wake_next = false;
    {
      std::unique_lock<std::mutex> lock(mu_);
      while (!stopping_ && queue_.empty()) {
        ++idle_slots_;
        work_cv_.wait(lock);
        --idle_slots_;
        wake_pending_ = false;  // taken (or a spurious wake-up: then the next
                                // task notifies again)
      }
      if (queue_.empty()) return;  // stopping and nothing left
      tc = std::move(queue_.front());
      queue_.pop_front();
      // More queued and a slot thread idle: pass the wake-up on.
      if (!queue_.empty() && idle_slots_ > 0 && !wake_pending_) {
        wake_pending_ = wake_next = true;
      }
    }
    if (wake_next) work_cv_.notify_one();
    if (tc->cancelled()) {  // while it waited in the queue (prefetch)
      Finish(tc, Outcome::Error("cancelled before it started", false));
      continue;
    }
    WorkerMessage running;
    *running.mutable_update()->mutable_token() = tc->token_;
    running.mutable_update()->set_state(kwq::v1::RUNNING);
    Send(std::move(running));
    Finish(tc, RunHandler(*tc));
  }
}

Outcome Worker::RunHandler(TaskContext& ctx) {
  try {
    return handler_(ctx);
  } catch (const std::exception& e) {
    return Outcome::Error(absl::StrCat("handler threw: ", e.what()), true);
  } catch (...) {
    return Outcome::Error("handler threw a non-standard exception", true);
  }
}

void Worker::Finish(const std::shared_ptr<TaskContext>& tc,
                    const Outcome& outcome) {
  WorkerMessage update;
  auto* u = update.mutable_update();
  *u->mutable_token() = tc->token_;
  if (outcome.ok) {
    u->set_state(kwq::v1::COMPLETED);
    u->set_result(outcome.result);
    ++completed_;
  } else {
    u->set_state(kwq::v1::ERROR);
    u->set_error(outcome.error);
    u->set_retryable(outcome.retryable);
    u->set_cancelled(tc->cancelled());
    ++failed_;
  }
  bool draining;
  {
    std::lock_guard<std::mutex> lock(mu_);
    running_.erase(tc->token_.lease_id());
    unacked_[tc->token_.lease_id()] = update;
    draining = stopping_;
  }
  Send(
      std::move(update));  // frees the slot at the scheduler (implicit credits)
  // Only Stop() waits for running tasks: waking cv_ per task would wake the
  // heartbeat thread per task too.
  if (draining) cv_.notify_all();
}

void TaskContext::ReportProgress(double fraction) {
  if (worker_ == nullptr) return;
  const int64_t now = absl::GetCurrentTimeNanos();
  int64_t last = last_progress_ns_.load();
  if (now - last <
      absl::ToInt64Nanoseconds(worker_->options_.progress_interval))
    return;
  if (!last_progress_ns_.compare_exchange_strong(last, now))
    return;  // another thread sent
  worker_->SendProgress(*this, std::clamp(fraction, 0.0, 1.0));
}

void Worker::SendProgress(const TaskContext& ctx, double fraction) {
  WorkerMessage m;
  auto* u = m.mutable_update();
  *u->mutable_token() = ctx.token_;
  u->set_state(kwq::v1::RUNNING);
  u->set_progress(fraction);
  Send(std::move(m));
}

void Worker::SetAffinityKeys(std::vector<std::string> keys) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    options_.affinity_keys = std::move(keys);
  }
  SendAffinity();
}

void Worker::SendAffinity() {
  WorkerMessage hb;
  auto* h = hb.mutable_heartbeat();
  h->set_affinity_changed(true);
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& k : options_.affinity_keys) h->add_affinity_keys(k);
  }
  Send(std::move(hb));  // dropped without a stream; the next hello has the keys
}

void Worker::Stop(absl::Duration grace) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ && grace > absl::ZeroDuration()) return;
    stopping_ = true;
  }
  work_cv_.notify_all();
  WorkerMessage drain;
  drain.mutable_drain();
  Send(std::move(drain));
  const absl::Time deadline = absl::Now() + grace;
  {
    std::unique_lock<std::mutex> lock(mu_);
    while ((!running_.empty() || !unacked_.empty()) && absl::Now() < deadline) {
      cv_.wait_for(lock, std::chrono::milliseconds(20));
    }
    for (auto& [id, tc] : running_) tc->cancelled_ = true;
  }
  cv_.notify_all();
  std::lock_guard<std::mutex> lock(stream_mu_);
  if (stream_ != nullptr) stream_->Cancel();
}

}  // namespace kwq::worker
