#include "server/api/task_validation.h"

#include <array>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "server/api/priorities.h"

namespace kwq::api {
namespace {

// Input quoted in an error message: escaped and cut, never echoed whole (a
// megabyte id would not fit in a status message).
std::string Quote(const std::string& s) {
  constexpr size_t kMax = 64;
  std::string out = absl::CHexEscape(s.substr(0, kMax));
  if (s.size() > kMax) absl::StrAppend(&out, "...(", s.size(), " bytes)");
  return absl::StrCat("\"", out, "\"");
}

std::string Where(const kwq::v1::Task& task, int index) {
  const std::string what =
      index < 0 ? "the record" : absl::StrCat("tasks[", index, "]");
  return task.id().empty() || !IsValidId(task.id())
             ? what
             : absl::StrCat(what, " (id \"", task.id(), "\")");
}

// A Timestamp a clock can hold: seconds within years 1-9999, nanos 0-999999999
// (protobuf's own rules for Timestamp).
bool ValidTimestamp(const google::protobuf::Timestamp& t) {
  return t.seconds() >= -62135596800 && t.seconds() <= 253402300799 &&
         t.nanos() >= 0 && t.nanos() <= 999999999;
}

absl::Status CheckKeys(
    const google::protobuf::RepeatedPtrField<std::string>& keys,
    const char* field, const std::string& where,
    const ValidationLimits& limits) {
  if (keys.size() > limits.max_keys) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": ", field, " has ", keys.size(),
                     " entries; at most ", limits.max_keys));
  }
  for (const std::string& k : keys) {
    if (k.empty() || k.size() > limits.max_key_bytes) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": ", field, " entry ", Quote(k), " must be 1-",
                       limits.max_key_bytes, " bytes"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

namespace {

// [A-Za-z0-9._:-], by byte.
constexpr std::array<bool, 256> IdBytes() {
  std::array<bool, 256> ok{};
  for (int c = 0; c < 256; ++c) {
    ok[c] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
            (c >= '0' && c <= '9') || c == '.' || c == '_' || c == ':' ||
            c == '-';
  }
  return ok;
}
constexpr std::array<bool, 256> kIdByte = IdBytes();

}  // namespace

bool IsValidId(const std::string& id) {
  if (id.empty() || id.size() > 128) return false;
  bool ok = true;  // no early exit: a branch-free loop over at most 128 bytes
  for (unsigned char c : id) ok &= kIdByte[c];
  return ok;
}

namespace {

// The checks, naming the task as `where` in an error.
absl::Status CheckTask(const kwq::v1::Task& task,
                       const ValidationLimits& limits,
                       const std::string& where) {
  if (!task.id().empty() && !IsValidId(task.id())) {
    return absl::InvalidArgumentError(absl::StrCat(
        where, ": id must be 1-128 characters of [A-Za-z0-9._:-]"));
  }
  if (task.job_id().empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": job_id is required"));
  }
  if (!IsValidId(task.job_id())) {
    return absl::InvalidArgumentError(absl::StrCat(
        where, ": job_id must be 1-128 characters of [A-Za-z0-9._:-]"));
  }
  if (!IsValidPriority(task.priority())) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": priority ", task.priority(), " is outside 0-9"));
  }
  if (task.payload().size() > limits.max_payload_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        where, ": payload is ", task.payload().size(), " bytes; the limit is ",
        limits.max_payload_bytes, " (--max_payload_bytes)"));
  }
  if (task.tags_size() > limits.max_tags) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": tags has ", task.tags_size(),
                     " entries; at most ", limits.max_tags));
  }
  for (const auto& [k, v] : task.tags()) {
    if (k.empty() || k.size() > limits.max_tag_key_bytes) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": tag key ", Quote(k), " must be 1-",
                       limits.max_tag_key_bytes, " bytes"));
    }
    if (v.size() > limits.max_tag_value_bytes) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": tag ", Quote(k), " value is longer than ",
                       limits.max_tag_value_bytes, " bytes"));
    }
  }
  if (auto s = CheckKeys(task.affinity_keys(), "affinity_keys", where, limits);
      !s.ok()) {
    return s;
  }
  if (auto s =
          CheckKeys(task.required_labels(), "required_labels", where, limits);
      !s.ok()) {
    return s;
  }
  if (task.max_attempts() < 0 || task.max_attempts() > limits.max_attempts) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": max_attempts ", task.max_attempts(),
                     " is outside 0-", limits.max_attempts));
  }
  if (task.has_timeout() &&
      (task.timeout().seconds() < 0 || task.timeout().nanos() < 0 ||
       task.timeout().nanos() > 999999999 ||
       task.timeout().seconds() > 315576000000)) {
    return absl::InvalidArgumentError(absl::StrCat(
        where,
        ": timeout must be a non-negative Duration (nanos 0-999999999)"));
  }
  if (task.has_submit_time() && !ValidTimestamp(task.submit_time())) {
    return absl::InvalidArgumentError(absl::StrCat(
        where, ": submit_time is not a valid Timestamp (nanos 0-999999999)"));
  }
  if (task.has_not_before() && !ValidTimestamp(task.not_before())) {
    return absl::InvalidArgumentError(absl::StrCat(
        where, ": not_before is not a valid Timestamp (nanos 0-999999999)"));
  }
  if (task.attempt() < 0 || task.infra_failures() < 0 ||
      task.task_errors() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": attempt counters must not be negative"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateTask(const kwq::v1::Task& task, int index,
                          const ValidationLimits& limits) {
  // Checked without the task's name first: building it for every valid task
  // was a string or two per task on the Submit and dispatch paths. Only an
  // invalid task is checked again, to name it in the error.
  absl::Status s = CheckTask(task, limits, "");
  if (s.ok()) return s;
  return CheckTask(task, limits, Where(task, index));
}

}  // namespace kwq::api
