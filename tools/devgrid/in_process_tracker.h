#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "grpcpp/grpcpp.h"
#include "server/auth/server_security.h"
#include "server/kafka/kafka_cluster.h"
#include "tracker/ingest/event_ingestor.h"
#include "tracker/store/tracker_store.h"
#include "tracker/tracker_service.h"

namespace kwq::devgrid {

// A tracker (RocksDB model in `db_dir`, ingest of <prefix>.events,
// kwq.v1.Tracker on a loopback port chosen by the OS) inside this process: the
// dev grid's and the tests'.
class InProcessTracker {
 public:
  static absl::StatusOr<std::unique_ptr<InProcessTracker>> Start(
      const KafkaCluster& cluster, const std::string& topic_prefix,
      const std::string& db_dir, int partitions = 4,
      const std::string& listen = "127.0.0.1:0",
      const auth::ServerSecurity* security = nullptr);  // null: open
  ~InProcessTracker();
  const std::string& address() const { return address_; }
  tracker::TrackerStore& store() { return *store_; }
  tracker::EventIngestor& ingestor() { return *ingestor_; }

 private:
  InProcessTracker() = default;
  std::unique_ptr<tracker::TrackerStore> store_;
  std::unique_ptr<tracker::EventIngestor> ingestor_;
  std::unique_ptr<tracker::TrackerService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::string address_;
};

}  // namespace kwq::devgrid
