#pragma once

#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "server/auth/authorizer.h"
#include "tracker/ingest/dead_letter_reader.h"
#include "tracker/ingest/result_reader.h"
#include "tracker/store/tracker_store.h"

namespace httplib {
class Server;
}

namespace kwq::tracker {

struct ConsoleOptions {
  // host:port of the console's HTTP listener (port 0: the OS picks one).
  std::string listen = "127.0.0.1:0";
  // A scheduler instance to ask for workers, queues and explanations, and to
  // send pause/resume/cancel to; empty: those pages say it is not configured.
  std::string scheduler;
  std::shared_ptr<grpc::ChannelCredentials> scheduler_credentials;
  // Who may look (view role) and act (the scheduler checks operate with the
  // caller's own token, forwarded); null or open: anyone may look, and
  // actions go to the scheduler without a token.
  std::shared_ptr<auth::Authorizer> authorizer;
  // The dead-letter topic's newest records, for the dead letters page; null:
  // the page says it is not configured. Resubmit needs `scheduler` too.
  std::shared_ptr<DeadLetterReader> dead_letters;
  // Results looked up near a task's finish, for the task page's preview; null:
  // no preview.
  std::shared_ptr<ResultReader> results;
  // How often a live page gets a new summary.
  absl::Duration live_period = absl::Seconds(1);
  // Live (server-sent events) streams open at once; more are refused (503)
  // and the page falls back to polling.
  int max_live_streams = 16;
};

// kwq console: a web UI over HTTP (see tracker/console/README.md). Serves the
// page (HTML, JS, CSS, the vendored Chart.js; no build step) and a JSON API
// read from the tracker's store (never a full scan per request: every call is
// one of the store's paged queries), plus a server-sent-events stream of
// summaries for live pages. Read-only unless a scheduler is configured; then
// pause/resume/cancel are forwarded to it with the caller's token.
class ConsoleServer {
 public:
  // Fails (INVALID_ARGUMENT / UNAVAILABLE) on a bad or busy address.
  static absl::StatusOr<std::unique_ptr<ConsoleServer>> Start(
      const TrackerStore* store, ConsoleOptions options);
  ~ConsoleServer();

  // "host:port" it listens on.
  const std::string& address() const { return address_; }

 private:
  ConsoleServer() = default;
  void Routes();

  const TrackerStore* store_ = nullptr;
  ConsoleOptions options_;
  std::unique_ptr<httplib::Server> http_;
  std::shared_ptr<grpc::Channel> scheduler_channel_;
  std::thread thread_;
  std::string address_;
  std::atomic<int> live_streams_{0};
  std::atomic<bool> stopping_{false};
};

}  // namespace kwq::tracker
