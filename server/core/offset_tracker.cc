#include "server/core/offset_tracker.h"

#include <algorithm>

namespace kwq::scheduler {

bool OffsetTracker::Received(int64_t offset) {
  if (offset <= last_received_) return false;
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

}  // namespace kwq::scheduler
