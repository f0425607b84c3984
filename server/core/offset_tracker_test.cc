#include "server/core/offset_tracker.h"

#include "gtest/gtest.h"

namespace kwq::scheduler {
namespace {

TEST(OffsetTrackerTest, CommitsOnlyTheContiguousDecidedPrefix) {
  OffsetTracker t;
  for (int64_t o : {10, 11, 12, 15}) t.Received(o);
  EXPECT_EQ(t.open(), 4u);
  EXPECT_EQ(t.Decided(11), std::nullopt);  // 10 is still open
  EXPECT_EQ(t.Decided(12), std::nullopt);
  EXPECT_EQ(t.Decided(10), std::optional<int64_t>(13));  // 10, 11, 12 decided
  EXPECT_EQ(t.open(), 1u);
  EXPECT_EQ(t.Decided(15),
            std::optional<int64_t>(16));  // gaps (compaction) are fine
  EXPECT_EQ(t.open(), 0u);
}

TEST(OffsetTrackerTest, RefusesOffsetsAtOrBelowWhatWasReceived) {
  OffsetTracker t;
  EXPECT_TRUE(t.Received(5));
  EXPECT_TRUE(t.Received(6));
  EXPECT_EQ(t.Decided(5), std::optional<int64_t>(6));
  EXPECT_FALSE(t.Received(5));  // rewound below the prefix
  EXPECT_FALSE(t.Received(6));  // still open
  EXPECT_EQ(t.open(), 1u);
  EXPECT_TRUE(t.Received(7));
}

TEST(OffsetTrackerTest, IgnoresUnknownAndRepeatedDecisions) {
  OffsetTracker t;
  t.Received(1);
  t.Received(2);
  EXPECT_EQ(t.Decided(7), std::nullopt);
  EXPECT_EQ(t.Decided(2), std::nullopt);
  EXPECT_EQ(t.Decided(2), std::nullopt);  // twice: no effect
  EXPECT_EQ(t.open(), 1u);
  EXPECT_EQ(t.Decided(1), std::optional<int64_t>(3));
}

}  // namespace
}  // namespace kwq::scheduler
