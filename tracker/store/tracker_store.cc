#include "tracker/store/tracker_store.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>

#include "absl/container/flat_hash_map.h"
#include "absl/container/node_hash_map.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "glog/logging.h"
#include "google/protobuf/arena.h"
#include "rocksdb/cache.h"
#include "rocksdb/filter_policy.h"
#include "rocksdb/perf_level.h"
#include "rocksdb/slice_transform.h"
#include "rocksdb/table.h"
#include "rocksdb/utilities/options_util.h"
#include "server/api/limits.h"
#include "server/util/time_util.h"
#include "tracker/model/job_aggregate.h"
#include "tracker/model/task_model.h"
#include "tracker/store/keys.h"

namespace kwq::tracker {

using internal::Aggregate;
using kwq::v1::StateCounts;
using kwq::v1::TaskEvent;
using kwq::v1::TaskState;
using kwq::v1::TaskStatus;

namespace {

absl::Status ToStatus(const rocksdb::Status& s, const char* what) {
  if (s.ok()) return absl::OkStatus();
  return absl::InternalError(absl::StrCat(what, ": ", s.ToString()));
}

// The length of `key`'s insert-hint prefix: its kind and parts up to its last
// '\0' (the job, the tag), and the state byte of a state index key; 0 for a
// key outside that shape.
size_t HintPrefixLength(std::string_view key) {
  if (key.size() < 2 || key[1] != '\0') return 0;
  size_t last = key.size() - 1;
  while (key[last] != '\0') --last;  // stops at key[1] at the latest
  size_t len = last + 1;
  if (key[0] == 's' && len < key.size()) ++len;  // the state byte
  return len;
}

// The writes of one batch, handed to RocksDB in key order: consecutive inserts
// into the memtable's skip list then reuse the search path of the previous one
// (measured: the skip-list search was the largest cost of ingest). At most one
// write per key.
class SortedWrites {
 public:
  void Put(std::string key, std::string value) {
    ops_.push_back({std::move(key), std::move(value), false});
  }
  void Delete(std::string key) { ops_.push_back({std::move(key), "", true}); }
  void Build(rocksdb::WriteBatch* wb) {
    // Grouped by insert-hint prefix, each group in the order its writes came,
    // the groups (a few per batch) sorted by prefix. ApplyBatch visits the
    // tasks in id order, so a group comes sorted and needs only a check
    // instead of a sort of every key (the sort was 12% of the ingest
    // thread). For kwq's keys (no part holds a '\0', the smallest byte, and
    // no group's prefix starts another's) this is the order of the keys; for
    // others it is only slower to insert, never wrong. By pointer: moving the
    // ops themselves (two strings each) was most of a sort's cost.
    struct Group {
      std::string_view prefix;
      std::vector<const Op*> ops;
    };
    std::vector<Group> groups;
    absl::flat_hash_map<std::string_view, size_t> group_of;
    for (const Op& op : ops_) {
      const std::string_view key = op.key;
      const std::string_view prefix = key.substr(0, HintPrefixLength(key));
      auto [it, fresh] = group_of.try_emplace(prefix, groups.size());
      if (fresh) groups.push_back({prefix, {}});
      groups[it->second].ops.push_back(&op);
    }
    std::sort(groups.begin(), groups.end(), [](const Group& a, const Group& b) {
      return a.prefix < b.prefix;
    });
    const auto by_key = [](const Op* a, const Op* b) {
      return a->key < b->key;
    };
    for (Group& g : groups) {
      if (!std::is_sorted(g.ops.begin(), g.ops.end(), by_key)) {
        std::sort(g.ops.begin(), g.ops.end(), by_key);
      }
      for (const Op* op : g.ops) {
        if (op->del) {
          wb->Delete(op->key);
        } else {
          wb->Put(op->key, op->value);
        }
      }
    }
  }

