#include "tools/devgrid/in_process_tracker.h"

#include "absl/strings/str_cat.h"
#include "server/api/topics.h"
#include "server/util/grpc_server.h"

namespace kwq::devgrid {

absl::StatusOr<std::unique_ptr<InProcessTracker>> InProcessTracker::Start(
    const KafkaCluster& cluster, const std::string& topic_prefix,
    const std::string& db_dir, int partitions, const std::string& listen,
    const auth::ServerSecurity* security) {
  std::unique_ptr<InProcessTracker> t(new InProcessTracker());
  auto store = tracker::TrackerStore::Open(db_dir, tracker::StoreOptions(),
                                           /*wipe=*/true);
  if (!store.ok()) return store.status();
  t->store_ = std::move(*store);
  tracker::IngestOptions io;
  io.topic = api::Topics(topic_prefix).Events();
  io.partitions = partitions;
  auto ingestor = tracker::EventIngestor::Start(cluster, t->store_.get(), io);
  if (!ingestor.ok()) return ingestor.status();
  t->ingestor_ = std::move(*ingestor);
  t->service_ = std::make_unique<tracker::TrackerService>(
      t->store_.get(), security ? security->authorizer : nullptr);
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(
      listen,
      security ? security->credentials : grpc::InsecureServerCredentials(),
      &port);
  ApplyServerSettings(builder);
  builder.RegisterService(t->service_.get());
  t->server_ = builder.BuildAndStart();
  if (!t->server_ || port == 0) {
    return absl::UnavailableError(CannotListen(listen));
  }
  t->address_ = absl::StrCat(listen.substr(0, listen.rfind(':')), ":", port);
  return t;
}

InProcessTracker::~InProcessTracker() {
  if (service_) service_->Stop();
  if (server_)
    server_->Shutdown(std::chrono::system_clock::now() +
                      std::chrono::seconds(2));
  if (ingestor_) ingestor_->Stop();
}

}  // namespace kwq::devgrid
