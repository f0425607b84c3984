// kwq_scheduler: dispatches tasks from the per-priority Kafka topics to worker
// streams.
#include <csignal>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gflags/gflags.h"
#include "glog/logging.h"
#include "grpc/health/v1/health.pb.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"
#include "server/api/limits.h"
#include "server/auth/security_flags.h"
#include "server/kafka/kafka_cluster.h"
#include "server/kafka/kafka_flags.h"
#include "server/kafka/scheduler_backend.h"
#include "server/metrics_exporter.h"
#include "server/scheduler_service.h"
#include "server/util/grpc_server.h"
#include "server/util/main_prologue.h"
#include "server/util/mutex_mode.h"

DEFINE_string(listen, "127.0.0.1:50051",
              "gRPC address to listen on (host:port; port 0 picks a free port, "
              "printed at "
              "start). Loopback by default.");
DEFINE_string(
    kafka, "",
    "'embedded' runs librdkafka's in-process mock cluster (nothing is kept on "
    "disk); empty uses --bootstrap_servers");
DEFINE_string(bootstrap_servers, "", "Kafka bootstrap servers (host:port,...)");
DEFINE_string(kafka_config, "", kwq::kKafkaConfigHelp);
DEFINE_string(topic_prefix, "kwq",
              "prefix of every kwq topic (<prefix>.tasks.p0 ...)");
DEFINE_int32(partitions, 4, "partitions per topic when kwq creates its topics");
DEFINE_string(
    scheduler_id, "",
    "id of this instance in events, lease ids and (with --static_membership) "
    "the consumer group: letters, digits, '.', '_', '-', at most 200 "
    "(default: host-pid). Each instance needs its own; give a stable one "
    "(e.g. the host or pod name) so that a restart keeps its partitions");
DEFINE_bool(
    static_membership, true,
    "join the consumer group as a static member named by "
    "--scheduler_id (group.instance.id): when every session times out "
    "at once (the group coordinator's broker stalled or died) each "
    "instance gets its own partitions back, so decisions it could not "
    "commit do not run again elsewhere. Costs: a stopped instance's "
    "partitions move one session timeout later (no LeaveGroup), and of two "
    "instances with the same id one exits (status 3) within a minute");
DEFINE_int32(lease_period_ms, 10000,
             "a lease expires this long after its worker's last heartbeat");
DEFINE_int32(heartbeat_period_ms, 2000,
             "how often workers are asked to heartbeat");
DEFINE_int32(max_task_errors, 3,
             "task errors allowed per task before it FAILs");
DEFINE_int32(
    max_infra_failures, 3,
    "infrastructure losses (worker died, lease expired) allowed per task");
DEFINE_int32(retry_backoff_ms, 100,
             "base retry backoff; doubles per retry, with jitter");
DEFINE_int32(max_buffered_per_priority, 2000,
             "tasks buffered per priority before its partitions are paused");
DEFINE_int64(max_record_bytes, 0,
             "largest Kafka record kwq writes; 0: the client's "
             "message.max.bytes from --kafka_config, else 1000000 "
             "(librdkafka's default). Keep it at or below the topics' "
             "max.message.bytes");
DEFINE_int64(max_payload_bytes, 0,
             "largest task payload Submit accepts; 0: --max_record_bytes "
             "minus 64 KiB for the task's other fields (the most a record "
             "can carry)");
DEFINE_int64(max_result_bytes, 0,
             "largest result a worker may return; 0: as --max_payload_bytes");
DEFINE_int32(release_partitions_after_ms, 5000,
             "an instance with no connected worker for this long leaves the "
             "consumer group, so that its partitions go to instances that have "
             "workers (it joins when a worker connects, and starts out of the "
             "group until one does); 0: always take a share");
DEFINE_string(
    lease_key_file, "",
    "file holding the key (16-1024 bytes) lease ids are signed with, "
    "the same for every instance of the group; empty: the first "
    "instance writes a random key to <prefix>.control and all use it");
