#include "tracker/store/keys.h"

#include <cstdio>
#include <initializer_list>
#include <limits>

namespace kwq::tracker::keys {

namespace {
constexpr std::string_view kSep{"\0", 1};

// (absl::StrCat takes absl::string_view, which is not std::string_view in this
// Abseil.)
std::string StrCat(std::initializer_list<std::string_view> parts) {
  size_t n = 0;
  for (auto p : parts) n += p.size();
  std::string out;
  out.reserve(n);
  for (auto p : parts) out.append(p.data(), p.size());
  return out;
}
}  // namespace

std::string Hex16(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx",
                static_cast<unsigned long long>(v));
  return std::string(buf, 16);
}

uint64_t ParseHex16(std::string_view s) {
  uint64_t v = 0;
  for (char c : s.substr(0, 16)) {
    v <<= 4;
    if (c >= '0' && c <= '9') v |= static_cast<uint64_t>(c - '0');
    if (c >= 'a' && c <= 'f') v |= static_cast<uint64_t>(c - 'a' + 10);
  }
  return v;
}

std::string Task(std::string_view task) { return StrCat({"t", kSep, task}); }
std::string JobTaskPrefix(std::string_view job) {
  return StrCat({"x", kSep, job, kSep});
}
std::string JobTask(std::string_view job, std::string_view task) {
  return StrCat({JobTaskPrefix(job), task});
}
std::string StateTaskPrefix(std::string_view job, kwq::v1::TaskState state) {
  const char s = static_cast<char>('A' + static_cast<int>(state));
  return StrCat({"s", kSep, job, kSep, std::string_view(&s, 1)});
}
std::string StateTask(std::string_view job, kwq::v1::TaskState state,
                      std::string_view task) {
  return StrCat({StateTaskPrefix(job, state), task});
}
std::string TagTaskPrefix(std::string_view job, std::string_view tag) {
  return StrCat({"g", kSep, job, kSep, tag, kSep});
}
std::string TagTask(std::string_view job, std::string_view tag,
                    std::string_view task) {
  return StrCat({TagTaskPrefix(job, tag), task});
}
std::string Job(std::string_view job) { return StrCat({"j", kSep, job}); }
std::string JobTagPrefix(std::string_view job) {
  return StrCat({"a", kSep, job, kSep});
}
std::string JobTag(std::string_view job, std::string_view tag) {
  return StrCat({JobTagPrefix(job), tag});
}
std::string JobList(int64_t first_seen_micros, std::string_view job) {
  const uint64_t inverted = static_cast<uint64_t>(
      std::numeric_limits<int64_t>::max() - first_seen_micros);
  return StrCat({kJobListPrefix, Hex16(inverted), job});
}
std::string Second(int64_t second) {
  return StrCat({kSecondPrefix, Hex16(static_cast<uint64_t>(second))});
}
std::string OffsetPrefix(std::string_view topic) {
  return StrCat({"o", kSep, topic, kSep});
}
std::string Offset(std::string_view topic, int32_t partition) {
  return StrCat({OffsetPrefix(topic), Hex16(static_cast<uint64_t>(partition))});
}

}  // namespace kwq::tracker::keys
