#include "tracker/tracker_service.h"

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "glog/logging.h"
#include "server/auth/server_security.h"

namespace kwq::tracker {

namespace {

grpc::Status ToGrpc(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()),
                      std::string(s.message()));
}

// Answers with `query()` (a StatusOr) when `allowed`, else with its refusal.
template <typename Query, typename Response>
grpc::ServerUnaryReactor* Reply(grpc::CallbackServerContext* ctx,
                                const grpc::Status& allowed, Query query,
                                Response* response) {
  auto* reactor = ctx->DefaultReactor();
  if (!allowed.ok()) {
    reactor->Finish(allowed);
    return reactor;
  }
  auto result = query();
  if (result.ok()) *response = std::move(*result);
  reactor->Finish(ToGrpc(result.status()));
  return reactor;
}

constexpr absl::Duration kWatchPeriod = absl::Milliseconds(200);

}  // namespace

// One WatchJob stream: written by the watch thread, at most one write in
// flight; finishes once, after the summary that says the job is done, or on
// cancel.
class JobWatcher : public grpc::ServerWriteReactor<kwq::v1::JobSummary> {
 public:
  JobWatcher(TrackerService* service, std::string job)
      : service_(service), job_(std::move(job)), started_(absl::Now()) {}

  // On the watch thread, with the service's mutex held.
  void Tick(absl::Time now) {
    absl::MutexLock lock(&mu_);
    if (writing_ || finished_) return;
    auto summary = service_->store_->GetJobSummary(job_, 0, now);
    if (absl::IsNotFound(summary.status()) && !sent_any_ &&
        now - started_ < kUnknownJobGrace) {
      return;  // just submitted: the tracker may not have its events yet
    }
    if (!summary.ok()) {
      FinishLocked(ToGrpc(summary.status()));
      return;
    }
    // Rate and ETA drift with time alone; send when the counts moved.
    const std::string key =
        summary->counts().SerializeAsString() + (summary->done() ? "d" : "");
    if (key == last_key_ && sent_any_) return;
    last_key_ = key;
    sent_any_ = true;
    done_sent_ = summary->done();
    current_ = std::move(*summary);
    writing_ = true;
    StartWrite(&current_);
  }

  void FinishFromService(const grpc::Status& status) {
    absl::MutexLock lock(&mu_);
    FinishLocked(status);
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    if (!ok) {
      FinishLocked(
          grpc::Status(grpc::StatusCode::CANCELLED, "the client went away"));
    } else if (done_sent_) {
      FinishLocked(grpc::Status::OK);
    } else if (pending_finish_) {
      FinishLocked(*pending_finish_);
    }
  }
  void OnCancel() override {
    absl::MutexLock lock(&mu_);
    FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "cancelled"));
  }
  void OnDone() override {
    service_->Remove(this);
    delete this;
  }

 private:
  void FinishLocked(const grpc::Status& status)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_) return;
    if (writing_) {  // finish after the write in flight
      pending_finish_ = std::make_unique<grpc::Status>(status);
      return;
    }
    finished_ = true;
    Finish(status);
  }

  // How long a watch of a job the tracker does not know yet waits for it
  // (`kwqctl submit` then `job watch` at once) before NOT_FOUND.
  static constexpr absl::Duration kUnknownJobGrace = absl::Seconds(10);

  TrackerService* service_;
  const std::string job_;
  const absl::Time started_;
  absl::Mutex mu_;
  kwq::v1::JobSummary current_;
  std::string last_key_;
  bool sent_any_ = false;
  bool writing_ = false;
  bool done_sent_ = false;
  bool finished_ = false;
  std::unique_ptr<grpc::Status> pending_finish_;
};

TrackerService::TrackerService(const TrackerStore* store,
                               std::shared_ptr<auth::Authorizer> authorizer)
    : store_(store),
      authorizer_(std::move(authorizer)),
      metrics_(std::make_shared<prometheus::Registry>()) {
  auto& family = prometheus::BuildHistogram()
                     .Name("kwq_tracker_query_seconds")
                     .Help("Time to answer a query from the model, per RPC")
                     .Register(*metrics_);
  const prometheus::Histogram::BucketBoundaries bounds = {
      0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01,
      0.02,   0.05,   0.1,    0.2,   0.5,   1,     5};
  get_task_seconds_ = &family.Add({{"rpc", "GetTask"}}, bounds);
  list_tasks_seconds_ = &family.Add({{"rpc", "ListTasks"}}, bounds);
  job_summary_seconds_ = &family.Add({{"rpc", "GetJobSummary"}}, bounds);
  list_jobs_seconds_ = &family.Add({{"rpc", "ListJobs"}}, bounds);
  throughput_seconds_ = &family.Add({{"rpc", "GetThroughput"}}, bounds);
  watch_thread_ = std::thread([this] { WatchLoop(); });
}