 private:
  struct Op {
    std::string key;
    std::string value;
    bool del;
  };
  std::vector<Op> ops_;
};

// The prefix under which the memtable keeps an insert hint (HintPrefixLength).
// A batch's writes come sorted, so consecutive inserts under one prefix start
// from the previous one's position in the skip list instead of searching from
// its top (keys are long and share long prefixes: the search's comparisons
// were the largest cost of ingest).
class InsertHintPrefix : public rocksdb::SliceTransform {
 public:
  const char* Name() const override { return "kwq.InsertHintPrefix"; }
  rocksdb::Slice Transform(const rocksdb::Slice& key) const override {
    return rocksdb::Slice(key.data(), HintPrefixLength(key.ToStringView()));
  }
  bool InDomain(const rocksdb::Slice& key) const override {
    return HintPrefixLength(key.ToStringView()) > 0;
  }
};

}  // namespace

absl::StatusOr<std::unique_ptr<TrackerStore>> TrackerStore::Open(
    const std::string& path, const StoreOptions& options, bool wipe) {
  // Per-key-comparison perf counters cost a thread-local lookup each (measured:
  // ~15% of ingest); this thread and the ingest thread do not need them.
  rocksdb::SetPerfLevel(rocksdb::PerfLevel::kDisable);
  std::unique_ptr<TrackerStore> store(new TrackerStore());
  store->options_ = options;
  // Few shards: a block larger than its shard's share of the cache is not
  // cached at all.
  store->cache_ =
      rocksdb::NewLRUCache(options.block_cache_bytes, /*num_shard_bits=*/2);
  rocksdb::BlockBasedTableOptions table;
  table.block_cache = store->cache_;
  table.cache_index_and_filter_blocks = true;  // counted in the bounded cache
  table.pin_l0_filter_and_index_blocks_in_cache = true;
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  // Partitioned index and filters: small blocks that the bounded cache can hold
  // and evict one by one, instead of one filter per file that grows with the
  // file (measured: a whole-file filter that did not fit a cache shard was
  // re-read from disk on every lookup, ingest fell from 300k to 8k events/s
  // past 3M events).
  table.index_type = rocksdb::BlockBasedTableOptions::kTwoLevelIndexSearch;
  table.partition_filters = true;
  table.metadata_block_size = 4096;
  table.pin_top_level_index_and_filter = true;
  rocksdb::Options db_options;
  db_options.create_if_missing = true;
  db_options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  db_options.write_buffer_size = options.write_buffer_bytes;
  db_options.memtable_insert_with_hint_prefix_extractor =
      std::make_shared<InsertHintPrefix>();
  db_options.max_write_buffer_number = options.max_write_buffers;
  // A bloom filter over each memtable's keys: a task's first event looks its
  // record up, and for a new task that lookup searched the memtable's skip
  // list for nothing (callgrind on tracker_bench: ~10k instructions per
  // lookup, 9% of ingest). 2% of the memtable's size: ~20 bits per key.
  db_options.memtable_prefix_bloom_size_ratio = 0.02;
  db_options.memtable_whole_key_filtering = true;
  // A restart replays the log into memtables and leaves them there, instead of
  // writing them out as level-0 files before the store opens.
  db_options.avoid_flush_during_recovery = options.write_ahead_log;
  if (options.universal_compaction) {
    db_options.compaction_style = rocksdb::kCompactionStyleUniversal;
  }
  db_options.max_background_jobs = 2;
  db_options.max_open_files = 512;
  db_options.compression = rocksdb::kNoCompression;
  for (auto c : rocksdb::GetSupportedCompressions()) {
    if (c == rocksdb::kLZ4Compression) db_options.compression = c;
  }
  if (wipe &&
      std::filesystem::exists(std::filesystem::path(path) / "CURRENT")) {
    // Deletes RocksDB's own files only, never anything else in the directory.
    rocksdb::Status s = rocksdb::DestroyDB(path, db_options);
    if (!s.ok()) return ToStatus(s, "wiping the tracker store for --rebuild");
  }
  rocksdb::DB* db = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(db_options, path, &db);
  if (!s.ok()) return ToStatus(s, "opening the tracker store");
  store->db_.reset(db);
  std::string raw;
  s = store->db_->Get(rocksdb::ReadOptions(), std::string(keys::kCounters),
                      &raw);
  if (s.ok()) {
    if (!store->counters_.ParseFromString(raw)) {
      return absl::DataLossError(
          "the ingest counters are corrupt: rebuild the store (--rebuild)");
    }
  } else if (!s.IsNotFound()) {
    return ToStatus(s, "reading the ingest counters");
  }
  store->published_counters_ = store->counters_;
  return store;
}

TrackerStore::~TrackerStore() {
  if (db_) db_->Close();
}

std::map<int32_t, int64_t> TrackerStore::Offsets(
    const std::string& topic) const {
  std::map<int32_t, int64_t> out;
  const std::string prefix = keys::OffsetPrefix(topic);
  std::unique_ptr<rocksdb::Iterator> it(
      db_->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix);
       it->Next()) {
    int64_t offset = 0;
    if (absl::SimpleAtoi(it->value().ToString(), &offset)) {
      const auto part = it->key().ToStringView().substr(prefix.size());
      out[static_cast<int32_t>(keys::ParseHex16(part))] = offset;
    }
  }
  return out;
}

