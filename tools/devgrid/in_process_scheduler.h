#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "grpcpp/grpcpp.h"
#include "server/kafka/kafka_cluster.h"
#include "server/kafka/scheduler_backend.h"
#include "server/scheduler_service.h"

namespace kwq::devgrid {

// A scheduler served over gRPC on a loopback port chosen by the OS, on the
// given Kafka (or any SchedulerBackend, e.g. memory). Used by the simulator
// and the integration tests. Not thread-safe.
class InProcessScheduler {
 public:
  static absl::StatusOr<std::unique_ptr<InProcessScheduler>> Start(
      const KafkaCluster* cluster, scheduler::ServiceOptions options,
      const std::string& listen = "127.0.0.1:0",
      std::shared_ptr<grpc::ServerCredentials> credentials =
          nullptr);  // null: plaintext
  static absl::StatusOr<std::unique_ptr<InProcessScheduler>> StartOn(
      std::unique_ptr<SchedulerBackend> backend,
      scheduler::ServiceOptions options,
      const std::string& listen = "127.0.0.1:0");
  ~InProcessScheduler();
  const std::string& address() const { return address_; }
  scheduler::SchedulerService& service() { return *service_; }
  // SIGTERM-like: drain with grace, then shut the server down.
  void Shutdown(absl::Duration grace);

 private:
  InProcessScheduler() = default;
  static absl::StatusOr<std::unique_ptr<InProcessScheduler>> Serve(
      std::unique_ptr<SchedulerBackend> backend,
      scheduler::ServiceOptions options, const std::string& listen,
      std::shared_ptr<grpc::ServerCredentials> credentials);

  std::unique_ptr<SchedulerBackend> backend_;  // outlives the service
  std::unique_ptr<scheduler::SchedulerService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::string address_;
  bool down_ = false;
};

}  // namespace kwq::devgrid
