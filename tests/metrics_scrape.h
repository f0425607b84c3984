#pragma once

#include <string>

#include "absl/time/time.h"

namespace kwq::testing {

// Reads the Prometheus endpoint of a kwq process started with
// --metrics_listen (its start line says "metrics http://HOST:PORT/metrics").
class MetricsScrape {
 public:
  // From the process's start line; port() is 0 when the line names none.
  explicit MetricsScrape(const std::string& start_line);
  int port() const { return port_; }
  // The whole exposition text ("" when unreachable).
  std::string Text() const;
  // The value of the first sample of `series` (name with labels), or -1.
  double Sample(const std::string& series) const;
  static double Sample(const std::string& text, const std::string& series);
  // Polls until `series` reads `want` or `timeout` passes.
  bool WaitFor(const std::string& series, double want,
               absl::Duration timeout) const;

 private:
  int port_ = 0;
};

}  // namespace kwq::testing