TrackerService::~TrackerService() { Stop(); }

void TrackerService::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    stopping_ = true;
    for (JobWatcher* w : watchers_) {
      w->FinishFromService(
          grpc::Status(grpc::StatusCode::CANCELLED, "tracker stopping"));
    }
  }
  if (watch_thread_.joinable()) watch_thread_.join();
  // Streams finish asynchronously; wait until gRPC let go of every one.
  absl::MutexLock lock(&mu_);
  mu_.AwaitWithTimeout(
      absl::Condition(
          +[](std::set<JobWatcher*>* w) { return w->empty(); }, &watchers_),
      absl::Seconds(5));
}

size_t TrackerService::watchers() const {
  absl::MutexLock lock(&mu_);
  return watchers_.size();
}

void TrackerService::Remove(JobWatcher* w) {
  absl::MutexLock lock(&mu_);
  watchers_.erase(w);
}

void TrackerService::WatchLoop() {
  absl::MutexLock lock(&mu_);
  while (!stopping_) {
    const absl::Time now = absl::Now();
    for (JobWatcher* w : watchers_) w->Tick(now);
    mu_.AwaitWithTimeout(absl::Condition(&stopping_), kWatchPeriod);
  }
}

grpc::ServerUnaryReactor* TrackerService::GetTask(
    grpc::CallbackServerContext* ctx, const kwq::v1::GetTaskRequest* request,
    kwq::v1::TaskStatus* response) {
  return Reply(
      ctx, CheckView(*ctx),
      [&] {
        return Timed(get_task_seconds_,
                     [&] { return store_->GetTask(request->task_id()); });
      },
      response);
}

grpc::ServerUnaryReactor* TrackerService::ListTasks(
    grpc::CallbackServerContext* ctx, const kwq::v1::ListTasksRequest* request,
    kwq::v1::ListTasksResponse* response) {
  return Reply(
      ctx, CheckView(*ctx),
      [&] {
        return Timed(list_tasks_seconds_,
                     [&] { return store_->ListTasks(*request); });
      },
      response);
}

grpc::ServerUnaryReactor* TrackerService::GetJobSummary(
    grpc::CallbackServerContext* ctx,
    const kwq::v1::GetJobSummaryRequest* request,
    kwq::v1::JobSummary* response) {
  return Reply(
      ctx, CheckView(*ctx),
      [&] {
        return Timed(job_summary_seconds_, [&] {
          return store_->GetJobSummary(request->job_id(), request->max_tags(),
                                       absl::Now());
        });
      },
      response);
}

grpc::ServerUnaryReactor* TrackerService::ListJobs(
    grpc::CallbackServerContext* ctx, const kwq::v1::ListJobsRequest* request,
    kwq::v1::ListJobsResponse* response) {
  return Reply(
      ctx, CheckView(*ctx),
      [&] {
        return Timed(list_jobs_seconds_,
                     [&] { return store_->ListJobs(*request, absl::Now()); });
      },
      response);
}

grpc::ServerUnaryReactor* TrackerService::GetThroughput(
    grpc::CallbackServerContext* ctx,
    const kwq::v1::GetThroughputRequest* request,
    kwq::v1::ThroughputStats* response) {
  return Reply(
      ctx, CheckView(*ctx),
      [&] {
        return Timed(throughput_seconds_, [&] {
          return store_->GetThroughput(*request, absl::Now());
        });
      },
      response);
}

grpc::Status TrackerService::CheckView(
    const grpc::CallbackServerContext& ctx) const {
  return auth::CheckCall(authorizer_.get(), ctx, auth::Role::kView);
}

grpc::ServerWriteReactor<kwq::v1::JobSummary>* TrackerService::WatchJob(
    grpc::CallbackServerContext* ctx, const kwq::v1::WatchJobRequest* request) {
  auto* watcher = new JobWatcher(this, request->job_id());
  if (grpc::Status allowed = CheckView(*ctx); !allowed.ok()) {
    absl::MutexLock lock(&mu_);
    watchers_.insert(watcher);  // OnDone removes it
    watcher->FinishFromService(allowed);
    return watcher;
  }
  // Validate before streaming anything. A job not known yet is waited for
  // (JobWatcher::kUnknownJobGrace), then NOT_FOUND.
  auto first = store_->GetJobSummary(request->job_id(), 0, absl::Now());
  absl::MutexLock lock(&mu_);
  if ((!first.ok() && !absl::IsNotFound(first.status())) || stopping_) {
    watchers_.insert(watcher);  // OnDone removes it
    watcher->FinishFromService(
        first.ok()
            ? grpc::Status(grpc::StatusCode::UNAVAILABLE, "tracker stopping")
            : ToGrpc(first.status()));
    return watcher;
  }
  watchers_.insert(watcher);
  watcher->Tick(absl::Now());  // the first summary right away
  return watcher;
}

}  // namespace kwq::tracker
