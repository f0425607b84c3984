#include "server/metrics_exporter.h"

#include <exception>
#include <vector>

#include "absl/strings/str_cat.h"
#include "prometheus/collectable.h"
#include "prometheus/exposer.h"
#include "prometheus/metric_family.h"

namespace kwq::scheduler {

class MetricsExporter::Collector : public prometheus::Collectable {
 public:
  explicit Collector(std::function<MetricsSnapshot()> snapshot)
      : snapshot_(std::move(snapshot)) {}

  std::vector<prometheus::MetricFamily> Collect() const override {
    const MetricsSnapshot s = snapshot_();
    std::vector<prometheus::MetricFamily> out;
    auto add = [&](const std::string& name, const std::string& help,
                   prometheus::MetricType type, double value) {
      prometheus::MetricFamily f{name, help, type, {}};
      prometheus::ClientMetric m;
      if (type == prometheus::MetricType::Counter) {
        m.counter.value = value;
      } else {
        m.gauge.value = value;
      }
      f.metric.push_back(std::move(m));
      out.push_back(std::move(f));
    };
    const auto counter = prometheus::MetricType::Counter;
    const auto gauge = prometheus::MetricType::Gauge;
    const SchedulerMetrics& m = s.core;
    prometheus::MetricFamily depth{
        "kwq_queue_depth",
        "Tasks buffered here per priority (queued, waiting for a "
        "retry backoff, or parked by a paused job)",
        gauge,
        {}};
    for (int p = 0; p < 10; ++p) {
      prometheus::ClientMetric cm;
      cm.label.push_back({"priority", absl::StrCat(p)});
      cm.gauge.value = static_cast<double>(s.queued[static_cast<size_t>(p)]);
      depth.metric.push_back(std::move(cm));
    }
    out.push_back(std::move(depth));
    add("kwq_in_flight_tasks", "Tasks assigned to workers (leases)", gauge,
        static_cast<double>(s.in_flight));
    add("kwq_connected_workers", "Worker streams connected", gauge,
        static_cast<double>(s.workers));
    add("kwq_unrunnable_tasks",
        "Queued tasks no connected worker has the labels for", gauge,
        static_cast<double>(m.unrunnable));
    add("kwq_records_received_total", "Task records consumed", counter,
        static_cast<double>(m.records_received));
    add("kwq_tasks_dispatched_total", "Assignments sent to workers", counter,
        static_cast<double>(m.dispatched));
    add("kwq_tasks_completed_total", "Completions made durable", counter,
        static_cast<double>(m.completed));
    add("kwq_task_errors_total", "Attempts ended by a task error", counter,
        static_cast<double>(m.task_errors));
    add("kwq_infra_failures_total", "Attempts ended by a lost worker or lease",
        counter, static_cast<double>(m.infra_failures));
    add("kwq_retries_total", "Tasks re-queued for another attempt", counter,
        static_cast<double>(m.retries));
    add("kwq_dead_lettered_total", "Tasks sent to the dead-letter topic",
        counter, static_cast<double>(m.dead_lettered));
    add("kwq_bad_records_total", "Records that were not valid tasks", counter,
        static_cast<double>(m.bad_records));
    add("kwq_stale_updates_total", "Worker updates refused for a stale lease",
        counter, static_cast<double>(m.stale_updates));
    add("kwq_adopted_total",
        "Running tasks of reconnected workers adopted instead of re-run",
        counter, static_cast<double>(m.adopted));
    add("kwq_adoption_expired_total",
        "Adoption claims whose record never came here (worker told to cancel)",
        counter, static_cast<double>(m.adoption_expired));
    add("kwq_priority_inversions_total",
        "Lower-priority dispatches while a higher one "
        "could run (must stay 0)",
        counter, static_cast<double>(m.priority_inversions));
    add("kwq_affinity_hits_total",
        "Dispatches to a worker holding the task's key", counter,
        static_cast<double>(m.affinity_hits));
    add("kwq_affinity_misses_total",
        "Dispatches of keyed tasks to other workers", counter,
        static_cast<double>(m.affinity_misses));
    add("kwq_cancelled_total", "Tasks ended CANCELLED", counter,
        static_cast<double>(m.cancelled));
    add("kwq_timeouts_total", "Attempts cancelled past their timeout", counter,
        static_cast<double>(m.timeouts));
    add("kwq_redelivered_records_total",
        "Records received again after a rewind", counter,
        static_cast<double>(m.redelivered_records));
    add("kwq_skipped_decided_total",
        "Records skipped as decided by the commit metadata", counter,
        static_cast<double>(m.skipped_decided));
    add("kwq_durable_failures_total", "Produces Kafka did not acknowledge",
        counter, static_cast<double>(m.durable_failures));
    add("kwq_commit_errors_total", "Offset commits that failed", counter,
        static_cast<double>(s.commit_errors));
    return out;
  }

 private:
  std::function<MetricsSnapshot()> snapshot_;
};

absl::StatusOr<std::unique_ptr<MetricsExporter>> MetricsExporter::Start(
    const std::string& listen, std::function<MetricsSnapshot()> snapshot) {
  std::unique_ptr<MetricsExporter> e(new MetricsExporter());
  try {
    e->exposer_ = std::make_unique<prometheus::Exposer>(listen, 1);
  } catch (const std::exception& ex) {
    return absl::UnavailableError(
        absl::StrCat("metrics on ", listen, ": ", ex.what()));
  }
  e->collector_ = std::make_shared<Collector>(std::move(snapshot));
  e->exposer_->RegisterCollectable(e->collector_);
  const auto ports = e->exposer_->GetListeningPorts();
  e->port_ = ports.empty() ? 0 : ports.front();
  return e;
}

MetricsExporter::~MetricsExporter() = default;

}  // namespace kwq::scheduler
