#include "tests/metrics_scrape.h"

#include "absl/strings/numbers.h"
#include "absl/time/clock.h"
#include "httplib.h"

namespace kwq::testing {

MetricsScrape::MetricsScrape(const std::string& start_line) {
  const size_t at = start_line.find("metrics http://");
  if (at == std::string::npos) return;
  const size_t end = start_line.find("/metrics", at + 15);
  const std::string hostport = start_line.substr(at + 15, end - at - 15);
  if (!absl::SimpleAtoi(hostport.substr(hostport.rfind(':') + 1), &port_)) {
    port_ = 0;
  }
}

std::string MetricsScrape::Text() const {
  if (port_ == 0) return "";
  httplib::Client http("127.0.0.1", port_);
  auto res = http.Get("/metrics");
  return res && res->status == 200 ? res->body : std::string();
}

double MetricsScrape::Sample(const std::string& text,
                             const std::string& series) {
  const std::string all = "\n" + text;
  size_t at = all.find("\n" + series + " ");
  if (at == std::string::npos) return -1;
  at += series.size() + 2;
  double v = -1;
  if (!absl::SimpleAtod(all.substr(at, all.find('\n', at) - at), &v)) return -1;
  return v;
}

double MetricsScrape::Sample(const std::string& series) const {
  return Sample(Text(), series);
}

bool MetricsScrape::WaitFor(const std::string& series, double want,
                            absl::Duration timeout) const {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (Sample(series) == want) return true;
    absl::SleepFor(absl::Milliseconds(20));  // polling another process
  }
  return false;
}

}  // namespace kwq::testing
