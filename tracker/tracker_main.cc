// kwq_tracker: materialises <prefix>.events into a queryable model in RocksDB.
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gflags/gflags.h"
#include "glog/logging.h"
#include "grpc/health/v1/health.pb.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"
#include "server/api/topics.h"
#include "server/auth/security_flags.h"
#include "server/kafka/kafka_cluster.h"
#include "server/kafka/kafka_flags.h"
#include "server/metrics/metrics_http.h"
#include "server/util/grpc_server.h"
#include "server/util/main_prologue.h"
#include "server/util/mutex_mode.h"
#include "tracker/console/console_server.h"
#include "tracker/ingest/event_ingestor.h"
#include "tracker/store/tracker_store.h"
#include "tracker/tracker_metrics.h"
#include "tracker/tracker_service.h"

DEFINE_string(listen, "127.0.0.1:50052",
              "gRPC address to listen on (host:port; port 0 picks a free port, "
              "printed at "
              "start). Loopback by default.");
DEFINE_string(
    kafka, "",
    "'embedded' runs librdkafka's in-process mock cluster (only useful to try "
    "the "
    "binary alone: no scheduler writes there); empty uses --bootstrap_servers");
DEFINE_string(bootstrap_servers, "", "Kafka bootstrap servers (host:port,...)");
DEFINE_string(kafka_config, "", kwq::kKafkaConfigHelp);
DEFINE_string(topic_prefix, "kwq",
              "prefix of the kwq topics; the tracker reads <prefix>.events");
DEFINE_int32(partitions, 4,
             "partitions of <prefix>.events if the tracker has to create it");
DEFINE_string(
    db, "", "RocksDB directory of the tracker's model (created when missing)");
DEFINE_bool(
    rebuild, false,
    "delete the model in --db and replay <prefix>.events from the beginning");
DEFINE_int32(
    block_cache_mb,
    static_cast<int32_t>(kwq::tracker::StoreOptions().block_cache_bytes >> 20),
    "RocksDB block cache (index and filters included)");
DEFINE_int32(
    write_buffer_mb,
    static_cast<int32_t>(kwq::tracker::StoreOptions().write_buffer_bytes >> 20),
    "RocksDB memtable size");
DEFINE_int32(max_write_buffers, kwq::tracker::StoreOptions().max_write_buffers,
             "RocksDB memtables at most (the one written and those being "
             "flushed); memory up to this times --write_buffer_mb");
DEFINE_bool(write_ahead_log, kwq::tracker::StoreOptions().write_ahead_log,
            "RocksDB's write-ahead log: a restart after a crash replays the "
            "log instead of re-reading the unflushed memtables' events from "
            "Kafka (one write() per batch, no fsync)");
DEFINE_string(rocksdb_compaction, "leveled",
              "RocksDB compaction style of the model: leveled or universal "
              "(less rewriting, up to twice the disk during a merge, slower "
              "deep pages); an existing store opens under either");
DEFINE_int32(max_batch_events, 10000,
             "events applied per RocksDB write batch at most");
DEFINE_int32(kafka_wait_ms, 15000,
             "how long to wait for Kafka at start before giving up");
DEFINE_string(http_listen, "",
              "the console (web UI over HTTP, tracker/console/README.md): "
              "host:port, port 0 picks one (printed at start); empty: off. "
              "Plain HTTP: off loopback it needs --insecure (put a TLS proxy "
              "in front); with --identities_file the page asks for a token");
DEFINE_string(metrics_listen, "",
              "serve Prometheus metrics at http://ADDR/metrics (host:port; "
              "port 0 picks a free one; empty: off); non-loopback needs "
              "--insecure (plain HTTP); with identities a scrape needs a "
              "view token (tracker/README.md \"Metrics\")");
DEFINE_string(console_scheduler, "",
              "a scheduler instance (host:port) the console asks for workers, "
              "queues and explanations and sends pause/resume/cancel to (with "
              "the signed-in user's token); empty: the console is read-only");
DEFINE_string(console_scheduler_ca, "",
              "PEM file of the CA of --console_scheduler's TLS certificate; "
              "empty: plaintext");

