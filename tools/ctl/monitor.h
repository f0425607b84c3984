#pragma once

#include <ostream>
#include <string>

#include "kwq/v1/tracker.pb.h"

namespace kwq::ctl {

// The job monitor's view: draws a JobSummary as a block of lines redrawn in
// place on a terminal, or as one line per update when piped. On a terminal
// every line is cut to the terminal's width (asked at each draw, so a resize
// is followed), so that a line is one screen row and the redraw moves up by
// exactly the rows it drew.
class JobMonitor {
 public:
  // `out` writes to file descriptor `fd`: a terminal (isatty) gets the
  // in-place view sized by its window, anything else one line per update.
  JobMonitor(std::ostream& out, int fd);
  // `expected_total` > 0 when the caller knows how many tasks the job will have
  // (the progress bar then counts against it rather than the tasks seen so
  // far).
  void Draw(const kwq::v1::JobSummary& s, long long expected_total = 0);
  // Ends the in-place block (a newline on a terminal).
  void Done();

 private:
  int Width() const;  // columns of the terminal, 80 when unknown

  std::ostream& out_;
  const int fd_;
  const bool tty_;
  int lines_drawn_ = 0;
};

}  // namespace kwq::ctl
