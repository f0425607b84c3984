// The query side of TrackerStore: reads of what committed batches wrote.
#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "server/api/task_validation.h"
#include "server/util/time_util.h"
#include "tracker/model/task_model.h"
#include "tracker/store/keys.h"
#include "tracker/store/tracker_store.h"

namespace kwq::tracker {

using internal::Aggregate;
using kwq::v1::TaskState;
using kwq::v1::TaskStatus;

namespace {

constexpr int kMaxPageSize = 1000;
// Index entries one ListTasks call examines at most; a selective filter may
// then return a short page with a token to go on from.
constexpr int kMaxScan = 20000;
constexpr absl::Duration kRateWindow = absl::Seconds(10);

absl::Status IdError(const char* field) {
  return absl::InvalidArgumentError(
      absl::StrCat(field, " must be 1-128 characters of [A-Za-z0-9._:-]"));
}

absl::Time LastChange(const TaskStatus& t) {
  absl::Time last = absl::InfinitePast();
  for (const auto& a : t.history()) {
    for (const auto* ts : {&a.pending_time(), &a.allocated_time(),
                           &a.running_time(), &a.finished_time()}) {
      if (ts->seconds() != 0 || ts->nanos() != 0)
        last = std::max(last, FromProto(*ts));
    }
  }
  return last;
}

bool ValidTag(const std::string& tag) {
  const auto eq = tag.find('=');
  return eq != std::string::npos && eq > 0 &&
         tag.find('\0') == std::string::npos && tag.size() <= 512;
}

}  // namespace

absl::StatusOr<TaskStatus> TrackerStore::GetTask(
    const std::string& task_id) const {
  if (!api::IsValidId(task_id)) return IdError("task_id");
  std::string raw;
  rocksdb::Status s =
      db_->Get(rocksdb::ReadOptions(), keys::Task(task_id), &raw);
  if (s.IsNotFound()) {
    return absl::NotFoundError(
        absl::StrCat("no task ", task_id, " is known to the tracker"));
  }
  if (!s.ok()) return absl::InternalError(s.ToString());
  TaskStatus t;
  if (!t.ParseFromString(raw))
    return absl::DataLossError("corrupt task record");
  return t;
}

absl::StatusOr<kwq::v1::ListTasksResponse> TrackerStore::ListTasks(
    const kwq::v1::ListTasksRequest& req) const {
  if (!api::IsValidId(req.job_id())) return IdError("job_id");
  if (req.page_size() < 0 || req.page_size() > kMaxPageSize) {
    return absl::InvalidArgumentError(absl::StrCat(
        "page_size must be 1-", kMaxPageSize, " (0: default 100)"));
  }
  if (!kwq::v1::TaskState_IsValid(req.state())) {
    return absl::InvalidArgumentError(
        absl::StrCat("state ", req.state(), " is not a TaskState"));
  }
  if (!req.tag().empty() && !ValidTag(req.tag())) {
    return absl::InvalidArgumentError("tag must be key=value");
  }
  if (!req.page_token().empty() && !api::IsValidId(req.page_token())) {
    return absl::InvalidArgumentError(
        "page_token is not one this service gave out");
  }
  const bool has_since = req.has_since(), has_until = req.has_until();
  const absl::Time since =
      has_since ? FromProto(req.since()) : absl::InfinitePast();
  const absl::Time until =
      has_until ? FromProto(req.until()) : absl::InfiniteFuture();
  if (has_since && has_until && since >= until) {
    return absl::InvalidArgumentError("since must be before until");
  }
  std::string raw;
  rocksdb::Status s =
      db_->Get(rocksdb::ReadOptions(), keys::Job(req.job_id()), &raw);
  if (s.IsNotFound()) {
    return absl::NotFoundError(
        absl::StrCat("no job ", req.job_id(), " is known to the tracker"));
  }
  if (!s.ok()) return absl::InternalError(s.ToString());

  // The narrowest index that answers the filter.
  std::string prefix;
  if (req.state() != kwq::v1::TASK_STATE_UNSPECIFIED) {
    prefix = keys::StateTaskPrefix(req.job_id(), req.state());
  } else if (!req.tag().empty()) {
    prefix = keys::TagTaskPrefix(req.job_id(), req.tag());
  } else {
    prefix = keys::JobTaskPrefix(req.job_id());
  }
  const bool check_tag =
      !req.tag().empty() && req.state() != kwq::v1::TASK_STATE_UNSPECIFIED;
  std::string tag_key, tag_value;
  if (!req.tag().empty()) {
    std::pair<std::string, std::string> kv =
        absl::StrSplit(req.tag(), absl::MaxSplits('=', 1));
    tag_key = kv.first;
    tag_value = kv.second;
  }
  const int page_size = req.page_size() == 0 ? 100 : req.page_size();

  kwq::v1::ListTasksResponse resp;
  rocksdb::ReadOptions ro;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro));
  it->Seek(prefix + req.page_token());
  if (!req.page_token().empty() && it->Valid() &&
      it->key() == prefix + req.page_token()) {
    it->Next();
  }
  int scanned = 0;
  std::string last_id;
  for (; it->Valid() && it->key().starts_with(prefix); it->Next()) {
    if (resp.tasks_size() >= page_size || scanned >= kMaxScan) {
      resp.set_next_page_token(last_id);
      break;
    }
    ++scanned;
    last_id = it->key().ToString().substr(prefix.size());
    auto task = GetTask(last_id);
    if (!task.ok())
      continue;  // an index entry ahead of its record cannot happen; be safe
    if (check_tag) {
      auto t = task->tags().find(tag_key);
      if (t == task->tags().end() || t->second != tag_value) continue;
    }
    if (has_since || has_until) {
      const absl::Time last = LastChange(*task);
      if (last < since || last >= until) continue;
    }
    *resp.add_tasks() = std::move(*task);
  }
  return resp;
}