namespace {

bool ValidateFlags(std::string* error) {
  if (std::string e =
          kwq::CheckKafkaFlags(FLAGS_kafka, FLAGS_bootstrap_servers);
      !e.empty()) {
    *error = e;
  } else if (FLAGS_db.empty()) {
    *error = "give --db=DIR, the RocksDB directory of the tracker's model";
  } else if (FLAGS_partitions < 1 || FLAGS_partitions > 1000) {
    *error = "--partitions must be 1-1000";
  } else if (FLAGS_rocksdb_compaction != "leveled" &&
             FLAGS_rocksdb_compaction != "universal") {
    *error = "--rocksdb_compaction must be leveled or universal";
  } else if (FLAGS_block_cache_mb < 8 || FLAGS_write_buffer_mb < 1 ||
             FLAGS_write_buffer_mb > 4096) {
    *error = "--block_cache_mb must be at least 8 and --write_buffer_mb 1-4096";
  } else if (FLAGS_max_write_buffers < 2 || FLAGS_max_write_buffers > 16) {
    *error = "--max_write_buffers must be 2-16";
  } else if (FLAGS_max_batch_events < 1) {
    *error = "--max_batch_events must be at least 1";
  } else if (FLAGS_topic_prefix.empty()) {
    *error = "--topic_prefix must not be empty";
  } else {
    return true;
  }
  return false;
}
}  // namespace

