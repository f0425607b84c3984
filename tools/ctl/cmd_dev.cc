// kwqctl dev: a whole grid in this process until Ctrl-C.
#include <csignal>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "tools/ctl/commands.h"
#include "tools/devgrid/dev_grid.h"

namespace kwq::ctl {

namespace {
absl::Notification* g_stop = nullptr;
void OnSignal(int) {
  if (g_stop != nullptr && !g_stop->HasBeenNotified()) g_stop->Notify();
}
}  // namespace

int RunDev(const Context& c) {
  std::string error;
  if (!c.args.CheckAllowed(
          {"scheduler_listen", "tracker_listen", "console_listen",
           "bootstrap_servers", "kafka_config", "topic_prefix", "partitions"},
          &error)) {
    return Fail(kExitUsage, error);
  }
  devgrid::GridOptions o;
  o.scheduler_listen = c.args.Get("scheduler_listen", "127.0.0.1:50051");
  o.tracker_listen = c.args.Get("tracker_listen", "127.0.0.1:50052");
  o.bootstrap_servers = c.args.Get("bootstrap_servers");
  o.kafka_config = c.args.Get("kafka_config");
  o.topic_prefix = c.args.Get("topic_prefix", "kwq");
  long long partitions = 4;
  if (!c.args.GetInt("partitions", 4, &partitions, &error) || partitions < 1 ||
      partitions > 100) {
    return Fail(kExitUsage,
                error.empty() ? "--partitions must be 1-100" : error);
  }
  o.partitions = static_cast<int>(partitions);
  // The console: 127.0.0.1:8080 unless told otherwise ("" turns it off); when
  // the default port is taken, any free one (the banner shows which).
  const bool console_default = !c.args.Has("console_listen");
  o.console_listen = c.args.Get("console_listen", "127.0.0.1:8080");
  auto grid = devgrid::DevGrid::Start(o);
  if (!grid.ok() && console_default &&
      grid.status().code() == absl::StatusCode::kUnavailable) {
    o.console_listen = "127.0.0.1:0";
    grid = devgrid::DevGrid::Start(o);
  }
  if (!grid.ok())
    return Fail(kExitFailure, std::string(grid.status().message()));
  const std::string sched = (*grid)->scheduler().address();
  const std::string tracker = (*grid)->tracker().address();
  const std::string console = (*grid)->console_address();
  std::cout
      << "kwq dev grid\n"
      << "  scheduler  " << sched << "\n"
      << "  tracker    " << tracker << "\n"
      << "  console    "
      << (console.empty() ? std::string("off (--console_listen)")
                          : absl::StrCat("http://", console, "/"))
      << "\n"
      << "  kafka      "
      << ((*grid)->embedded()
              ? absl::StrCat(
                    "embedded at ", (*grid)->cluster().bootstrap_servers(),
                    " (librdkafka mock cluster: everything lives in memory "
                    "and is gone when this process exits)")
              : o.bootstrap_servers)
      << "\n  topics     " << o.topic_prefix << ".tasks.p0-9, "
      << o.topic_prefix << ".events, ...\n"
      << "Try, in another terminal:\n"
      << "  kwqctl simulate --scheduler " << sched << " --tracker " << tracker
      << " --tasks 10000 --workers 4\n"
      << "  kwqctl job list --tracker " << tracker << "\n"
      << (console.empty() ? ""
                          : absl::StrCat("  open http://", console,
                                         "/ in a browser (the console)\n"))
      << "Ctrl-C stops it.\n"
      << "ready: scheduler listening on " << sched << " tracker " << tracker
      << " kafka " << (*grid)->cluster().bootstrap_servers()
      << (console.empty() ? "" : " console http://" + console) << std::endl;
  absl::Notification stop;
  g_stop = &stop;
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  stop.WaitForNotification();
  std::cerr << "stopping the dev grid\n";
  (*grid)->Shutdown(absl::Seconds(2));
  return kExitOk;
}

}  // namespace kwq::ctl