internal::IngestCounters TrackerStore::counters() const {
  std::lock_guard<std::mutex> lock(counters_mu_);
  return published_counters_;
}

// The changes of one batch: records read once and written once, in one
// WriteBatch.
class TrackerStore::Batch {
 public:
  explicit Batch(TrackerStore* store) : store_(store), arena_(ArenaOptions()) {}

  // A task record as this batch found it, and as the batch leaves it.
  struct Entry {
    TaskStatus* task = nullptr;  // on the batch's arena
    bool existed = false;
    TaskState initial_state = kwq::v1::TASK_STATE_UNSPECIFIED;
    bool had_tags = false;
  };

  absl::StatusOr<TaskStatus*> Task(const std::string& id) {
    auto it = tasks_.find(id);
    if (it != tasks_.end()) return it->second.task;
    Entry& e = tasks_[id];
    e.task = google::protobuf::Arena::CreateMessage<TaskStatus>(&arena_);
    if (auto r = store_->recent_records_.find(id);
        r != store_->recent_records_.end()) {
      if (!e.task->ParseFromString(r->second)) {
        return absl::InternalError(
            absl::StrCat("cached task record of ", id, " does not parse"));
      }
    } else {
      std::string raw;
      rocksdb::Status s =
          store_->db_->Get(rocksdb::ReadOptions(), keys::Task(id), &raw);
      if (s.ok()) {
        if (!e.task->ParseFromString(raw)) {
          return absl::DataLossError(
              absl::StrCat("task record of ", id, " is corrupt"));
        }
      } else if (!s.IsNotFound()) {
        return ToStatus(s, "reading a task record");
      }
    }
    e.existed = !e.task->task_id().empty();
    e.initial_state = e.task->state();
    e.had_tags = !e.task->tags().empty();
    return e.task;
  }

  absl::StatusOr<Aggregate*> Agg(const std::string& key, bool* created) {
    *created = false;
    auto it = aggs_.find(key);
    if (it != aggs_.end()) return &it->second;
    Aggregate& a = aggs_[key];
    if (auto c = store_->aggregates_.find(key);
        c != store_->aggregates_.end()) {
      a = c->second;
      return &a;
    }
    std::string raw;
    rocksdb::Status s = store_->db_->Get(rocksdb::ReadOptions(), key, &raw);
    if (s.ok()) {
      if (!a.ParseFromString(raw)) {
        return absl::DataLossError(absl::StrCat(
            "aggregate ", key, " is corrupt: rebuild the store (--rebuild)"));
      }
    } else if (s.IsNotFound()) {
      *created = true;
    } else {
      return ToStatus(s, "reading an aggregate");
    }
    return &a;
  }

  absl::StatusOr<internal::ThroughputCount*> Second(int64_t second) {
    auto it = seconds_.find(second);
    if (it != seconds_.end()) return &it->second;
    internal::ThroughputCount& c = seconds_[second];
    std::string raw;
    rocksdb::Status s =
        store_->db_->Get(rocksdb::ReadOptions(), keys::Second(second), &raw);
    if (s.ok()) {
      if (!c.ParseFromString(raw)) {
        return absl::DataLossError(
            absl::StrCat("throughput bucket ", second,
                         " is corrupt: rebuild the store (--rebuild)"));
      }
    } else if (!s.IsNotFound()) {
      return ToStatus(s, "reading a throughput bucket");
    }
    return &c;
  }

  SortedWrites& wb() { return wb_; }
  absl::node_hash_map<std::string, Entry>& tasks() { return tasks_; }
  absl::node_hash_map<std::string, Aggregate>& aggs() { return aggs_; }
  std::map<int64_t, internal::ThroughputCount>& seconds() { return seconds_; }

 private:
  // The batch's task records live on an arena: one release at the end of the
  // batch instead of destroying each record's parts (measured with callgrind
  // on tracker_bench: destroying the batch was 4.4% of ApplyBatch).
  static google::protobuf::ArenaOptions ArenaOptions() {
    google::protobuf::ArenaOptions o;
    o.start_block_size = 64 << 10;
    o.max_block_size = 1 << 20;
    return o;
  }

  TrackerStore* store_;
  google::protobuf::Arena arena_;  // before tasks_: outlives the entries
  SortedWrites wb_;
  // Node maps: a task's entry stays put while the batch adds others (cheaper
  // than moving a TaskStatus on growth).
  absl::node_hash_map<std::string, Entry> tasks_;
  absl::node_hash_map<std::string, Aggregate> aggs_;
  std::map<int64_t, internal::ThroughputCount> seconds_;
};

