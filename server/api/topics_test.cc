#include "server/api/topics.h"

#include "gtest/gtest.h"
#include "server/api/priorities.h"

namespace kwq::api {
namespace {

TEST(TopicsTest, NamesUnderThePrefix) {
  Topics t("grid1");
  EXPECT_EQ(t.ForPriority(0), "grid1.tasks.p0");
  EXPECT_EQ(t.ForPriority(9), "grid1.tasks.p9");
  EXPECT_EQ(t.Events(), "grid1.events");
  EXPECT_EQ(t.Results(), "grid1.results");
  EXPECT_EQ(t.Dlq(), "grid1.dlq");
  EXPECT_EQ(t.Control(), "grid1.control");
  EXPECT_EQ(t.Jobs(), "grid1.jobs");
  EXPECT_EQ(t.Parked(), "grid1.parked");
  EXPECT_EQ(t.Priorities().size(), static_cast<size_t>(kNumPriorities));
}

TEST(TopicsTest, PriorityOfATopicName) {
  Topics t("kwq");
  EXPECT_EQ(t.PriorityOf("kwq.tasks.p7"), 7);
  EXPECT_EQ(t.PriorityOf("kwq.tasks.p10"), std::nullopt);
  EXPECT_EQ(t.PriorityOf("other.tasks.p7"), std::nullopt);
  EXPECT_EQ(t.PriorityOf("kwq.events"), std::nullopt);
  for (int p = 0; p < kNumPriorities; ++p) {
    EXPECT_EQ(t.PriorityOf(t.ForPriority(p)), p);
  }
  // Near misses of the shared stem and of the digits.
  for (const char* name :
       {"kwq.tasks.p", "kwq.tasks.q7", "kwq.tasks.p07", "kwq.tasks.p7 ",
        "kwq.tasks.p-1", "", "kwq.tasks.", "xwq.tasks.p7"}) {
    EXPECT_EQ(t.PriorityOf(name), std::nullopt) << name;
  }
}

TEST(TopicsTest, OutOfRangePriorityIsClampedNotACrash) {
  Topics t("kwq");
  EXPECT_EQ(t.ForPriority(-3), "kwq.tasks.p0");
  EXPECT_EQ(t.ForPriority(42), "kwq.tasks.p9");
}

}  // namespace
}  // namespace kwq::api
