#pragma once

#include <array>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "server/api/priorities.h"
#include "server/auth/authorizer.h"
#include "server/core/scheduler_core.h"
#include "server/metrics/metrics_http.h"

namespace kwq::scheduler {

// What one scrape reports, taken on the scheduler's loop.
struct MetricsSnapshot {
  SchedulerMetrics core;
  std::array<size_t, api::kNumPriorities>
      queued{};          // buffered tasks per priority
  size_t in_flight = 0;  // leases
  size_t workers = 0;    // connected worker streams
  int64_t commit_errors = 0;
  int64_t consumer_lag = -1;  // -1: not known (yet)
};

// Prometheus text format at http://<listen>/metrics (metrics::MetricsHttp,
// with process_* and kwq_build_info); every scrape calls `snapshot`. Port 0 in
// `listen` picks a free port (see port()). With an authorizer that is not open,
// a scrape must give a bearer token whose principal holds the `view` role as
// the HTTP basic-auth password (any user name; Prometheus:
// basic_auth.password_file).
class MetricsExporter {
 public:
  static absl::StatusOr<std::unique_ptr<MetricsExporter>> Start(
      const std::string& listen, std::function<MetricsSnapshot()> snapshot,
      std::shared_ptr<auth::Authorizer> authorizer);
  ~MetricsExporter();
  int port() const { return port_; }

 private:
  class Collector;
  MetricsExporter() = default;
  std::unique_ptr<metrics::MetricsHttp> http_;
  int port_ = 0;
};

}  // namespace kwq::scheduler
