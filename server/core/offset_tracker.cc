#include "server/core/offset_tracker.h"

#include <algorithm>
#include <cstdlib>

namespace kwq::scheduler {

bool OffsetTracker::Received(int64_t offset, int64_t* skipped) {
  if (offset <= last_received_) return false;
  if (skipped != nullptr) {
    const int64_t expected =
        last_received_ >= 0 ? last_received_ + 1 : first_expected_;
    *skipped = expected >= 0 && offset > expected ? offset - expected : 0;
  }
  last_received_ = offset;
  entries_.push_back({offset, false});
  ++open_;
  return true;
}

std::optional<int64_t> OffsetTracker::Decided(int64_t offset) {
  auto it =
      std::lower_bound(entries_.begin(), entries_.end(), offset,
                       [](const Entry& e, int64_t o) { return e.offset < o; });
  if (it == entries_.end() || it->offset != offset || it->decided)
    return std::nullopt;
  it->decided = true;
  --open_;
  std::optional<int64_t> committable;
  while (!entries_.empty() && entries_.front().decided) {
    committable = entries_.front().offset + 1;
    entries_.pop_front();
  }
  return committable;
}

bool OffsetTracker::Open(int64_t offset) const {
  auto it =
      std::lower_bound(entries_.begin(), entries_.end(), offset,
                       [](const Entry& e, int64_t o) { return e.offset < o; });
  return it != entries_.end() && it->offset == offset && !it->decided;
}

int64_t OffsetTracker::committable() const {
  if (!entries_.empty()) return entries_.front().offset;
  return last_received_ < 0 ? -1 : last_received_ + 1;
}

std::string OffsetTracker::DecidedAboveMetadata(size_t max_bytes) const {
  if (entries_.empty()) return "";
  const int64_t base = entries_.front().offset;
  std::string out;
  int64_t start = -1, prev = -1;
  auto flush = [&]() {
    if (start < 0) return false;
    std::string range = std::to_string(start - base);
    if (prev != start) range += "-" + std::to_string(prev - base);
    const size_t need = (out.empty() ? 3 : 1) + range.size();
    if (out.size() + need > max_bytes)
      return true;  // full: the rest runs again
    out += out.empty() ? "v1:" : ",";
    out += range;
    return false;
  };
  for (const Entry& e : entries_) {
    if (!e.decided) continue;
    if (start >= 0 && e.offset == prev + 1) {
      prev = e.offset;
      continue;
    }
    if (flush()) return out;
    start = prev = e.offset;
  }
  flush();
  return out;
}

std::vector<int64_t> OffsetTracker::ParseMetadata(const std::string& metadata,
                                                  int64_t committed) {
  std::vector<int64_t> out;
  if (metadata.rfind("v1:", 0) != 0 || committed < 0) return out;
  size_t pos = 3;
  while (pos < metadata.size()) {
    size_t comma = metadata.find(',', pos);
    if (comma == std::string::npos) comma = metadata.size();
    const std::string range = metadata.substr(pos, comma - pos);
    pos = comma + 1;
    const size_t dash = range.find('-');
    char* end = nullptr;
    const long long a = std::strtoll(range.c_str(), &end, 10);
    long long b = a;
    if (dash != std::string::npos)
      b = std::strtoll(range.c_str() + dash + 1, &end, 10);
    if (a < 0 || b < a || b - a > 10'000'000)
      return {};  // not ours: skip nothing
    for (long long d = a; d <= b; ++d) out.push_back(committed + d);
  }
  return out;
}

}  // namespace kwq::scheduler
