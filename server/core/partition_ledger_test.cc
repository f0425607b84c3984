#include "server/core/partition_ledger.h"

#include "gtest/gtest.h"

namespace kwq::scheduler {
namespace {

const std::string kTopic = "kwq.tasks.p5";

RecordPosition At(int64_t offset, int32_t partition = 0) {
  return {kTopic, partition, offset};
}

TEST(PartitionLedgerTest, CommitsTheDecidedPrefixWithTheRecordsAboveIt) {
  PartitionLedger ledger;
  ledger.OnAssigned({{kTopic, 0, -1, ""}});
  for (int64_t o = 0; o < 5; ++o) ASSERT_TRUE(ledger.Received(At(o)));
  EXPECT_FALSE(ledger.Received(At(3)));  // a rewound consumer
  ledger.Decide(At(0));
  ledger.Decide(At(2));
  ledger.Decide(At(3));
  auto commits = ledger.TakeCommits();
  ASSERT_EQ(commits.size(), 1u);
  EXPECT_EQ(commits[0].next_offset, 1);
  EXPECT_EQ(commits[0].metadata, "v1:1-2");
  EXPECT_TRUE(ledger.TakeCommits().empty());  // nothing changed since
}

TEST(PartitionLedgerTest, RecordsTheCommitMetadataNamesAreSkipped) {
  PartitionLedger ledger;
  ledger.OnAssigned({{kTopic, 0, 10, "v1:1,3"}});
  ASSERT_TRUE(ledger.Received(At(10)));
  EXPECT_FALSE(ledger.DecidedBefore(At(10)));
  ASSERT_TRUE(ledger.Received(At(11)));
  EXPECT_TRUE(ledger.DecidedBefore(At(11)));
  ASSERT_TRUE(ledger.Received(At(13)));
  EXPECT_TRUE(ledger.DecidedBefore(At(13)));
}

// Issue 20: records deleted by retention before they were decided are counted
// (from the committed offset and between records), not skipped silently; a
// rewind or a partition with nothing committed is no gap.
TEST(PartitionLedgerTest, RecordsNeverReadAreCounted) {
  PartitionLedger ledger;
  ledger.OnAssigned({{kTopic, 0, 10, ""}, {kTopic, 1, -1, ""}});
  ASSERT_TRUE(ledger.Received(At(10)));
  ASSERT_TRUE(ledger.Received(At(11)));
  EXPECT_EQ(ledger.unread_records(), 0);
  ASSERT_TRUE(ledger.Received(At(15)));  // 12, 13, 14 are gone
  EXPECT_EQ(ledger.unread_records(), 3);
  EXPECT_FALSE(ledger.Received(At(11)));  // a rewind
  ASSERT_TRUE(ledger.Received(At(16)));
  // Nothing committed: where the partition starts is unknown, so the first
  // record counts nothing; after it, gaps count as anywhere.
  ASSERT_TRUE(ledger.Received(At(40, 1)));
  ASSERT_TRUE(ledger.Received(At(41, 1)));
  EXPECT_EQ(ledger.unread_records(), 3);
  ASSERT_TRUE(ledger.Received(At(45, 1)));  // 42, 43, 44 are gone
  EXPECT_EQ(ledger.unread_records(), 6);
  // Given back with a committed offset below the log's start.
  ledger.OnRevoked({{kTopic, 0}});
  ledger.OnAssigned({{kTopic, 0, 17, ""}});
  ASSERT_TRUE(ledger.Received(At(20)));
  EXPECT_EQ(ledger.unread_records(), 9);
  // A record of a partition not assigned here (racing a revoke) starts
  // unknown too.
  ASSERT_TRUE(ledger.Received(At(7, 2)));
  ASSERT_TRUE(ledger.Received(At(9, 2)));
  EXPECT_EQ(ledger.unread_records(), 10);
}

// Issue 16: a decision made durable while its partition was away must not be
// lost when the partition comes back (its record is skipped, not run again).
TEST(PartitionLedgerTest, ADecisionMadeWhileThePartitionIsAwayIsKept) {
  PartitionLedger ledger;
  ledger.OnAssigned({{kTopic, 0, -1, ""}});
  ASSERT_TRUE(ledger.Received(At(0)));
  ASSERT_TRUE(ledger.Received(At(1)));
  ledger.OnRevoked({{kTopic, 0}});
  EXPECT_FALSE(ledger.Owns(kTopic, 0));
  ledger.Decide(At(1));  // durable now, partition away
  ledger.OnAssigned({{kTopic, 0, 0, ""}});
  ASSERT_TRUE(ledger.Received(At(0)));
  EXPECT_FALSE(ledger.DecidedBefore(At(0)));  // undecided: runs
  ASSERT_TRUE(ledger.Received(At(1)));
  EXPECT_TRUE(ledger.DecidedBefore(At(1)));  // decided away: skipped
}

TEST(PartitionLedgerTest, ADecisionBeforeItsRecordCameAgainSkipsIt) {
  PartitionLedger ledger;
  ledger.OnAssigned({{kTopic, 0, -1, ""}});
  ASSERT_TRUE(ledger.Received(At(4)));
  ledger.OnRevoked({{kTopic, 0}});
  ledger.OnAssigned({{kTopic, 0, 4, ""}});
  ledger.Decide(At(4));  // the attempt ended before the record came again
  ASSERT_TRUE(ledger.Received(At(4)));
  EXPECT_TRUE(ledger.DecidedBefore(At(4)));
  auto commits = ledger.TakeCommits();
  ASSERT_EQ(commits.size(), 1u);
  EXPECT_EQ(commits[0].next_offset, 5);
}

TEST(PartitionLedgerTest, APrefixWhoseCommitFailedIsSkippedWhenGivenBack) {
  PartitionLedger ledger;
  ledger.OnAssigned({{kTopic, 0, -1, ""}});
  for (int64_t o = 0; o < 4; ++o) ASSERT_TRUE(ledger.Received(At(o)));
  for (int64_t o = 0; o < 3; ++o) ledger.Decide(At(o));
  ledger.OnRevoked({{kTopic, 0}});  // its commit failed: committed stays 0
  ledger.OnAssigned({{kTopic, 0, 0, ""}});
  for (int64_t o = 0; o < 3; ++o) {
    ASSERT_TRUE(ledger.Received(At(o)));
    EXPECT_TRUE(ledger.DecidedBefore(At(o))) << o;
  }
  ASSERT_TRUE(ledger.Received(At(3)));
  EXPECT_FALSE(ledger.DecidedBefore(At(3)));
}

TEST(PartitionLedgerTest, RememberedDecisionsAreBoundedAndPrunedByTheCommit) {
  PartitionLedger ledger;
  ledger.OnRevoked({});
  for (int64_t o = 0; o < 100; ++o) ledger.Decide(At(o, 3));  // never owned
  EXPECT_EQ(ledger.remembered(), 100u);
  ledger.OnAssigned({{kTopic, 3, 60, ""}});  // committed past 60 of them
  EXPECT_EQ(ledger.remembered(), 40u);
}

}  // namespace
}  // namespace kwq::scheduler
