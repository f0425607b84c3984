#include "server/api/topics.h"

#include <string_view>

#include "absl/strings/str_cat.h"
#include "server/api/priorities.h"

namespace kwq::api {

Topics::Topics(std::string prefix)
    : prefix_(std::move(prefix)),
      events_(prefix_ + ".events"),
      results_(prefix_ + ".results"),
      dlq_(prefix_ + ".dlq"),
      control_(prefix_ + ".control"),
      jobs_(prefix_ + ".jobs"),
      parked_(prefix_ + ".parked") {
  for (int p = 0; p < kNumPriorities; ++p) {
    priorities_.push_back(absl::StrCat(prefix_, ".tasks.p", p));
  }
}

const std::string& Topics::ForPriority(int priority) const {
  if (!IsValidPriority(priority)) priority = priority < 0 ? 0 : kMaxPriority;
  return priorities_[priority];
}

std::optional<int> Topics::PriorityOf(const std::string& topic) const {
  // Called per record: the shared "<prefix>.tasks.p" is compared once, then
  // only the priority's digits.
  const size_t stem = priorities_[0].size() - 1;
  if (topic.size() <= stem || topic.compare(0, stem, priorities_[0], 0, stem))
    return std::nullopt;
  const std::string_view digits = std::string_view(topic).substr(stem);
  for (int p = 0; p < kNumPriorities; ++p) {
    if (digits == std::string_view(priorities_[p]).substr(stem)) return p;
  }
  return std::nullopt;
}

}  // namespace kwq::api
