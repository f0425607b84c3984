#include "tools/ctl/monitor.h"

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "tools/ctl/output.h"

namespace kwq::ctl {

void JobMonitor::Draw(const kwq::v1::JobSummary& s, long long expected_total) {
  const auto& c = s.counts();
  const long long total = std::max<long long>(c.total(), expected_total);
  const long long finished = c.completed() + c.failed() + c.cancelled();
  const double pct = total > 0 ? 100.0 * static_cast<double>(finished) /
                                     static_cast<double>(total)
                               : 0.0;
  const std::string eta = s.done() ? "done"
                          : s.eta_seconds() > 0
                              ? absl::StrFormat("ETA %.1f s", s.eta_seconds())
                              : "ETA -";
  if (!tty_) {
    out_ << absl::FormatTime("%H:%M:%S", absl::Now(), absl::LocalTimeZone())
         << " job " << s.job_id() << absl::StrFormat(" %.1f%%", pct)
         << " completed " << c.completed() << " failed " << c.failed()
         << " running " << c.running() + c.allocated() << " pending "
         << c.pending() + c.error() << " retries " << c.retries()
         << absl::StrFormat(" rate %.0f/s ", s.rate_per_second()) << eta << "\n"
         << std::flush;
    return;
  }
  std::vector<std::string> lines;
  const int width = 30;
  const int filled = static_cast<int>(pct / 100.0 * width);
  lines.push_back(
      absl::StrFormat("job %s  [%s%s] %5.1f%%  %s / %s tasks", s.job_id(),
                      std::string(static_cast<size_t>(filled), '#'),
                      std::string(static_cast<size_t>(width - filled), '-'),
                      pct, Thousands(finished), Thousands(total)));
  lines.push_back(absl::StrFormat(
      "  completed %s  failed %s  cancelled %s  running %s  pending %s  "
      "retrying %s  "
      "retries %s",
      Thousands(c.completed()), Thousands(c.failed()), Thousands(c.cancelled()),
      Thousands(c.running() + c.allocated()), Thousands(c.pending()),
      Thousands(c.error()), Thousands(c.retries())));
  lines.push_back(absl::StrFormat(
      "  rate %s tasks/s  %s",
      Thousands(static_cast<long long>(s.rate_per_second())), eta));
  std::vector<std::pair<long long, std::string>> bad;
  for (const auto& t : s.tags()) {
    const long long n = t.counts().failed() + t.counts().error();
    if (n > 0) bad.emplace_back(n, t.tag());
  }
  std::sort(bad.rbegin(), bad.rend());
  if (!bad.empty()) {
    std::string l = "  tags with most errors:";
    for (size_t i = 0; i < bad.size() && i < 3; ++i) {
      absl::StrAppend(&l, " ", bad[i].second, " (", bad[i].first, ")");
    }
    lines.push_back(l);
  }
  for (int i = 0; i < s.recent_errors_size() && i < 3; ++i) {
    std::string e = s.recent_errors(i);
    if (e.size() > 100) e = e.substr(0, 97) + "...";
    lines.push_back("  error: " + e);
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
