#pragma once

// kwq's priorities: 0 (lowest) to 9 (highest), one Kafka topic each.
namespace kwq::api {

inline constexpr int kNumPriorities = 10;
inline constexpr int kMaxPriority = kNumPriorities - 1;

inline constexpr bool IsValidPriority(int p) {
  return p >= 0 && p <= kMaxPriority;
}

}  // namespace kwq::api
