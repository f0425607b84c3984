#pragma once

#include <string>
#include <utility>

#include "prometheus/metric_family.h"
#include "prometheus/metric_type.h"

namespace kwq::metrics {

// A metric family holding one unlabelled sample: a counter or a gauge.
inline prometheus::MetricFamily SingleValue(const std::string& name,
                                            const std::string& help,
                                            prometheus::MetricType type,
                                            double value) {
  prometheus::MetricFamily f{name, help, type, {}};
  prometheus::ClientMetric m;
  if (type == prometheus::MetricType::Counter) {
    m.counter.value = value;
  } else {
    m.gauge.value = value;
  }
  f.metric.push_back(std::move(m));
  return f;
}

}  // namespace kwq::metrics