absl::Status TrackerStore::ApplyBatch(const std::string& topic,
                                      const std::vector<EventRecord>& records) {
  if (records.empty()) return absl::OkStatus();
  rocksdb::SetPerfLevel(
      rocksdb::PerfLevel::kDisable);  // thread-local: see Open
  Batch batch(this);
  SortedWrites& wb = batch.wb();
  std::map<int32_t, int64_t> next_offsets;
  internal::IngestCounters counters = counters_;
  TaskEvent ev;  // reused: parsing clears it and keeps its strings' memory
  for (const EventRecord& rec : records) {
    next_offsets[rec.partition] = rec.offset + 1;
    counters.set_events(counters.events() + 1);
    if (!ev.ParseFromString(rec.value) || ev.task_id().empty() ||
        ev.job_id().empty() || ev.task_id().find('\0') != std::string::npos ||
        ev.job_id().find('\0') != std::string::npos) {
      counters.set_unparsable(counters.unparsable() + 1);
      LOG_EVERY_N(WARNING, 1000)
          << "skipping an event that is not a kwq.v1.TaskEvent at " << topic
          << "/" << rec.partition << "@" << rec.offset;
      continue;
    }
    auto task_or = batch.Task(ev.task_id());
    if (!task_or.ok()) return task_or.status();
    TaskStatus* task = *task_or;
    const ApplyOutcome o = ApplyEvent(ev, task);
    switch (o.kind) {
      case ApplyOutcome::kApplied:
        counters.set_applied(counters.applied() + 1);
        break;
      case ApplyOutcome::kDuplicate:
        counters.set_duplicates(counters.duplicates() + 1);
        break;
      case ApplyOutcome::kStale:
        counters.set_stale(counters.stale() + 1);
        break;
      case ApplyOutcome::kConflict:
        counters.set_conflicts(counters.conflicts() + 1);
        break;
    }
    if (!o.changed) continue;
    const std::string& job = task->job_id();
    const std::string& id = task->task_id();

    // The job's aggregate.
    bool created = false;
    auto agg_or = batch.Agg(keys::Job(job), &created);
    if (!agg_or.ok()) return agg_or.status();
    Aggregate* agg = *agg_or;
    if (created) {
      agg->set_list_key(
          keys::JobList(absl::ToUnixMicros(FromProto(ev.time())), job));
      wb.Put(agg->list_key(), "");
    }
    ApplyToJob(o, ev, id, task->priority(), agg);

    // The (job, tag) aggregates.
    if (TagsChange(o, *task)) {
      for (const auto& [k, v] : task->tags()) {
        bool tag_created = false;
        auto tag_or =
            batch.Agg(keys::JobTag(job, absl::StrCat(k, "=", v)), &tag_created);
        if (!tag_or.ok()) return tag_or.status();
        ApplyToTag(o, ev, *task, *tag_or);
      }
    }

    // Global throughput.
    if ((o.finished && o.new_state == kwq::v1::COMPLETED) ||
        o.attempt_errored) {
      auto sec_or = batch.Second(ev.time().seconds());
      if (!sec_or.ok()) return sec_or.status();
      if (o.attempt_errored) (*sec_or)->set_errors((*sec_or)->errors() + 1);
      if (o.finished && o.new_state == kwq::v1::COMPLETED) {
        (*sec_or)->set_completed((*sec_or)->completed() + 1);
        counters.set_completed(counters.completed() + 1);
      }
    }
  }

  // Records and indexes, from how the batch found each task to how it leaves
  // it: one index write per change of the batch, not per event.
  std::vector<std::pair<const std::string*, std::string>> to_cache;
  // In task id order: each index's writes then come sorted (SortedWrites).
  std::vector<std::pair<const std::string*, const Batch::Entry*>> by_id;
  by_id.reserve(batch.tasks().size());
  for (const auto& [id, e] : batch.tasks()) by_id.emplace_back(&id, &e);
  std::sort(by_id.begin(), by_id.end(),
            [](const auto& a, const auto& b) { return *a.first < *b.first; });
  for (const auto& [id_ptr, e_ptr] : by_id) {
    const std::string& id = *id_ptr;
    const Batch::Entry& e = *e_ptr;
    const TaskStatus& task = *e.task;
    if (task.task_id().empty()) continue;
    const std::string& job = task.job_id();
    std::string record = task.SerializeAsString();
    // Cached once written; a finished task's record leaves the cache now (a
    // cache entry must never differ from the record in RocksDB: dropping one
    // is always safe).
    if (IsFinal(task.state())) {
      recent_records_.erase(id);
    } else {
      to_cache.emplace_back(&id, record);
    }
    wb.Put(keys::Task(id), std::move(record));
    // Kept although the state indexes name every task too: listing a job
    // from them (merged) crossed the PENDING entries' tombstones and was
    // 10x slower (tracker_bench, session 14: list page p50 0.7 -> 10-12 ms).
    if (!e.existed) wb.Put(keys::JobTask(job, id), "");
    if (e.initial_state != task.state()) {
      if (e.initial_state != kwq::v1::TASK_STATE_UNSPECIFIED) {
        wb.Delete(keys::StateTask(job, e.initial_state, id));
      }
      wb.Put(keys::StateTask(job, task.state(), id), "");
    }
    if (!e.had_tags) {
      for (const auto& [k, v] : task.tags()) {
        wb.Put(keys::TagTask(job, absl::StrCat(k, "=", v), id), "");
      }
    }
  }
  for (const auto& [key, agg] : batch.aggs())
    wb.Put(key, agg.SerializeAsString());
  for (const auto& [sec, count] : batch.seconds()) {
    wb.Put(keys::Second(sec), count.SerializeAsString());
  }
  for (const auto& [partition, next] : next_offsets) {
    wb.Put(keys::Offset(topic, partition), absl::StrCat(next));
  }
  wb.Put(std::string(keys::kCounters), counters.SerializeAsString());
  rocksdb::WriteOptions wo;
  // With or without the log, a batch and its offsets land together, so after
  // a crash ingest resumes after some batch (StoreOptions::write_ahead_log;
  // tests/tracker_test kills -9 mid-ingest and compares with a rebuild).
  wo.disableWAL = !options_.write_ahead_log;
  rocksdb::WriteBatch write_batch;
  wb.Build(&write_batch);
  rocksdb::Status s = db_->Write(wo, &write_batch);
  if (!s.ok()) return ToStatus(s, "writing a batch");

  // Carry bounded caches to the next batch.
  counters_ = counters;
  {
    std::lock_guard<std::mutex> lock(counters_mu_);
    published_counters_ = counters;
  }
  for (auto& [id, record] : to_cache) {
    if (recent_records_.insert_or_assign(*id, std::move(record)).second) {
      recent_order_.push_back(*id);
    }
  }
  while (recent_records_.size() > options_.recent_task_records ||
         recent_order_.size() > 2 * options_.recent_task_records + 1) {
    recent_records_.erase(recent_order_.front());
    recent_order_.pop_front();
  }
  if (aggregates_.size() + batch.aggs().size() >
      options_.aggregate_cache_entries) {
    aggregates_.clear();
  }
  for (auto& [key, agg] : batch.aggs()) aggregates_[key] = std::move(agg);
  return absl::OkStatus();
}

