#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "kwq/v1/tracker.pb.h"
#include "rocksdb/db.h"
#include "tracker/store/tracker_store.pb.h"

namespace kwq::tracker {

struct StoreOptions {
  // RocksDB memory: the block cache (index and filter blocks included) and the
  // memtables. Together with the batch caches below they bound the tracker's
  // memory whatever the number of tasks.
  size_t block_cache_bytes = 128 << 20;
  // 128 MiB memtables: a task's record written at PENDING and again when it
  // finishes seconds later mostly meets itself in one memtable, and fewer,
  // larger flushes rewrite level 1 less often. tracker_bench, 2M tasks with a
  // 200k-task PENDING lead, 2 pairs: CPU 0.86x of 32 MiB x 3 without the log,
  // peak RSS +110 MiB (tracker/README.md).
  size_t write_buffer_bytes = 128 << 20;
  int max_write_buffers = 2;
  // RocksDB's write-ahead log. Off: a batch lands in one memtable with its
  // offsets and RocksDB persists whole memtables, so after a crash ingest
  // re-reads from Kafka what the unflushed memtables held. On: each batch is
  // also appended to the log (one write() per batch, no fsync), and a restart
  // replays the log into the memtables instead, without Kafka or the model.
  // Either way the store after a crash is the state after some batch, with
  // that batch's offsets. On by default: with 128 MiB memtables the events to
  // re-read from Kafka would be up to ~2M; the log replays in ~1 s per 100 MiB.
  bool write_ahead_log = true;
  // RocksDB's compaction style. Leveled rewrites each byte once per level;
  // universal merges whole sorted runs, rewriting less (the tracker writes
  // mostly new keys and overwrites each task record a few times) for up to
  // twice the disk while a merge runs, and more sorted runs for a seek to
  // visit. Leveled is the default: in the 50M soak universal did not lower
  // the tracker's CPU per task enough to show and a deep ListTasks page's p99
  // rose from 39 to 75 ms (tools/bench/README.md). The style can change on an
  // existing store, either way (ACompactionStyleChangeKeepsEveryTask).
  bool universal_compaction = false;
  // Job and (job, tag) aggregates kept in memory between batches.
  size_t aggregate_cache_entries = 20000;
  // Records of unfinished tasks written by recent batches, kept serialized
  // (~200 bytes each with the map's overhead): a task's later events usually
  // come seconds after its PENDING, in a later batch, and a record found here
  // needs no RocksDB lookup. Finished tasks are dropped from it.
  size_t recent_task_records = 100000;
};

// One record of `<prefix>.events` to apply.
struct EventRecord {
  int32_t partition = 0;
  int64_t offset = 0;
  std::string value;  // a serialized kwq.v1.TaskEvent
};

// The tracker's model in RocksDB: task records with their attempt history,
// indexes by job, state and tag, aggregates per job and per (job, tag), global
// throughput per second, and the consumed offsets. A batch of events and the
// offsets after it are one atomic RocksDB write: after a crash the store is
// exactly the state after some batch, and consuming resumes at that batch's
// offsets.
//
// Threads: ApplyBatch and Offsets from one ingest thread; the query methods
// from any thread (they read what committed batches wrote).
class TrackerStore {
 public:
  // Opens (creating) the store in `path`. `wipe` deletes what is there first
  // (rebuild).
  static absl::StatusOr<std::unique_ptr<TrackerStore>> Open(
      const std::string& path, const StoreOptions& options, bool wipe);
  ~TrackerStore();

  // --- ingest ---
  absl::Status ApplyBatch(const std::string& topic,
                          const std::vector<EventRecord>& batch);
  // Next offset to consume per partition of `topic` (absent: from the
  // beginning).
  std::map<int32_t, int64_t> Offsets(const std::string& topic) const;
  internal::IngestCounters counters() const;

  // --- queries (validated; NOT_FOUND for unknown ids, INVALID_ARGUMENT for bad
  // input) ---
  absl::StatusOr<kwq::v1::TaskStatus> GetTask(const std::string& task_id) const;
  absl::StatusOr<kwq::v1::ListTasksResponse> ListTasks(
      const kwq::v1::ListTasksRequest& request) const;
  absl::StatusOr<kwq::v1::JobSummary> GetJobSummary(const std::string& job_id,
                                                    int max_tags,
                                                    absl::Time now) const;
  absl::StatusOr<kwq::v1::ListJobsResponse> ListJobs(
      const kwq::v1::ListJobsRequest& request, absl::Time now) const;
  absl::StatusOr<kwq::v1::ThroughputStats> GetThroughput(
      const kwq::v1::GetThroughputRequest& request, absl::Time now) const;

  // Whether the model has applied the events topic up to its end offsets (as
  // the ingest last checked them with the broker, at most ~1 s ago). While it
  // has not, no job is reported done: a view behind the topic may be missing
  // tasks (after a restart, a broker outage). Starts false for the ingest to
  // set; a store used without ingest (tests, tools) calls it once.
  void SetViewCurrent(bool current) { view_current_ = current; }
  bool view_current() const { return view_current_; }

  // RocksDB's estimate of live data bytes on disk, and of its memory use.
  uint64_t DiskBytes() const;
  uint64_t MemoryBytes() const;
  // RocksDB's own figures, for /metrics.
  struct DbStats {
    uint64_t sst_bytes = 0;        // SST files on disk
    uint64_t live_data_bytes = 0;  // estimate of live data
    uint64_t memtable_bytes = 0;
    uint64_t block_cache_bytes = 0;
    uint64_t pending_compaction_bytes = 0;  // estimate still to compact
    uint64_t running_compactions = 0;
    uint64_t running_flushes = 0;
    uint64_t l0_files = 0;
    uint64_t files_below_l0 = 0;  // SST files in levels 1 and up
    uint64_t write_stopped = 0;   // 1 while RocksDB stops writes
  };
  DbStats GetDbStats() const;

 private:
  TrackerStore() = default;
  class Batch;
  absl::StatusOr<kwq::v1::JobSummary> Summarize(const std::string& job_id,
                                                const internal::Aggregate& agg,
                                                int max_tags,
                                                absl::Time now) const;

  std::atomic<bool> view_current_{false};
  std::unique_ptr<rocksdb::DB> db_;
  std::shared_ptr<rocksdb::Cache> cache_;
  StoreOptions options_;
  // Ingest-thread state, carried between batches (bounded).
  // options_.recent_task_records, by task id: each equals the task's record
  // in RocksDB; recent_order_ is insertion order for eviction (it may name ids
  // dropped since).
  absl::flat_hash_map<std::string, std::string> recent_records_;
  std::deque<std::string> recent_order_;
  std::unordered_map<std::string, internal::Aggregate>
      aggregates_;  // by RocksDB key
  internal::IngestCounters counters_;
  mutable std::mutex counters_mu_;
  internal::IngestCounters published_counters_;  // guarded by counters_mu_
};

}  // namespace kwq::tracker