DEFINE_int64(
    dedup_window_ids, 1000000,
    "client-given task ids remembered per instance to make a retried Submit "
    "idempotent");
DEFINE_int32(
    affinity_wait_ms, 20,
    "soft affinity: how long a task with affinity keys waits for a free worker "
    "holding one of them before any worker may take it (0: never wait)");
DEFINE_int32(
    adoption_wait_ms, 30000,
    "reconnect adoption: how long a reconnected worker's running task whose "
    "record this instance does not hold yet (a failed instance's partitions "
    "come here after the group notices) is kept for adoption before the "
    "worker is told to cancel it");
DEFINE_int32(
    event_fold_ms, 20,
    "status events: an attempt's ALLOCATED event waits this long; a RUNNING "
    "or COMPLETED that comes meanwhile is written as one event carrying the "
    "earlier stage times (fewer events for short tasks; the tracker shows "
    "ALLOCATED up to this much later). 0: one event per stage at once");
DEFINE_string(
    metrics_listen, "",
    "serve Prometheus metrics at http://ADDR/metrics (host:port; port 0 picks "
    "a free port, printed at start); empty: off");
DEFINE_int32(kafka_wait_ms, 15000,
             "how long to wait for Kafka at start before giving up");
DEFINE_int32(
    drain_grace_ms, 10000,
    "on SIGTERM, how long in-flight tasks may run before they are handed back");

