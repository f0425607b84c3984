#pragma once

#include <string>
#include <vector>

#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"

namespace kwq::metrics {

// The standard process_* metrics of this process (CPU seconds, resident and
// virtual memory, open and max file descriptors, start time; read from /proc
// at each scrape) and a build-info gauge:
// kwq_build_info{service="...",version="..."} 1.
class ProcessCollector : public prometheus::Collectable {
 public:
  explicit ProcessCollector(std::string service);
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  const std::string service_;
};

}  // namespace kwq::metrics
