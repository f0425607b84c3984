#include "tools/ctl/monitor.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "tools/ctl/output.h"

namespace kwq::ctl {

JobMonitor::JobMonitor(std::ostream& out, int fd)
    : out_(out), fd_(fd), tty_(isatty(fd) == 1) {}

int JobMonitor::Width() const {
  struct winsize ws {};
  if (ioctl(fd_, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
  return 80;
}

void JobMonitor::Draw(const kwq::v1::JobSummary& s, long long expected_total) {
  const auto& c = s.counts();
  const long long total = std::max<long long>(c.total(), expected_total);
  const long long finished = c.completed() + c.failed() + c.cancelled();
  const double pct = total > 0 ? 100.0 * static_cast<double>(finished) /
                                     static_cast<double>(total)
                               : 0.0;
  const std::string eta =
      s.done() ? "done" : "ETA " + FormatEta(s.eta_seconds());
  if (!tty_) {
    out_ << absl::FormatTime("%H:%M:%S", absl::Now(), absl::LocalTimeZone())
         << " job " << s.job_id() << absl::StrFormat(" %.1f%%", pct)
         << " completed " << c.completed() << " failed " << c.failed()
         << " running " << c.running() + c.allocated() << " pending "
         << c.pending() + c.error() << " retries " << c.retries() << " rate "
         << FormatRate(s.rate_per_second()) << "/s " << eta << "\n"
         << std::flush;
    return;
  }
  const int columns = Width();
  std::vector<std::string> lines;
  std::string head = absl::StrFormat("job %s  ", s.job_id());
  const std::string tail = absl::StrFormat(
      "] %5.1f%%  %s / %s", pct, Thousands(finished), Thousands(total));
  // The bar takes what is left of the row, 10 to 30 characters; a job id too
  // long to leave room for it gets a row of its own.
  if (static_cast<int>(head.size() + tail.size()) + 12 > columns) {
    lines.push_back(absl::StrCat("job ", s.job_id()));
    head.clear();
  }
  const int bar = std::clamp(
      columns - 2 - static_cast<int>(head.size() + tail.size()), 10, 30);
  const int filled = static_cast<int>(pct / 100.0 * bar);
  lines.push_back(head + "[" + std::string(static_cast<size_t>(filled), '#') +
                  std::string(static_cast<size_t>(bar - filled), '-') + tail);
  lines.push_back(absl::StrFormat(
      "completed %s  failed %s  cancelled %s  running %s  pending %s",
      Thousands(c.completed()), Thousands(c.failed()), Thousands(c.cancelled()),
      Thousands(c.running() + c.allocated()), Thousands(c.pending())));
  std::string third = absl::StrFormat(
      "retrying %s  retries %s  rate %s/s  %s", Thousands(c.error()),
      Thousands(c.retries()), FormatRate(s.rate_per_second()),
      s.done() ? "done" : "ETA " + FormatEta(s.eta_seconds()));
  if (c.repeated_executions() > 0) {
    absl::StrAppend(&third, "  repeated ", Thousands(c.repeated_executions()));
  }
  lines.push_back(third);
  std::vector<std::pair<long long, std::string>> bad;
  for (const auto& t : s.tags()) {
    const long long n = t.counts().failed() + t.counts().error();
    if (n > 0) bad.emplace_back(n, t.tag());
  }
  std::sort(bad.rbegin(), bad.rend());
  if (!bad.empty()) {
    std::string l = "tags with most errors:";
    for (size_t i = 0; i < bad.size() && i < 3; ++i) {
      absl::StrAppend(&l, " ", bad[i].second, " (", bad[i].first, ")");
    }
    lines.push_back(l);
  }
  for (int i = 0; i < s.recent_errors_size() && i < 3; ++i) {
    lines.push_back("error: " + s.recent_errors(i));
  }
  // One screen row each: printable ASCII only (a worker's error text may hold
  // anything), cut to the width with a marker.
  const size_t room = static_cast<size_t>(std::max(columns - 1, 10));
  for (auto& l : lines) {
    for (char& ch : l) {
      if (ch < ' ' || ch > '~') ch = '?';
    }
    if (l.size() > room) l = l.substr(0, room - 3) + "...";
  }
  // Back to the top of the previous block, then overwrite it line by line.
  if (lines_drawn_ > 0) out_ << "\x1b[" << lines_drawn_ << "A";
  for (const auto& l : lines) out_ << "\r\x1b[2K" << l << "\n";
  for (int i = static_cast<int>(lines.size()); i < lines_drawn_; ++i)
    out_ << "\r\x1b[2K\n";
  const int drawn = std::max(lines_drawn_, static_cast<int>(lines.size()));
  if (drawn > static_cast<int>(lines.size())) {
    out_ << "\x1b[" << drawn - static_cast<int>(lines.size()) << "A";
  }
  lines_drawn_ = static_cast<int>(lines.size());
  out_ << std::flush;
}

void JobMonitor::Done() { out_ << std::flush; }

}  // namespace kwq::ctl
