#include "tracker/tracker_metrics.h"

#include <string>
#include <utility>

#include "server/metrics/families.h"

namespace kwq::tracker {
namespace {

void Add(std::vector<prometheus::MetricFamily>* out, const std::string& name,
         const std::string& help, prometheus::MetricType type, double value) {
  out->push_back(metrics::SingleValue(name, help, type, value));
}

}  // namespace

std::vector<prometheus::MetricFamily> TrackerMetrics::Collect() const {
  std::vector<prometheus::MetricFamily> out;
  const auto counter = prometheus::MetricType::Counter;
  const auto gauge = prometheus::MetricType::Gauge;
  const internal::IngestCounters c = store_->counters();
  {
    prometheus::MetricFamily f{
        "kwq_tracker_events_total",
        "Events read from the events topic, by what they did to the model "
        "(applied: changed it; duplicate: a repeat; stale: older than what it "
        "knew; conflict: contradicted it; unparsable: not an event)",
        counter,
        {}};
    for (const auto& [result, value] :
         std::vector<std::pair<std::string, int64_t>>{
             {"applied", c.applied()},
             {"duplicate", c.duplicates()},
             {"stale", c.stale()},
             {"conflict", c.conflicts()},
             {"unparsable", c.unparsable()}}) {
      prometheus::ClientMetric m;
      m.label.push_back({"result", result});
      m.counter.value = static_cast<double>(value);
      f.metric.push_back(std::move(m));
    }
    out.push_back(std::move(f));
  }
  Add(&out, "kwq_tracker_events_ingested_total",
      "Events read from the events topic (all results)", counter,
      static_cast<double>(c.events()));
  Add(&out, "kwq_tracker_completed_total", "COMPLETED tasks in the model",
      counter, static_cast<double>(c.completed()));
  Add(&out, "kwq_tracker_ingest_lag_records",
      "Events in the topic not applied yet (refreshed every 200 ms)", gauge,
      static_cast<double>(ingestor_->lag()));
  Add(&out, "kwq_tracker_ingest_lag_seconds",
      "Age of the newest applied event while behind (0 when caught up)", gauge,
      ingestor_->lag_seconds());
  Add(&out, "kwq_tracker_view_current",
      "1 when the model has applied the topic up to its end offsets", gauge,
      store_->view_current() ? 1 : 0);
  Add(&out, "kwq_tracker_events_never_read_total",
      "Events the broker deleted (retention) before the tracker read them: "
      "the view misses their effects",
      counter, static_cast<double>(ingestor_->unread_events()));
  Add(&out, "kwq_tracker_ingest_up",
      "1 while ingest runs (0: it stopped on an error; see the log)", gauge,
      ingestor_->status().ok() ? 1 : 0);
  const TrackerStore::DbStats db = store_->GetDbStats();
  Add(&out, "kwq_tracker_rocksdb_sst_bytes", "RocksDB SST files on disk", gauge,
      static_cast<double>(db.sst_bytes));
  Add(&out, "kwq_tracker_rocksdb_live_data_bytes",
      "RocksDB's estimate of live data", gauge,
      static_cast<double>(db.live_data_bytes));
  Add(&out, "kwq_tracker_rocksdb_memtable_bytes", "RocksDB memtables", gauge,
      static_cast<double>(db.memtable_bytes));
  Add(&out, "kwq_tracker_rocksdb_block_cache_bytes", "RocksDB block cache use",
      gauge, static_cast<double>(db.block_cache_bytes));
  Add(&out, "kwq_tracker_rocksdb_pending_compaction_bytes",
      "RocksDB's estimate of bytes compaction still has to rewrite", gauge,
      static_cast<double>(db.pending_compaction_bytes));
  Add(&out, "kwq_tracker_rocksdb_running_compactions",
      "RocksDB compactions running", gauge,
      static_cast<double>(db.running_compactions));
  Add(&out, "kwq_tracker_rocksdb_running_flushes", "RocksDB flushes running",
      gauge, static_cast<double>(db.running_flushes));
  Add(&out, "kwq_tracker_rocksdb_l0_files", "SST files in level 0", gauge,
      static_cast<double>(db.l0_files));
  Add(&out, "kwq_tracker_rocksdb_write_stopped",
      "1 while RocksDB stops writes (compaction far behind)", gauge,
      static_cast<double>(db.write_stopped));
  Add(&out, "kwq_tracker_watch_streams", "Open WatchJob streams", gauge,
      static_cast<double>(service_->watchers()));
  return out;
}

}  // namespace kwq::tracker
