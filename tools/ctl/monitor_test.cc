// The job monitor in a pseudo-terminal of 80 columns (issue 17.7): every row
// fits the width, and a redraw moves up by exactly the rows drawn before.
#include "tools/ctl/monitor.h"

#include <pty.h>
#include <unistd.h>

#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tools/ctl/output.h"

namespace kwq::ctl {
namespace {

// The rows the text shows once cursor movement and line clearing are taken
// out, and the cursor-up counts it sent.
struct Screen {
  std::vector<std::string> rows;
  std::vector<int> ups;
};
Screen Parse(const std::string& text) {
  Screen s;
  std::string row;
  for (size_t i = 0; i < text.size(); ++i) {
    const char ch = text[i];
    if (ch == '\x1b' && i + 1 < text.size() && text[i + 1] == '[') {
      size_t j = i + 2;
      int n = 0;
      while (j < text.size() && isdigit(static_cast<unsigned char>(text[j]))) {
        n = n * 10 + (text[j] - '0');
        ++j;
      }
      if (j < text.size() && text[j] == 'A') s.ups.push_back(n);
      i = j;
    } else if (ch == '\n') {
      s.rows.push_back(row);
      row.clear();
    } else if (ch != '\r') {
      row += ch;
    }
  }
  return s;
}

kwq::v1::JobSummary BigJob() {
  kwq::v1::JobSummary s;
  s.set_job_id("risk-run-2026-12-01-end-of-day-batch-00042-usd-curves");
  auto* c = s.mutable_counts();
  c->set_total(50'000'000);
  c->set_completed(12'345'678);
  c->set_failed(1'234);
  c->set_cancelled(56'789);
  c->set_running(128);
  c->set_pending(37'000'000);
  c->set_error(17);
  c->set_retries(99'999);
  s.set_rate_per_second(23'456.7);
  s.set_eta_seconds(1583.2);
  s.add_recent_errors(std::string(300, 'e') + "\xff\x01 not printable");
  auto* tag = s.add_tags();
  tag->set_tag("currency=USD");
  tag->mutable_counts()->set_failed(7);
  return s;
}

TEST(JobMonitorTest, EveryRowFitsAnEightyColumnTerminal) {
  int master = -1, slave = -1;
  struct winsize ws {};
  ws.ws_col = 80;
  ws.ws_row = 24;
  ASSERT_EQ(openpty(&master, &slave, nullptr, nullptr, &ws), 0);
  std::ostringstream out;
  JobMonitor monitor(out, slave);
  monitor.Draw(BigJob());
  const Screen first = Parse(out.str());
  ASSERT_GE(first.rows.size(), 4u);
  EXPECT_TRUE(first.ups.empty());
  for (const auto& row : first.rows) {
    EXPECT_LE(row.size(), 79u) << row;
    for (char ch : row) EXPECT_TRUE(ch >= ' ' && ch <= '~') << row;
  }
  // The long job id has a row of its own; the progress row keeps its figures.
  EXPECT_EQ(first.rows[0].rfind("job risk-run-", 0), 0u) << first.rows[0];
  EXPECT_NE(first.rows[1].find("24.8%"), std::string::npos) << first.rows[1];
  EXPECT_NE(first.rows[3].find("rate 23,457/s"), std::string::npos)
      << first.rows[3];
  EXPECT_NE(first.rows[3].find("ETA 26 min"), std::string::npos)
      << first.rows[3];

  // The redraw goes up by the rows drawn, whatever they held.
  out.str("");
  kwq::v1::JobSummary fewer = BigJob();
  fewer.clear_recent_errors();
  fewer.clear_tags();
  monitor.Draw(fewer);
  const Screen second = Parse(out.str());
  ASSERT_FALSE(second.ups.empty());
  EXPECT_EQ(second.ups.front(), static_cast<int>(first.rows.size()));

  // A narrower window is followed at the next draw.
  ws.ws_col = 40;
  ASSERT_EQ(ioctl(slave, TIOCSWINSZ, &ws), 0);
  out.str("");
  monitor.Draw(fewer);
  for (const auto& row : Parse(out.str()).rows) EXPECT_LE(row.size(), 39u);
  close(master);
  close(slave);
}

TEST(JobMonitorTest, PipedOutputIsOneLinePerUpdate) {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  std::ostringstream out;
  JobMonitor monitor(out, fds[1]);
  monitor.Draw(BigJob());
  monitor.Draw(BigJob());
  const std::string text = out.str();
  EXPECT_EQ(text.find('\x1b'), std::string::npos);
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 2);
  close(fds[0]);
  close(fds[1]);
}

TEST(FormatTest, TextIsValidUtf8WithoutControls) {
  EXPECT_TRUE(IsPrintableText("price 42\tok\n"));
  EXPECT_TRUE(IsPrintableText("Zürich € 日本"));
  EXPECT_FALSE(IsPrintableText(std::string("a\0b", 3)));
  EXPECT_FALSE(IsPrintableText("\x1b[2J"));
  EXPECT_FALSE(IsPrintableText("\xff\xfe"));
  EXPECT_FALSE(IsPrintableText("\xc3"));      // cut short
  EXPECT_FALSE(IsPrintableText("\xc0\xaf"));  // overlong
}

TEST(FormatTest, RatesAndEtasForPeople) {
  EXPECT_EQ(FormatRate(0), "0.0");
  EXPECT_EQ(FormatRate(3.44), "3.4");
  EXPECT_EQ(FormatRate(1234.4), "1,234");
  EXPECT_EQ(FormatEta(0), "-");
  EXPECT_EQ(FormatEta(12.34), "12.3 s");
  EXPECT_EQ(FormatEta(600), "10 min");
  EXPECT_EQ(FormatEta(3 * 3600), "3.0 h");
}

}  // namespace
}  // namespace kwq::ctl
