#include "tools/devgrid/in_process_scheduler.h"

#include "absl/strings/str_cat.h"
#include "server/util/grpc_server.h"

namespace kwq::devgrid {

absl::StatusOr<std::unique_ptr<InProcessScheduler>> InProcessScheduler::Start(
    const KafkaCluster* cluster, scheduler::ServiceOptions options,
    const std::string& listen,
    std::shared_ptr<grpc::ServerCredentials> credentials) {
  return Serve(MakeKafkaBackend(cluster), std::move(options), listen,
               std::move(credentials));
}

absl::StatusOr<std::unique_ptr<InProcessScheduler>> InProcessScheduler::StartOn(
    std::unique_ptr<SchedulerBackend> backend,
    scheduler::ServiceOptions options, const std::string& listen) {
  return Serve(std::move(backend), std::move(options), listen, nullptr);
}

absl::StatusOr<std::unique_ptr<InProcessScheduler>> InProcessScheduler::Serve(
    std::unique_ptr<SchedulerBackend> backend,
    scheduler::ServiceOptions options, const std::string& listen,
    std::shared_ptr<grpc::ServerCredentials> credentials) {
  auto s = std::unique_ptr<InProcessScheduler>(new InProcessScheduler());
  s->backend_ = std::move(backend);
  s->service_ = std::make_unique<scheduler::SchedulerService>(
      std::move(options), s->backend_.get());
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(
      listen, credentials ? credentials : grpc::InsecureServerCredentials(),
      &port);
  ApplyServerSettings(builder);
  builder.RegisterService(s->service_.get());
  s->server_ = builder.BuildAndStart();
  if (!s->server_ || port == 0) {
    return absl::UnavailableError(CannotListen(listen));
  }
  s->address_ = absl::StrCat(listen.substr(0, listen.rfind(':')), ":", port);
  if (absl::Status st = s->service_->Start(); !st.ok()) return st;
  return s;
}

void InProcessScheduler::Shutdown(absl::Duration grace) {
  if (down_) return;
  down_ = true;
  service_->Drain(grace);
  server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
}

InProcessScheduler::~InProcessScheduler() { Shutdown(absl::ZeroDuration()); }

}  // namespace kwq::devgrid