absl::StatusOr<kwq::v1::JobSummary> TrackerStore::Summarize(
    const std::string& job_id, const Aggregate& agg, int max_tags,
    absl::Time now) const {
  kwq::v1::JobSummary out;
  out.set_job_id(job_id);
  *out.mutable_counts() = agg.counts();
  *out.mutable_first_submit() = agg.first_submit();
  *out.mutable_last_finish() = agg.last_finish();
  for (const auto& e : agg.recent_errors()) out.add_recent_errors(e);
  for (auto it = agg.by_priority().rbegin(); it != agg.by_priority().rend();
       ++it) {
    if (it->counts().total() == 0) continue;  // a priority learned away
    kwq::v1::PrioritySummary* p = out.add_priorities();
    p->set_priority(it->priority());
    *p->mutable_counts() = it->counts();
  }
  const auto& c = agg.counts();
  const int64_t finished = c.completed() + c.failed() + c.cancelled();
  out.set_done(view_current_ && c.total() > 0 && finished == c.total());
  // Finishes per second over the last kRateWindow, or over the job's life
  // when it is younger (a job 3 s old that finished 300 tasks runs at 100/s,
  // not 30/s). Whole seconds, as the finishes are counted per second.
  absl::Duration window = kRateWindow;
  if (agg.has_first_submit()) {
    const absl::Duration age =
        absl::Ceil(now - FromProto(agg.first_submit()), absl::Seconds(1));
    window = std::clamp(age, absl::Seconds(1), kRateWindow);
  }
  const int64_t window_start =
      absl::ToUnixSeconds(now) - absl::ToInt64Seconds(window) + 1;
  int64_t recent = 0;
  for (const auto& sc : agg.recent()) {
    if (sc.second() >= window_start) recent += sc.finished();
  }
  const double rate =
      static_cast<double>(recent) / absl::ToDoubleSeconds(window);
  out.set_rate_per_second(rate);
  if (!out.done() && rate > 0) {
    out.set_eta_seconds(static_cast<double>(c.total() - finished) / rate);
  }
  if (max_tags > 0) {
    std::vector<kwq::v1::TagSummary> tags;
    const std::string prefix = keys::JobTagPrefix(job_id);
    std::unique_ptr<rocksdb::Iterator> it(
        db_->NewIterator(rocksdb::ReadOptions()));
    for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix);
         it->Next()) {
      Aggregate tag_agg;
      if (!tag_agg.ParseFromArray(it->value().data(),
                                  static_cast<int>(it->value().size()))) {
        continue;
      }
      kwq::v1::TagSummary ts;
      ts.set_tag(it->key().ToString().substr(prefix.size()));
      *ts.mutable_counts() = tag_agg.counts();
      tags.push_back(std::move(ts));
    }
    std::stable_sort(tags.begin(), tags.end(),
                     [](const auto& a, const auto& b) {
                       return a.counts().total() > b.counts().total();
                     });
    if (static_cast<int>(tags.size()) > max_tags)
      tags.resize(static_cast<size_t>(max_tags));
    for (auto& t : tags) *out.add_tags() = std::move(t);
  }
  return out;
}