namespace {

bool ValidateFlags(std::string* error) {
  if (std::string e =
          kwq::CheckKafkaFlags(FLAGS_kafka, FLAGS_bootstrap_servers);
      !e.empty()) {
    *error = e;
  } else if (FLAGS_partitions < 1 || FLAGS_partitions > 1000) {
    *error = "--partitions must be 1-1000";
  } else if (FLAGS_lease_period_ms < 100 || FLAGS_heartbeat_period_ms < 10 ||
             FLAGS_heartbeat_period_ms >= FLAGS_lease_period_ms) {
    *error =
        "need --lease_period_ms >= 100 and 10 <= --heartbeat_period_ms < lease";
  } else if (FLAGS_max_task_errors < 1 || FLAGS_max_infra_failures < 1) {
    *error = "--max_task_errors and --max_infra_failures must be at least 1";
  } else if (FLAGS_max_buffered_per_priority < 2) {
    *error = "--max_buffered_per_priority must be at least 2";
  } else if (FLAGS_max_record_bytes < 0 ||
             (FLAGS_max_record_bytes > 0 &&
              FLAGS_max_record_bytes < 2 * 64 * 1024)) {
    *error = "--max_record_bytes must be 0 (derived) or at least 131072";
  } else if (FLAGS_max_payload_bytes < 0 || FLAGS_max_result_bytes < 0) {
    *error = "--max_payload_bytes and --max_result_bytes must not be negative";
  } else if (FLAGS_affinity_wait_ms < 0) {
    *error = "--affinity_wait_ms must not be negative";
  } else if (FLAGS_release_partitions_after_ms < 0) {
    *error = "--release_partitions_after_ms must not be negative";
  } else if (FLAGS_adoption_wait_ms < 0) {
    *error = "--adoption_wait_ms must not be negative";
  } else if (FLAGS_event_fold_ms < 0 || FLAGS_event_fold_ms > 10000) {
    *error = "--event_fold_ms must be 0-10000";
  } else if (!FLAGS_scheduler_id.empty() &&
             (FLAGS_scheduler_id.size() > 200 ||
              FLAGS_scheduler_id.find_first_not_of(
                  "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                  "0123456789._-") != std::string::npos)) {
    *error =
        "--scheduler_id may hold letters, digits, '.', '_' and '-' (at most "
        "200)";
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

      "kwq_scheduler --kafka=embedded | --bootstrap_servers=host:port [flags]\n"
      "Dispatches tasks from the Kafka priority topics <prefix>.tasks.p0..p9 "
      "(higher "
      "first) to workers connected over gRPC (kwq.v1.Scheduler).",
      &argc, &argv);
  std::string error;
  if (!ValidateFlags(&error)) {
    std::cerr << "kwq_scheduler: " << error << " (see --help)\n";
    return 2;
  }
  // Keep the health proto linked so that reflection can describe
  // grpc.health.v1.
  (void)grpc::health::v1::HealthCheckRequest::descriptor();

  auto opened = kwq::OpenKafka(FLAGS_kafka, FLAGS_bootstrap_servers,
                               absl::Milliseconds(FLAGS_kafka_wait_ms),
                               FLAGS_kafka_config);
  if (!opened.ok()) {
    std::cerr << "kwq_scheduler: " << opened.status().message() << "\n";
    return 1;
  }
  std::unique_ptr<kwq::KafkaCluster> cluster = std::move(*opened);
  if (cluster->embedded()) {
    std::cout << "embedded kafka: " << cluster->bootstrap_servers()
              << std::endl;
  }
  const std::string bootstrap = cluster->bootstrap_servers();

  kwq::scheduler::ServiceOptions options;
  options.core.scheduler_id = FLAGS_scheduler_id;
  if (options.core.scheduler_id.empty()) {
    char host[256] = {0};
    gethostname(host, sizeof(host) - 1);
    options.core.scheduler_id = absl::StrCat(host, "-", getpid());
  }
  options.core.topic_prefix = FLAGS_topic_prefix;
  options.core.lease_period = absl::Milliseconds(FLAGS_lease_period_ms);
  options.core.heartbeat_period = absl::Milliseconds(FLAGS_heartbeat_period_ms);
  options.core.max_task_errors = FLAGS_max_task_errors;
  options.core.max_infra_failures = FLAGS_max_infra_failures;
  options.core.retry_backoff_base = absl::Milliseconds(FLAGS_retry_backoff_ms);
  options.core.max_buffered_per_priority = FLAGS_max_buffered_per_priority;
  // Whatever kwq accepts it can store: payloads and results fit in a record.
  size_t record = static_cast<size_t>(FLAGS_max_record_bytes);
  if (record == 0) {
    const auto config = cluster->ClientConfig();
    auto it = config.find("message.max.bytes");
    int64_t configured = 0;
    record = it != config.end() && absl::SimpleAtoi(it->second, &configured) &&
                     configured > 0
                 ? static_cast<size_t>(configured)
                 : kwq::api::kDefaultMaxRecordBytes;
  }
  const size_t room = record - kwq::api::kRecordOverheadBytes;
  const size_t payload = FLAGS_max_payload_bytes > 0
                             ? static_cast<size_t>(FLAGS_max_payload_bytes)
                             : room;
  const size_t result = FLAGS_max_result_bytes > 0
                            ? static_cast<size_t>(FLAGS_max_result_bytes)
                            : room;
  if (payload > room || result > room) {
    std::cerr << "kwq_scheduler: --max_payload_bytes and --max_result_bytes "
                 "must be at most "
              << room << " (--max_record_bytes " << record
              << " minus 64 KiB for a task's other fields): larger ones could "
                 "not be stored in Kafka\n";
    return 2;
  }
  options.core.max_record_bytes = record;
  options.core.max_result_bytes = result;
  if (!FLAGS_lease_key_file.empty()) {
    std::ifstream in(FLAGS_lease_key_file, std::ios::binary);
    std::stringstream key;
    key << in.rdbuf();
    if (!in || key.str().size() < 16 || key.str().size() > 1024) {
      std::cerr << "kwq_scheduler: --lease_key_file=" << FLAGS_lease_key_file
                << " must be a readable file of 16-1024 bytes\n";
      return 2;
    }
    options.core.lease_key = key.str();
  }
  options.core.affinity_wait = absl::Milliseconds(FLAGS_affinity_wait_ms);
  options.core.adoption_wait = absl::Milliseconds(FLAGS_adoption_wait_ms);
  options.core.event_fold_window = absl::Milliseconds(FLAGS_event_fold_ms);
  options.limits.max_payload_bytes = payload;
  options.partitions = FLAGS_partitions;
  options.dedup_window_ids = static_cast<size_t>(FLAGS_dedup_window_ids);
  options.release_partitions_after =
      absl::Milliseconds(FLAGS_release_partitions_after_ms);

  const kwq::auth::ServerSecurityOptions security_options =
      kwq::auth::ServerSecurityFromFlags();
  auto security = kwq::auth::MakeServerSecurity(security_options, FLAGS_listen);
  if (!security.ok()) {
    std::cerr << "kwq_scheduler: " << security.status().message() << "\n";
    return 2;
  }
  options.authorizer = security->authorizer;
  if (!FLAGS_metrics_listen.empty() &&
      !kwq::auth::IsLoopbackAddress(FLAGS_metrics_listen) &&
      security->authorizer->open() && !security_options.insecure) {
    std::cerr << "kwq_scheduler: --metrics_listen=" << FLAGS_metrics_listen
              << " is not loopback and no --identities_file asks scrapers "
                 "for a token: give one (scrapes then need a view token as "
                 "the basic-auth password) or --insecure\n";
    return 2;
  }

  // gRPC first (health NOT_SERVING) so that probes see us while Kafka is
  // awaited.
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  std::unique_ptr<kwq::scheduler::SchedulerService> service;
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(FLAGS_listen, security->credentials, &port);
  kwq::ApplyServerSettings(builder);
  std::unique_ptr<kwq::SchedulerBackend> backend = kwq::MakeKafkaBackend(
      cluster.get(),
      {FLAGS_static_membership ? options.core.scheduler_id : ""});
  service = std::make_unique<kwq::scheduler::SchedulerService>(options,
                                                               backend.get());
  builder.RegisterService(service.get());
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || port == 0) {
    std::cerr << "kwq_scheduler: " << kwq::CannotListen(FLAGS_listen) << "\n";
    return 1;
  }
  server->GetHealthCheckService()->SetServingStatus(false);
  if (absl::Status s = service->Start(); !s.ok()) {
    std::cerr << "kwq_scheduler: Kafka: " << s << "\n";
    server->Shutdown(std::chrono::system_clock::now() +
                     std::chrono::seconds(1));
    return 1;
  }
  server->GetHealthCheckService()->SetServingStatus(true);
  std::unique_ptr<kwq::scheduler::MetricsExporter> metrics;
  std::string metrics_note;
  if (!FLAGS_metrics_listen.empty()) {
    auto m = kwq::scheduler::MetricsExporter::Start(
        FLAGS_metrics_listen, [&service] { return service->Snapshot(); },
        security->authorizer);
    if (!m.ok()) {
      std::cerr << "kwq_scheduler: " << m.status().message() << "\n";
      server->Shutdown(std::chrono::system_clock::now() +
                       std::chrono::seconds(1));
      return 1;
    }
    metrics = std::move(*m);
    metrics_note = absl::StrCat(
        ", metrics http://",
        FLAGS_metrics_listen.substr(0, FLAGS_metrics_listen.rfind(':')), ":",
        metrics->port(), "/metrics");
  }
  const std::string host = FLAGS_listen.substr(0, FLAGS_listen.rfind(':'));
  std::cout << "kwq_scheduler " << options.core.scheduler_id << " listening on "
            << host << ":" << port << " (kafka " << bootstrap << ", prefix "
            << FLAGS_topic_prefix << metrics_note << "; "
            << security->description << ")" << std::endl;

  absl::Notification& stop = kwq::StopOnSignals();
  stop.WaitForNotification();
  LOG(INFO) << "signal received: draining";
  server->GetHealthCheckService()->SetServingStatus(false);
  service->Drain(absl::Milliseconds(FLAGS_drain_grace_ms));
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  LOG(INFO) << "stopped";
  return 0;
}
