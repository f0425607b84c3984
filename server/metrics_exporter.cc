#include "server/metrics_exporter.h"

#include <exception>
#include <functional>
#include <limits>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"
#include "server/metrics/families.h"

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
      out.push_back(metrics::SingleValue(name, help, type, value));
    };
    const auto counter = prometheus::MetricType::Counter;
    const auto gauge = prometheus::MetricType::Gauge;
    const SchedulerMetrics& m = s.core;
    // A gauge with one sample per priority, labelled priority="0".."9".
    auto per_priority = [&](const std::string& name, const std::string& help,
                            const std::function<double(size_t)>& value) {
      prometheus::MetricFamily f{name, help, gauge, {}};
      for (size_t p = 0; p < api::kNumPriorities; ++p) {
        prometheus::ClientMetric cm;
        cm.label.push_back({"priority", absl::StrCat(p)});
        cm.gauge.value = value(p);
        f.metric.push_back(std::move(cm));
      }
      out.push_back(std::move(f));
    };
    per_priority("kwq_queue_depth",
                 "Tasks buffered here per priority (queued or waiting for a "
                 "retry backoff; paused jobs' tasks are in kwq_parked_tasks)",
                 [&](size_t p) { return static_cast<double>(s.queued[p]); });
    per_priority(
        "kwq_oldest_queued_task_age_seconds",
        "Per priority, seconds since the submit of the oldest task queued here "
        "(0: none)",
        [&](size_t p) { return m.oldest_queued_seconds[p]; });
    // A cumulative histogram over SchedulerMetrics::kStartLatencyBounds.
    auto histogram = [&](const std::string& name, const std::string& help,
                         const std::array<int64_t, 14>& buckets, int64_t count,
                         double sum) {
      prometheus::MetricFamily h{
          name, help, prometheus::MetricType::Histogram, {}};
      prometheus::ClientMetric cm;
      cm.histogram.sample_count = static_cast<std::uint64_t>(count);
      cm.histogram.sample_sum = sum;
      for (size_t b = 0; b < SchedulerMetrics::kStartLatencyBounds.size();
           ++b) {
        prometheus::ClientMetric::Bucket bucket;
        bucket.upper_bound = SchedulerMetrics::kStartLatencyBounds[b];
        bucket.cumulative_count = static_cast<std::uint64_t>(buckets[b]);
        cm.histogram.bucket.push_back(bucket);
      }
      prometheus::ClientMetric::Bucket inf;
      inf.upper_bound = std::numeric_limits<double>::infinity();
      inf.cumulative_count = static_cast<std::uint64_t>(count);
      cm.histogram.bucket.push_back(inf);
      h.metric.push_back(std::move(cm));
      out.push_back(std::move(h));
    };
    histogram("kwq_submit_to_start_seconds",
              "First attempts: submit time to the worker's first RUNNING",
              m.start_latency_buckets, m.start_latency_count,
              m.start_latency_sum_seconds);
    histogram("kwq_task_run_seconds",
              "Completed attempts: the worker's RUNNING to the completion "
              "made durable",
              m.run_time_buckets, m.run_time_count, m.run_time_sum_seconds);
    {
      // How attempts ended, one counter with an outcome label (the same
      // counts as the kwq_tasks_completed_total, kwq_task_errors_total,
      // kwq_infra_failures_total, kwq_timeouts_total, kwq_cancelled_total and
      // kwq_dead_lettered_total names, kept).
      prometheus::MetricFamily f{"kwq_task_outcomes_total",
                                 "Attempts or tasks ended, by outcome",
                                 counter,
                                 {}};
      for (const auto& [outcome, value] :
           std::vector<std::pair<std::string, int64_t>>{
               {"completed", m.completed},
               {"error", m.task_errors},
               {"infra_failure", m.infra_failures},
               {"timeout", m.timeouts},
               {"cancelled", m.cancelled},
               {"dead_lettered", m.dead_lettered}}) {
        prometheus::ClientMetric cm;
        cm.label.push_back({"outcome", outcome});
        cm.counter.value = static_cast<double>(value);
        f.metric.push_back(std::move(cm));
      }
      out.push_back(std::move(f));
    }
    add("kwq_parked_tasks",
        "Tasks of paused jobs held in memory (the rest are in <prefix>.parked)",
        gauge, static_cast<double>(m.parked_in_memory));
    add("kwq_parked_to_kafka_total",
        "Tasks of paused jobs written to the parked topic", counter,
        static_cast<double>(m.parked_to_kafka));
    add("kwq_events_folded_total",
        "Stage events written inside a later event of the same attempt "
        "(--event_fold_ms)",
        counter, static_cast<double>(m.events_folded));
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
    add("kwq_bad_control_records_total",
        "Control-topic records ignored (unknown key, or a value that is not a "
        "ControlRecord matching its key)",
        counter, static_cast<double>(m.bad_control_records));
    add("kwq_stale_updates_total", "Worker updates refused for a stale lease",
        counter, static_cast<double>(m.stale_updates));
    add("kwq_adopted_total",
        "Running tasks of reconnected workers adopted instead of re-run",
        counter, static_cast<double>(m.adopted));
    add("kwq_adoption_expired_total",
        "Adoption claims whose record never came here (worker told to cancel)",
        counter, static_cast<double>(m.adoption_expired));
    add("kwq_heartbeats_total", "Heartbeat messages received from workers",
        counter, static_cast<double>(m.heartbeats));
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
    add("kwq_records_never_read_total",
        "Task records the broker deleted (retention) before they were "
        "decided: their tasks are lost",
        counter, static_cast<double>(m.records_never_read));
    add("kwq_durable_failures_total", "Produces Kafka did not acknowledge",
        counter, static_cast<double>(m.durable_failures));
    add("kwq_commit_errors_total", "Offset commits that failed", counter,
        static_cast<double>(s.commit_errors));
    if (s.consumer_lag >= 0) {
      add("kwq_consumer_lag_records",
          "Records in this instance's priority partitions past the group's "
          "committed offsets: tasks not decided yet (in Kafka, buffered here "
          "or running); refreshed every 2 s",
          gauge, static_cast<double>(s.consumer_lag));
    }
    return out;
  }

 private:
  std::function<MetricsSnapshot()> snapshot_;
};

absl::StatusOr<std::unique_ptr<MetricsExporter>> MetricsExporter::Start(
    const std::string& listen, std::function<MetricsSnapshot()> snapshot,
    std::shared_ptr<auth::Authorizer> authorizer) {
  std::unique_ptr<MetricsExporter> e(new MetricsExporter());
  auto http = metrics::MetricsHttp::Start(
      listen, "scheduler", {std::make_shared<Collector>(std::move(snapshot))},
      std::move(authorizer));
  if (!http.ok()) return http.status();
  e->http_ = std::move(*http);
  e->port_ = e->http_->port();
  return e;
}

MetricsExporter::~MetricsExporter() = default;

}  // namespace kwq::scheduler
