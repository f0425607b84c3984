#pragma once

#include <ostream>
#include <string>

#include "kwq/v1/tracker.pb.h"

namespace kwq::ctl {

// The job monitor's view: draws a JobSummary as a block of lines redrawn in
// place on a terminal, or as one line per update when piped.
class JobMonitor {
 public:
  JobMonitor(std::ostream& out, bool tty) : out_(out), tty_(tty) {}
  // `expected_total` > 0 when the caller knows how many tasks the job will have
  // (the progress bar then counts against it rather than the tasks seen so
  // far).
  void Draw(const kwq::v1::JobSummary& s, long long expected_total = 0);
  // Ends the in-place block (a newline on a terminal).
  void Done();

 private:
  std::ostream& out_;
  const bool tty_;
  int lines_drawn_ = 0;
};

}  // namespace kwq::ctl
