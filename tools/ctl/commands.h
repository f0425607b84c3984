#pragma once

#include <memory>
#include <string>

#include "kwq/v1/scheduler.grpc.pb.h"
#include "kwq/v1/tracker.grpc.pb.h"
#include "tools/ctl/args.h"
#include "tools/ctl/output.h"
#include "worker_sdk/client_security.h"

namespace kwq::ctl {

// Exit codes: 0 success, 1 failure (an RPC failed, a job had failed tasks), 2
// bad usage.
constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

// What every command gets: the parsed command line and the global flags.
struct Context {
  const Args& args;
  std::string scheduler = "127.0.0.1:50051";
  std::string tracker = "127.0.0.1:50052";
  Format format = Format::kTable;
  int timeout_s = 10;  // per RPC
  // TLS and token (--tls-ca, --tls-cert, --tls-key, --token, or KWQ_* env).
  ClientSecurity security = {};
  std::shared_ptr<grpc::ChannelCredentials> credentials = nullptr;

  std::unique_ptr<kwq::v1::Scheduler::Stub> SchedulerStub() const;
  std::unique_ptr<kwq::v1::Tracker::Stub> TrackerStub() const;
  // A channel to `address` with this command's credentials.
  std::shared_ptr<grpc::Channel> Channel(const std::string& address) const;
  // A client context with this command's RPC deadline and bearer token.
  void Prepare(grpc::ClientContext* ctx) const;
};

// Prints "kwqctl: <message>" to stderr and returns `code`.
int Fail(int code, const std::string& message);

int RunDev(const Context& c);
int RunSubmit(const Context& c);
int RunJob(const Context& c);
int RunTask(const Context& c);
int RunQueue(const Context& c);
int RunWorker(const Context& c);
int RunSimulate(const Context& c);
int RunToken(const Context& c);
int RunDlq(const Context& c);
// kwqctl job results JOB (cmd_results.cc).
int JobResults(const Context& c, const std::string& job);

}  // namespace kwq::ctl