uint64_t TrackerStore::DiskBytes() const {
  uint64_t v = 0;
  db_->GetIntProperty(rocksdb::DB::Properties::kTotalSstFilesSize, &v);
  return v;
}

uint64_t TrackerStore::MemoryBytes() const {
  uint64_t mem = 0;
  db_->GetIntProperty(rocksdb::DB::Properties::kCurSizeAllMemTables, &mem);
  return mem + cache_->GetUsage();
}

TrackerStore::DbStats TrackerStore::GetDbStats() const {
  DbStats s;
  using P = rocksdb::DB::Properties;
  db_->GetIntProperty(P::kTotalSstFilesSize, &s.sst_bytes);
  db_->GetIntProperty(P::kEstimateLiveDataSize, &s.live_data_bytes);
  db_->GetIntProperty(P::kCurSizeAllMemTables, &s.memtable_bytes);
  db_->GetIntProperty(P::kEstimatePendingCompactionBytes,
                      &s.pending_compaction_bytes);
  db_->GetIntProperty(P::kNumRunningCompactions, &s.running_compactions);
  db_->GetIntProperty(P::kNumRunningFlushes, &s.running_flushes);
  db_->GetIntProperty(P::kIsWriteStopped, &s.write_stopped);
  std::string l0;
  if (db_->GetProperty(absl::StrCat(P::kNumFilesAtLevelPrefix, 0), &l0)) {
    s.l0_files = std::strtoull(l0.c_str(), nullptr, 10);
  }
  for (int level = 1; level < db_->NumberLevels(); ++level) {
    std::string n;
    if (db_->GetProperty(absl::StrCat(P::kNumFilesAtLevelPrefix, level), &n)) {
      s.files_below_l0 += std::strtoull(n.c_str(), nullptr, 10);
    }
  }
  s.block_cache_bytes = cache_->GetUsage();
  return s;
}

}  // namespace kwq::tracker
