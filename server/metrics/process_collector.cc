#include "server/metrics/process_collector.h"

#include <sys/resource.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "server/metrics/families.h"
#include "server/util/main_prologue.h"

namespace kwq::metrics {
namespace {

// Fields of /proc/self/stat after the command name: utime (14), stime (15),
// starttime (22), vsize (23), rss (24), numbered as in proc(5).
struct Stat {
  double cpu_seconds = 0, start_seconds_since_boot = 0, vsize = 0, rss = 0;
  bool ok = false;
};

Stat ReadStat() {
  Stat s;
  std::ifstream f("/proc/self/stat");
  std::string line;
  if (!std::getline(f, line)) return s;
  const size_t close = line.rfind(')');  // the name may hold spaces
  if (close == std::string::npos) return s;
  std::istringstream in(line.substr(close + 2));
  std::vector<std::string> v;
  for (std::string x; in >> x;) v.push_back(x);
  // v[0] is field 3 (state).
  if (v.size() < 22) return s;
  const double tick = static_cast<double>(sysconf(_SC_CLK_TCK));
  const double page = static_cast<double>(sysconf(_SC_PAGESIZE));
  s.cpu_seconds = (std::stod(v[11]) + std::stod(v[12])) / tick;
  s.start_seconds_since_boot = std::stod(v[19]) / tick;
  s.vsize = std::stod(v[20]);
  s.rss = std::stod(v[21]) * page;
  s.ok = true;
  return s;
}

double BootTime() {
  std::ifstream f("/proc/stat");
  for (std::string line; std::getline(f, line);) {
    if (line.rfind("btime ", 0) == 0) return std::stod(line.substr(6));
  }
  return 0;
}

}  // namespace

ProcessCollector::ProcessCollector(std::string service)
    : service_(std::move(service)) {}

std::vector<prometheus::MetricFamily> ProcessCollector::Collect() const {
  std::vector<prometheus::MetricFamily> out;
  const auto gauge = prometheus::MetricType::Gauge;
  const Stat s = ReadStat();
  if (s.ok) {
    out.push_back(SingleValue("process_cpu_seconds_total",
                              "Total user and system CPU time spent in seconds",
                              prometheus::MetricType::Counter, s.cpu_seconds));
    out.push_back(SingleValue("process_resident_memory_bytes",
                              "Resident memory size in bytes", gauge, s.rss));
    out.push_back(SingleValue("process_virtual_memory_bytes",
                              "Virtual memory size in bytes", gauge, s.vsize));
    out.push_back(
        SingleValue("process_start_time_seconds",
                    "Start time of the process since unix epoch in seconds",
                    gauge, BootTime() + s.start_seconds_since_boot));
  }
  size_t fds = 0;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    ++fds;
  }
  out.push_back(SingleValue("process_open_fds",
                            "Number of open file descriptors", gauge,
                            static_cast<double>(fds)));
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) == 0) {
    out.push_back(SingleValue("process_max_fds",
                              "Maximum number of open file descriptors", gauge,
                              static_cast<double>(lim.rlim_cur)));
  }
  prometheus::MetricFamily info{
      "kwq_build_info", "kwq's version; always 1", gauge, {}};
  prometheus::ClientMetric m;
  m.label.push_back({"service", service_});
  m.label.push_back({"version", kVersion});
  m.gauge.value = 1;
  info.metric.push_back(std::move(m));
  out.push_back(std::move(info));
  return out;
}

}  // namespace kwq::metrics
