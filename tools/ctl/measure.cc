#include "tools/ctl/measure.h"

#include <dirent.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <sstream>
#include <string>

namespace kwq::ctl {

double OwnCpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

namespace {

std::string ThreadGroup(std::string name) {
  if (name.rfind("rdk:", 0) == 0) return "librdkafka";
  if (name.rfind("grpc", 0) == 0 || name == "nexting_thread" ||
      name.rfind("default-execut", 0) == 0 || name == "event_engine" ||
      name.rfind("resolver", 0) == 0) {
    return "grpc";
  }
  while (!name.empty() && ((name.back() >= '0' && name.back() <= '9') ||
                           name.back() == '-' || name.back() == ':')) {
    name.pop_back();
  }
  for (char& c : name) {  // a JSON key as it is
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' &&
        c != ':' && c != '.') {
      c = '_';
    }
  }
  return name.empty() ? "unnamed" : name;
}

}  // namespace

double CpuSecondsOf(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)),
                   std::istreambuf_iterator<char>());
  // The command name is in parentheses and may hold spaces: fields are
  // counted after the last ')'. utime and stime are fields 14 and 15.
  const size_t close = stat.rfind(')');
  if (close == std::string::npos) return -1;
  std::istringstream fields(stat.substr(close + 2));
  std::string field;
  double ticks = 0;
  for (int i = 3; i <= 15 && fields >> field; ++i) {
    if (i >= 14) ticks += std::stod(field);
  }
  return ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
}

double ThreadCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

std::map<std::string, double> ThreadGroupCpuSeconds() {
  std::map<std::string, double> out;
  DIR* dir = opendir("/proc/self/task");
  if (dir == nullptr) return out;
  const std::string self = std::to_string(getpid());
  while (dirent* e = readdir(dir)) {
    if (e->d_name[0] == '.') continue;
    const std::string task = std::string("/proc/self/task/") + e->d_name;
    // schedstat's first field: the thread's time on a CPU in ns, exact (stat's
    // per-thread utime/stime are tick samples: a thread that runs in short
    // bursts reads 0 there).
    std::ifstream sched(task + "/schedstat");
    unsigned long long ns = 0;
    if (!(sched >> ns)) continue;
    std::ifstream comm(task + "/comm");
    std::string name;
    std::getline(comm, name);
    out[e->d_name == self ? std::string("main") : ThreadGroup(name)] +=
        static_cast<double>(ns) / 1e9;
  }
  closedir(dir);
  return out;
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1,
                    static_cast<size_t>(p * static_cast<double>(v.size())))];
}

}  // namespace kwq::ctl
