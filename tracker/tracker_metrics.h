#pragma once

#include <vector>

#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"
#include "tracker/ingest/event_ingestor.h"
#include "tracker/store/tracker_store.h"
#include "tracker/tracker_service.h"

namespace kwq::tracker {

// The tracker's own metrics, read at each scrape: events ingested (by what
// they did to the model), ingest lag behind the events topic in records and
// seconds, RocksDB's size and compaction state, open watch streams. Query
// latencies are TrackerService::metrics(). See tracker/README.md "Metrics".
class TrackerMetrics : public prometheus::Collectable {
 public:
  TrackerMetrics(const TrackerStore* store, const EventIngestor* ingestor,
                 const TrackerService* service)
      : store_(store), ingestor_(ingestor), service_(service) {}
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  const TrackerStore* store_;
  const EventIngestor* ingestor_;
  const TrackerService* service_;
};

}  // namespace kwq::tracker
