#pragma once

#include <memory>
#include <set>
#include <string>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "kwq/v1/tracker.grpc.pb.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "server/auth/authorizer.h"
#include "tracker/store/tracker_store.h"

namespace kwq::tracker {

class JobWatcher;

// kwq.v1.Tracker over a TrackerStore. Unary queries run in the callback (short
// RocksDB reads); WatchJob streams are fed by one thread that checks every
// watched job every 200 ms and writes a summary when it changed. Thread-safe.
class TrackerService final : public kwq::v1::Tracker::CallbackService {
 public:
  // `authorizer`: who may read (every RPC needs the view role); null: anyone.
  TrackerService(const TrackerStore* store,
                 std::shared_ptr<auth::Authorizer> authorizer);
  ~TrackerService() override;
  // Ends every watch stream (CANCELLED) and stops the watch thread; call before
  // grpc::Server::Shutdown so that shutdown does not wait on open streams.
  void Stop();

  // Query latency per RPC (kwq_tracker_query_seconds{rpc=...}), for /metrics.
  std::shared_ptr<prometheus::Registry> metrics() const { return metrics_; }
  // Open WatchJob streams.
  size_t watchers() const;

  grpc::ServerUnaryReactor* GetTask(grpc::CallbackServerContext* ctx,
                                    const kwq::v1::GetTaskRequest* request,
                                    kwq::v1::TaskStatus* response) override;
  grpc::ServerUnaryReactor* ListTasks(
      grpc::CallbackServerContext* ctx,
      const kwq::v1::ListTasksRequest* request,
      kwq::v1::ListTasksResponse* response) override;
  grpc::ServerUnaryReactor* GetJobSummary(
      grpc::CallbackServerContext* ctx,
      const kwq::v1::GetJobSummaryRequest* request,
      kwq::v1::JobSummary* response) override;
  grpc::ServerUnaryReactor* ListJobs(
      grpc::CallbackServerContext* ctx, const kwq::v1::ListJobsRequest* request,
      kwq::v1::ListJobsResponse* response) override;
  grpc::ServerWriteReactor<kwq::v1::JobSummary>* WatchJob(
      grpc::CallbackServerContext* ctx,
      const kwq::v1::WatchJobRequest* request) override;
  grpc::ServerUnaryReactor* GetThroughput(
      grpc::CallbackServerContext* ctx,
      const kwq::v1::GetThroughputRequest* request,
      kwq::v1::ThroughputStats* response) override;

 private:
  friend class JobWatcher;
  void WatchLoop();
  void Remove(JobWatcher* w);
  grpc::Status CheckView(const grpc::CallbackServerContext& ctx) const;

  // Runs `query`, observing its time in `histogram`.
  template <typename F>
  auto Timed(prometheus::Histogram* histogram, F query) const {
    const absl::Time start = absl::Now();
    auto out = query();
    histogram->Observe(absl::ToDoubleSeconds(absl::Now() - start));
    return out;
  }

  const TrackerStore* store_;
  const std::shared_ptr<auth::Authorizer> authorizer_;
  std::shared_ptr<prometheus::Registry> metrics_;
  prometheus::Histogram* get_task_seconds_ = nullptr;
  prometheus::Histogram* list_tasks_seconds_ = nullptr;
  prometheus::Histogram* job_summary_seconds_ = nullptr;
  prometheus::Histogram* list_jobs_seconds_ = nullptr;
  prometheus::Histogram* throughput_seconds_ = nullptr;
  mutable absl::Mutex mu_;
  std::set<JobWatcher*> watchers_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread watch_thread_;
};

}  // namespace kwq::tracker
