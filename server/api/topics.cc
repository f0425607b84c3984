#include "server/api/topics.h"

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
  for (int p = 0; p < kNumPriorities; ++p) {
    if (topic == priorities_[p]) return p;
  }
  return std::nullopt;
}

}  // namespace kwq::api
