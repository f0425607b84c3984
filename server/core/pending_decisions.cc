#include "server/core/pending_decisions.h"

namespace kwq::scheduler {

uint64_t PendingDecisions::Add(Decision d) {
  const uint64_t cookie = next_cookie_++;
  ++positions_[Key(d.pos)];
  by_cookie_.emplace(cookie, std::move(d));
  return cookie;
}

std::optional<Decision> PendingDecisions::Take(uint64_t cookie) {
  auto it = by_cookie_.find(cookie);
  if (it == by_cookie_.end()) return std::nullopt;
  Decision d = std::move(it->second);
  by_cookie_.erase(it);
  auto p = positions_.find(Key(d.pos));
  if (p != positions_.end() && --p->second == 0) positions_.erase(p);
  return d;
}

size_t PendingDecisions::CountIn(
    const std::vector<std::pair<std::string, int32_t>>& partitions) const {
  size_t n = 0;
  for (const auto& [key, count] : positions_) {
    for (const auto& [topic, partition] : partitions) {
      if (std::get<1>(key) == partition && std::get<0>(key) == topic) {
        n += static_cast<size_t>(count);
        break;
      }
    }
  }
  return n;
}

}  // namespace kwq::scheduler
