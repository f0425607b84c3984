#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "server/kafka/kafka_cluster.h"
#include "tools/devgrid/in_process_scheduler.h"
#include "tools/devgrid/in_process_tracker.h"
#include "tracker/console/console_server.h"

namespace kwq::devgrid {

struct GridOptions {
  // Empty: librdkafka's in-process mock cluster (nothing kept on disk).
  std::string bootstrap_servers;
  // A librdkafka properties file for every client (TLS, SASL); real Kafka only.
  std::string kafka_config;
  std::string scheduler_listen = "127.0.0.1:0";
  std::string tracker_listen = "127.0.0.1:0";
  // The web console (tracker/console) over the tracker's model, with the
  // scheduler for workers, queues and pause/resume/cancel; empty: none.
  std::string console_listen;
  std::string topic_prefix = "kwq";
  int partitions = 4;
  // Delete the topic_prefix's topics at Shutdown (a throwaway grid on a shared
  // broker, e.g. `kwqctl simulate`).
  bool delete_topics_at_shutdown = false;
  scheduler::ServiceOptions
      scheduler;  // topic prefix and partitions are set from above
};

// A whole grid in one process: Kafka (embedded or real), a scheduler and a
// tracker (its RocksDB model in a temp dir removed at the end). What `kwqctl
// dev` and `kwqctl simulate` run.
class DevGrid {
 public:
  static absl::StatusOr<std::unique_ptr<DevGrid>> Start(GridOptions options);
  ~DevGrid();
  KafkaCluster& cluster() { return *cluster_; }
  InProcessScheduler& scheduler() { return *scheduler_; }
  InProcessTracker& tracker() { return *tracker_; }
  // "host:port" of the console, or empty when it is off.
  std::string console_address() const {
    return console_ ? console_->address() : std::string();
  }
  bool embedded() const { return cluster_->embedded(); }
  void Shutdown(absl::Duration grace);

 private:
  DevGrid() = default;
  std::unique_ptr<KafkaCluster> cluster_;
  std::unique_ptr<InProcessScheduler> scheduler_;
  std::unique_ptr<InProcessTracker> tracker_;
  std::unique_ptr<tracker::ConsoleServer> console_;
  std::string db_dir_;
  std::string delete_prefix_;  // empty: keep the topics
};

}  // namespace kwq::devgrid