int main(int argc, char** argv) {
  kwq::InitBinary(

      "kwq_tracker --bootstrap_servers=host:port --db=DIR [flags]\n"
      "Consumes <prefix>.events into a RocksDB model (exact across restarts: "
      "state and "
      "offsets are written together) and serves kwq.v1.Tracker queries over "
      "gRPC.",
      &argc, &argv);
  std::string error;
  if (!ValidateFlags(&error)) {
    std::cerr << "kwq_tracker: " << error << " (see --help)\n";
    return 2;
  }
  auto security = kwq::auth::MakeServerSecurity(
      kwq::auth::ServerSecurityFromFlags(), FLAGS_listen);
  if (!security.ok()) {
    std::cerr << "kwq_tracker: " << security.status().message() << "\n";
    return 2;
  }
  (void)grpc::health::v1::HealthCheckRequest::descriptor();

  auto opened = kwq::OpenKafka(FLAGS_kafka, FLAGS_bootstrap_servers,
                               absl::Milliseconds(FLAGS_kafka_wait_ms),
                               FLAGS_kafka_config);
  if (!opened.ok()) {
    std::cerr << "kwq_tracker: " << opened.status().message() << "\n";
    return 1;
  }
  std::unique_ptr<kwq::KafkaCluster> cluster = std::move(*opened);
  if (cluster->embedded()) {
    LOG(WARNING)
        << "embedded Kafka: nothing but this process can write events there";
  }

  const absl::Time open_start = absl::Now();
  kwq::tracker::StoreOptions store_options;
  store_options.block_cache_bytes = static_cast<size_t>(FLAGS_block_cache_mb)
                                    << 20;
  store_options.write_buffer_bytes = static_cast<size_t>(FLAGS_write_buffer_mb)
                                     << 20;
  store_options.max_write_buffers = FLAGS_max_write_buffers;
  store_options.write_ahead_log = FLAGS_write_ahead_log;
  store_options.universal_compaction = FLAGS_rocksdb_compaction == "universal";
  std::error_code ec;
  std::filesystem::create_directories(FLAGS_db, ec);
  auto store =
      kwq::tracker::TrackerStore::Open(FLAGS_db, store_options, FLAGS_rebuild);
  if (!store.ok()) {
    std::cerr << "kwq_tracker: " << store.status() << "\n";
    return 1;
  }
  LOG(INFO) << "model in " << FLAGS_db << " open in "
            << absl::Now() - open_start << " (" << (*store)->counters().events()
            << " events applied so far"
            << (FLAGS_rebuild ? "; rebuilding from the beginning" : "") << ")";

  kwq::tracker::IngestOptions ingest_options;
  ingest_options.topic = kwq::api::Topics(FLAGS_topic_prefix).Events();
  ingest_options.partitions = FLAGS_partitions;
  ingest_options.max_batch_events = FLAGS_max_batch_events;
  auto ingestor = kwq::tracker::EventIngestor::Start(*cluster, store->get(),
                                                     ingest_options);
  if (!ingestor.ok()) {
    std::cerr << "kwq_tracker: Kafka: " << ingestor.status() << "\n";
    return 1;
  }

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  kwq::tracker::TrackerService service(store->get(), security->authorizer);
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(FLAGS_listen, security->credentials, &port);
  kwq::ApplyServerSettings(builder);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || port == 0) {
    std::cerr << "kwq_tracker: " << kwq::CannotListen(FLAGS_listen) << "\n";
    return 1;
  }
  std::unique_ptr<kwq::tracker::ConsoleServer> console;
  if (!FLAGS_http_listen.empty()) {
    if (!kwq::auth::IsLoopbackAddress(FLAGS_http_listen) &&
        !kwq::auth::ServerSecurityFromFlags().insecure) {
      std::cerr << "kwq_tracker: --http_listen=" << FLAGS_http_listen
                << " is not loopback and the console speaks plain HTTP: put "
                   "a TLS proxy in front and pass --insecure\n";
      return 2;
    }
    kwq::tracker::ConsoleOptions co;
    co.listen = FLAGS_http_listen;
    co.scheduler = FLAGS_console_scheduler;
    co.authorizer = security->authorizer;
    kwq::tracker::DeadLetterReader::Options dlo;
    dlo.topic = kwq::api::Topics(FLAGS_topic_prefix).Dlq();
    if (auto dl = kwq::tracker::DeadLetterReader::Create(*cluster, dlo);
        dl.ok()) {
      co.dead_letters = std::move(*dl);
    } else {
      LOG(WARNING) << "console: no dead letters page: " << dl.status();
    }
    kwq::tracker::ResultReader::Options ro;
    ro.topic = kwq::api::Topics(FLAGS_topic_prefix).Results();
    if (auto rr = kwq::tracker::ResultReader::Create(*cluster, ro); rr.ok()) {
      co.results = std::move(*rr);
    } else {
      LOG(WARNING) << "console: no result previews: " << rr.status();
    }
    if (!FLAGS_console_scheduler_ca.empty()) {
      std::ifstream f(FLAGS_console_scheduler_ca);
      std::stringstream pem;
      pem << f.rdbuf();
      if (!f || pem.str().empty()) {
        std::cerr << "kwq_tracker: cannot read --console_scheduler_ca "
                  << FLAGS_console_scheduler_ca << "\n";
        return 2;
      }
      grpc::SslCredentialsOptions ssl;
      ssl.pem_root_certs = pem.str();
      co.scheduler_credentials = grpc::SslCredentials(ssl);
    }
    auto c = kwq::tracker::ConsoleServer::Start(store->get(), std::move(co));
    if (!c.ok()) {
      std::cerr << "kwq_tracker: " << c.status().message() << "\n";
      return 1;
    }
    console = std::move(*c);
  }
  std::unique_ptr<kwq::metrics::MetricsHttp> metrics;
  if (!FLAGS_metrics_listen.empty()) {
    if (!kwq::auth::IsLoopbackAddress(FLAGS_metrics_listen) &&
        !kwq::auth::ServerSecurityFromFlags().insecure) {
      std::cerr << "kwq_tracker: --metrics_listen=" << FLAGS_metrics_listen
                << " is not loopback and metrics are plain HTTP: pass "
                   "--insecure to serve them there\n";
      return 2;
    }
    auto m = kwq::metrics::MetricsHttp::Start(
        FLAGS_metrics_listen, "tracker",
        {service.metrics(), std::make_shared<kwq::tracker::TrackerMetrics>(
                                store->get(), ingestor->get(), &service)},
        security->authorizer);
    if (!m.ok()) {
      std::cerr << "kwq_tracker: " << m.status().message() << "\n";
      return 1;
    }
    metrics = std::move(*m);
  }
  server->GetHealthCheckService()->SetServingStatus(true);
  const std::string host = FLAGS_listen.substr(0, FLAGS_listen.rfind(':'));
  std::cout << "kwq_tracker listening on " << host << ":" << port << " (kafka "
            << cluster->bootstrap_servers() << ", topic "
            << ingest_options.topic << ", db " << FLAGS_db << "; "
            << security->description
            << (console ? "; console http://" + console->address() : "")
            << (metrics ? absl::StrCat("; metrics http://",
                                       FLAGS_metrics_listen.substr(
                                           0, FLAGS_metrics_listen.rfind(':')),
                                       ":", metrics->port(), "/metrics")
                        : "")
            << ")" << std::endl;

  absl::Notification& stop = kwq::StopOnSignals();
  int exit_code = 0;
  while (!stop.WaitForNotificationWithTimeout(absl::Seconds(1))) {
    if (absl::Status s = (*ingestor)->status(); !s.ok()) {
      std::cerr << "kwq_tracker: ingest stopped: " << s << "\n";
      exit_code = 1;
      break;
    }
  }
  LOG(INFO) << "stopping";
  server->GetHealthCheckService()->SetServingStatus(false);
  console.reset();
  metrics.reset();
  service.Stop();
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  (*ingestor)->Stop();
  LOG(INFO) << "stopped";
  return exit_code;
}
