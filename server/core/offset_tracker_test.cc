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

TEST(OffsetTrackerTest, CountsTheOffsetsSkippedBeforeARecord) {
  OffsetTracker from_committed(10);
  int64_t skipped = -1;
  ASSERT_TRUE(from_committed.Received(12, &skipped));
  EXPECT_EQ(skipped, 2);  // 10 and 11 never came
  ASSERT_TRUE(from_committed.Received(13, &skipped));
  EXPECT_EQ(skipped, 0);
  EXPECT_FALSE(from_committed.Received(5, &skipped));  // a rewind
  ASSERT_TRUE(from_committed.Received(20, &skipped));
  EXPECT_EQ(skipped, 6);
  OffsetTracker unknown;  // nothing committed: the start is unknown
  ASSERT_TRUE(unknown.Received(100, &skipped));
  EXPECT_EQ(skipped, 0);
  ASSERT_TRUE(unknown.Received(103, &skipped));
  EXPECT_EQ(skipped, 2);
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

TEST(OffsetTrackerTest,
     DecidedOffsetsAboveThePrefixRoundTripThroughTheMetadata) {
  OffsetTracker t;
  for (int64_t o = 100; o < 120; ++o) t.Received(o);
  for (int64_t o : {102, 103, 104, 109, 115, 116}) t.Decided(o);
  EXPECT_EQ(t.committable(), 100);
  const std::string md = t.DecidedAboveMetadata();
  EXPECT_EQ(md, "v1:2-4,9,15-16");
  EXPECT_EQ(OffsetTracker::ParseMetadata(md, t.committable()),
            (std::vector<int64_t>{102, 103, 104, 109, 115, 116}));
  // Too small a budget keeps the lowest ranges only.
  EXPECT_EQ(t.DecidedAboveMetadata(7), "v1:2-4");
  EXPECT_TRUE(OffsetTracker::ParseMetadata("somebody else's", 5).empty());
  EXPECT_TRUE(OffsetTracker::ParseMetadata("v1:7-3", 5).empty());
  OffsetTracker empty;
  EXPECT_EQ(empty.DecidedAboveMetadata(), "");
}

}  // namespace
}  // namespace kwq::scheduler
