#include "server/submit_admission.h"

#include <functional>
#include <string_view>

#include "absl/hash/hash.h"
#include "absl/numeric/int128.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/wire_format_lite.h"
#include "kwq/v1/control.pb.h"
#include "server/api/task_events.h"

namespace kwq::scheduler {
namespace {

using google::protobuf::internal::WireFormatLite;

void AppendVarint(uint64_t v, std::string* out) {
  uint8_t buf[10];  // a varint of 64 bits takes at most 10 bytes
  const uint8_t* end =
      google::protobuf::io::CodedOutputStream::WriteVarint64ToArray(v, buf);
  out->append(reinterpret_cast<const char*>(buf), end - buf);
}

// Field `number` with a varint value.
void AppendVarintField(int number, uint64_t value, std::string* out) {
  AppendVarint(WireFormatLite::MakeTag(number, WireFormatLite::WIRETYPE_VARINT),
               out);
  AppendVarint(value, out);
}

// Field `number` with length-delimited `bytes` (a string or a message).
void AppendBytesField(int number, std::string_view bytes, std::string* out) {
  AppendVarint(WireFormatLite::MakeTag(
                   number, WireFormatLite::WIRETYPE_LENGTH_DELIMITED),
               out);
  AppendVarint(bytes.size(), out);
  out->append(bytes.data(), bytes.size());
}

// The record of a new task: what the client sent, with what admission decides
// appended after it (the first attempt with no failures counted, the id when
// admission made it, the submit time when the client gave none). Protobuf
// keeps the last occurrence of a non-repeated scalar or string field, and an
// appended message field was absent before, so the record parses as the task
// admission means, without a copy of it (measured with
// submit_admission_bench: the copy was 15% of admission). A not_before, which
// admission clears and appending cannot, takes a copy (`copy`, reused).
std::string TaskRecord(const kwq::v1::Task& in, const std::string& new_id,
                       const std::string& now_bytes, kwq::v1::Task* copy) {
  using kwq::v1::Task;
  const kwq::v1::Task* source = &in;
  if (in.has_not_before()) {
    *copy = in;
    copy->clear_not_before();
    source = copy;
  }
  // Room for the appended fields up front: appending to a string of exactly
  // the task's size would reallocate and copy it.
  const size_t size = source->ByteSizeLong();
  std::string record;
  record.reserve(size + 32 + new_id.size() + now_bytes.size());
  record.resize(size);
  source->SerializeWithCachedSizesToArray(
      reinterpret_cast<uint8_t*>(record.data()));
  if (in.attempt() != 1) {
    AppendVarintField(Task::kAttemptFieldNumber, 1, &record);
  }
  if (in.infra_failures() != 0) {
    AppendVarintField(Task::kInfraFailuresFieldNumber, 0, &record);
  }
  if (in.task_errors() != 0) {
    AppendVarintField(Task::kTaskErrorsFieldNumber, 0, &record);
  }
  if (!new_id.empty()) AppendBytesField(Task::kIdFieldNumber, new_id, &record);
  if (!in.has_submit_time()) {
    AppendBytesField(Task::kSubmitTimeFieldNumber, now_bytes, &record);
  }
  return record;
}

// Two hashes of different kinds: ids collide in the window only if both do
// (absl's is seeded per process, so no client can aim at it).
absl::uint128 Fingerprint(const std::string& id) {
  return absl::MakeUint128(absl::Hash<std::string_view>{}(id),
                           std::hash<std::string_view>{}(id));
}

}  // namespace

SubmitAdmission::SubmitAdmission(Options options)
    : options_(std::move(options)), topics_(options_.topic_prefix) {}

absl::Status SubmitAdmission::Admit(const kwq::v1::SubmitRequest& request,
                                    const std::string& submitter,
                                    const google::protobuf::Timestamp& now,
                                    kwq::v1::SubmitResponse* response,
                                    Plan* plan) {
  if (request.tasks_size() == 0 || request.tasks_size() > 10000) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tasks: a batch holds 1-10000 tasks, not ", request.tasks_size()));
  }
  for (int i = 0; i < request.tasks_size(); ++i) {
    if (absl::Status s =
            api::ValidateTask(request.tasks(i), i, options_.limits);
        !s.ok()) {
      return s;
    }
  }
  const std::string* previous_job = nullptr;  // a Submit is mostly one job
  for (const kwq::v1::Task& in : request.tasks()) {
    if (previous_job != nullptr && *previous_job == in.job_id()) continue;
    previous_job = &in.job_id();
    if (!FirstSubmitOfJob(in.job_id())) continue;
    kwq::v1::ControlRecord reg;
    reg.mutable_scope()->set_job_id(in.job_id());
    *reg.mutable_time() = now;
    reg.set_requested_by(submitter);
    plan->first.push_back({topics_.Jobs(), in.job_id(), reg.SerializeAsString(),
                           /*urgent=*/true});
    plan->new_jobs.push_back(in.job_id());
  }
  // Urgent: the caller waits. A large Submit goes batched: its caller waits
  // for all of it, and sending each record at once would cost the broker
  // dozens of small requests per Submit.
  const bool batched = request.tasks_size() >= options_.batched_from_tasks;
  // The ids seen recently (this request's earlier tasks included), decided
  // under one lock.
  std::vector<bool> duplicate(request.tasks_size(), false);
  {
    absl::MutexLock lock(&mu_);
    for (int i = 0; i < request.tasks_size(); ++i) {
      const std::string& id = request.tasks(i).id();
      if (!id.empty()) duplicate[i] = SeenRecentlyLocked(id);
    }
  }
  std::string now_bytes;  // a submit_time appended to records lacking one
  now.SerializeToString(&now_bytes);
  kwq::v1::TaskEvent event;  // reused: its memory serves the next task's
  kwq::v1::Task copy;        // for a task whose record cannot be appended to
  for (int i = 0; i < request.tasks_size(); ++i) {
    const kwq::v1::Task& in = request.tasks(i);
    std::string new_id;
    if (in.id().empty()) {
      new_id = NewTaskId();
    } else if (duplicate[i]) {
      response->add_task_ids(in.id());
      response->add_duplicate_ids(in.id());
      continue;
    }
    const std::string& id = new_id.empty() ? in.id() : new_id;
    const google::protobuf::Timestamp& submit_time =
        in.has_submit_time() ? in.submit_time() : now;
    response->add_task_ids(id);
    plan->ids.push_back(id);
    plan->task_record.push_back(plan->first.size());
    plan->first.push_back({topics_.ForPriority(in.priority()), id,
                           TaskRecord(in, new_id, now_bytes, &copy),
                           /*urgent=*/true, batched});
    api::FillFirstPendingEvent(in, id, submit_time, options_.scheduler_id,
                               &event);
    plan->pending_events.push_back({topics_.Events(), in.job_id(),
                                    event.SerializeAsString(),
                                    /*urgent=*/true, batched});
  }
  return absl::OkStatus();
}

void SubmitAdmission::Forget(const std::vector<std::string>& ids,
                             const std::vector<std::string>& jobs) {
  absl::MutexLock lock(&mu_);
  for (const auto& id : ids) seen_.erase(Fingerprint(id));
  for (const auto& job : jobs) registered_.erase(job);
}

std::string SubmitAdmission::NewTaskId() {
  return absl::StrCat(options_.scheduler_id, "-",
                      absl::ToUnixMicros(absl::Now()), "-", next_id_++);
}

bool SubmitAdmission::SeenRecentlyLocked(const std::string& id) {
  const IdFingerprint f = Fingerprint(id);
  if (!seen_.insert(f).second) return true;
  seen_order_.push_back(f);
  while (seen_order_.size() > options_.dedup_window_ids) {
    seen_.erase(seen_order_.front());
    seen_order_.pop_front();
  }
  return false;
}

bool SubmitAdmission::FirstSubmitOfJob(const std::string& job) {
  absl::MutexLock lock(&mu_);
  if (!registered_.insert(job).second) return false;
  registered_order_.push_back(job);
  while (registered_order_.size() > options_.known_jobs) {
    registered_.erase(registered_order_.front());
    registered_order_.pop_front();
  }
  return true;
}

}  // namespace kwq::scheduler
