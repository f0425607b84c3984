#include "tools/devgrid/dev_grid.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"
#include "server/api/topics.h"
#include "server/kafka/kafka_flags.h"

namespace kwq::devgrid {

absl::StatusOr<std::unique_ptr<DevGrid>> DevGrid::Start(GridOptions options) {
  std::unique_ptr<DevGrid> g(new DevGrid());
  auto c = OpenKafka(options.bootstrap_servers.empty() ? "embedded" : "",
                     options.bootstrap_servers, absl::Seconds(15),
                     options.kafka_config);
  if (!c.ok()) return c.status();
  g->cluster_ = std::move(*c);
  options.scheduler.core.topic_prefix = options.topic_prefix;
  if (options.scheduler.core.scheduler_id == "sched") {
    options.scheduler.core.scheduler_id = absl::StrCat("dev-", getpid());
  }
  options.scheduler.partitions = options.partitions;
  auto s = InProcessScheduler::Start(g->cluster_.get(), options.scheduler,
                                     options.scheduler_listen);
  if (!s.ok()) return s.status();
  g->scheduler_ = std::move(*s);
  const char* tmp = std::getenv("TMPDIR");
  g->db_dir_ = absl::StrCat(tmp ? tmp : "/tmp", "/kwq-dev-tracker-", getpid(),
                            "-", options.topic_prefix);
  std::filesystem::remove_all(g->db_dir_);
  std::filesystem::create_directories(g->db_dir_);
  auto t =
      InProcessTracker::Start(*g->cluster_, options.topic_prefix, g->db_dir_,
                              options.partitions, options.tracker_listen);
  if (!t.ok()) return t.status();
  g->tracker_ = std::move(*t);
  if (!options.console_listen.empty()) {
    tracker::ConsoleOptions co;
    co.listen = options.console_listen;
    co.scheduler = g->scheduler_->address();
    tracker::DeadLetterReader::Options dlo;
    dlo.topic = api::Topics(options.topic_prefix).Dlq();
    auto dl = tracker::DeadLetterReader::Create(*g->cluster_, dlo);
    if (!dl.ok()) return dl.status();
    co.dead_letters = std::move(*dl);
    tracker::ResultReader::Options ro;
    ro.topic = api::Topics(options.topic_prefix).Results();
    auto rr = tracker::ResultReader::Create(*g->cluster_, ro);
    if (!rr.ok()) return rr.status();
    co.results = std::move(*rr);
    auto console = tracker::ConsoleServer::Start(&g->tracker_->store(), co);
    if (!console.ok()) return console.status();
    g->console_ = std::move(*console);
  }
  if (options.delete_topics_at_shutdown && !g->cluster_->embedded()) {
    g->delete_prefix_ = options.topic_prefix + ".";
  }
  return g;
}

void DevGrid::Shutdown(absl::Duration grace) {
  if (scheduler_) scheduler_->Shutdown(grace);
}

DevGrid::~DevGrid() {
  console_.reset();
  tracker_.reset();
  scheduler_.reset();
  if (cluster_ && !delete_prefix_.empty()) {
    auto deleted =
        cluster_->DeleteTopicsWithPrefix(delete_prefix_, absl::Seconds(10));
    if (!deleted.ok()) {
      LOG(WARNING) << "could not delete the topics " << delete_prefix_
                   << "*: " << deleted.status();
    }
  }
  cluster_.reset();
  if (!db_dir_.empty()) std::filesystem::remove_all(db_dir_);
}

}  // namespace kwq::devgrid
