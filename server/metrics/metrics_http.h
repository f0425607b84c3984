#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "prometheus/collectable.h"
#include "server/auth/authorizer.h"

namespace httplib {
class Server;
}

namespace kwq::metrics {

// Prometheus text format at http://<listen>/metrics, collected from
// `collectables` at every scrape, plus the process_* metrics and
// kwq_build_info{service} (ProcessCollector). Replaces prometheus-cpp's
// Exposer, whose own latency summary printed NaN quantiles. Port 0 picks a
// free port (port()). With an authorizer that is not open, a scrape must give
// a bearer token holding the view role, either as `Authorization: Bearer` or
// as the HTTP basic-auth password (Prometheus: basic_auth.password_file).
class MetricsHttp {
 public:
  static absl::StatusOr<std::unique_ptr<MetricsHttp>> Start(
      const std::string& listen, const std::string& service,
      std::vector<std::shared_ptr<prometheus::Collectable>> collectables,
      std::shared_ptr<auth::Authorizer> authorizer);
  ~MetricsHttp();
  int port() const { return port_; }

 private:
  MetricsHttp() = default;
  std::unique_ptr<httplib::Server> http_;
  std::vector<std::shared_ptr<prometheus::Collectable>> collectables_;
  std::shared_ptr<auth::Authorizer> authorizer_;
  std::thread thread_;
  int port_ = 0;
};

}  // namespace kwq::metrics