absl::StatusOr<kwq::v1::JobSummary> TrackerStore::GetJobSummary(
    const std::string& job_id, int max_tags, absl::Time now) const {
  if (!api::IsValidId(job_id)) return IdError("job_id");
  if (max_tags < 0 || max_tags > 10000) {
    return absl::InvalidArgumentError(
        "max_tags must be 0-10000 (0: default 50)");
  }
  std::string raw;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), keys::Job(job_id), &raw);
  if (s.IsNotFound()) {
    return absl::NotFoundError(
        absl::StrCat("no job ", job_id, " is known to the tracker"));
  }
  if (!s.ok()) return absl::InternalError(s.ToString());
  Aggregate agg;
  if (!agg.ParseFromString(raw))
    return absl::DataLossError("corrupt job record");
  return Summarize(job_id, agg, max_tags == 0 ? 50 : max_tags, now);
}

absl::StatusOr<kwq::v1::ListJobsResponse> TrackerStore::ListJobs(
    const kwq::v1::ListJobsRequest& req, absl::Time now) const {
  if (req.page_size() < 0 || req.page_size() > kMaxPageSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("page_size must be 1-", kMaxPageSize, " (0: default 50)"));
  }
  const std::string& token = req.page_token();
  if (!token.empty() &&
      (token.size() < 17 || !api::IsValidId(token.substr(16)))) {
    return absl::InvalidArgumentError(
        "page_token is not one this service gave out");
  }
  const int page_size = req.page_size() == 0 ? 50 : req.page_size();
  const std::string prefix(keys::kJobListPrefix);
  kwq::v1::ListJobsResponse resp;
  std::unique_ptr<rocksdb::Iterator> it(
      db_->NewIterator(rocksdb::ReadOptions()));
  it->Seek(prefix + token);
  if (!token.empty() && it->Valid() && it->key() == prefix + token) it->Next();
  std::string last;
  for (; it->Valid() && it->key().starts_with(prefix); it->Next()) {
    if (resp.jobs_size() >= page_size) {
      resp.set_next_page_token(last);
      break;
    }
    last = it->key().ToString().substr(prefix.size());
    const std::string job = last.substr(16);
    std::string raw;
    if (!db_->Get(rocksdb::ReadOptions(), keys::Job(job), &raw).ok()) continue;
    Aggregate agg;
    if (!agg.ParseFromString(raw)) continue;
    auto summary = Summarize(job, agg, /*max_tags=*/0, now);
    if (summary.ok()) *resp.add_jobs() = std::move(*summary);
  }
  return resp;
}

absl::StatusOr<kwq::v1::ThroughputStats> TrackerStore::GetThroughput(
    const kwq::v1::GetThroughputRequest& req, absl::Time now) const {
  if (req.bucket_seconds() < 0 || req.bucket_seconds() > 86400) {
    return absl::InvalidArgumentError(
        "bucket_seconds must be 1-86400 (0: default 1)");
  }
  if (req.buckets() < 0 || req.buckets() > 10000) {
    return absl::InvalidArgumentError(
        "buckets must be 1-10000 (0: default 60)");
  }
  const int64_t width = req.bucket_seconds() == 0 ? 1 : req.bucket_seconds();
  const int64_t n = req.buckets() == 0 ? 60 : req.buckets();
  const int64_t end = absl::ToUnixSeconds(now) / width * width + width;
  const int64_t start = end - width * n;
  kwq::v1::ThroughputStats out;
  for (int64_t i = 0; i < n; ++i) {
    auto* b = out.add_buckets();
    b->mutable_start()->set_seconds(start + i * width);
  }
  std::unique_ptr<rocksdb::Iterator> it(
      db_->NewIterator(rocksdb::ReadOptions()));
  const std::string end_key = keys::Second(end);
  for (it->Seek(keys::Second(start));
       it->Valid() && it->key().ToString() < end_key; it->Next()) {
    const int64_t sec = static_cast<int64_t>(keys::ParseHex16(
        it->key().ToStringView().substr(keys::kSecondPrefix.size())));
    internal::ThroughputCount c;
    if (!c.ParseFromArray(it->value().data(),
                          static_cast<int>(it->value().size())))
      continue;
    auto* b = out.mutable_buckets(static_cast<int>((sec - start) / width));
    b->set_completed(b->completed() + c.completed());
    b->set_errors(b->errors() + c.errors());
  }
  const auto counters = this->counters();
  out.set_total_completed(counters.completed());
  out.set_total_events(counters.events());
  return out;
}

}  // namespace kwq::tracker
