// kwqctl job results JOB: the results of a job's completed tasks, read from
// <prefix>.results (keyed by job id) from its beginning to its end at the time
// of the call.
#include <algorithm>
#include <iostream>
#include <map>
#include <memory>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "kwq/v1/task.pb.h"
#include "server/api/topics.h"
#include "tools/ctl/commands.h"
#include "tools/ctl/topic_reader.h"

namespace kwq::ctl {

int JobResults(const Context& c, const std::string& job) {
  const std::string topic =
      api::Topics(c.args.Get("topic_prefix", "kwq")).Results();
  long long found = 0;
  bool header = false;
  const int rc = ReadTopicToEnd(c, topic, [&](const RdKafka::Message& m) {
    if (!m.key() || *m.key() != job) return;
    kwq::v1::TaskResult r;
    if (!r.ParseFromArray(m.payload(), static_cast<int>(m.len()))) return;
    ++found;
    if (c.format == Format::kTable) {
      if (!header) {
        std::cout << "TASK\tATTEMPT\tWORKER\tRESULT (text, or base64:...)\n";
        header = true;
      }
      // Text as text (one line: newlines shown as \\n), else base64.
      const bool text = IsPrintableText(r.result());
      std::string shown = text
                              ? absl::StrReplaceAll(r.result(), {{"\n", "\\n"}})
                              : "base64:" + absl::Base64Escape(r.result());
      std::cout << r.task_id() << "\t" << r.attempt() << "\t" << r.worker_id()
                << "\t" << shown << "\n";
    } else {
      std::cout << ToJson(r) << "\n";  // bytes are base64 in proto JSON
    }
  });
  if (rc != kExitOk) return rc;
  if (found == 0) {
    return Fail(kExitFailure, "no results for job " + job + " in " + topic);
  }
  return kExitOk;
}

}  // namespace kwq::ctl
