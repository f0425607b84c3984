#include "server/core/lease_signer.h"

#include "gtest/gtest.h"

namespace kwq::scheduler {
namespace {

kwq::v1::FencingToken Token(const std::string& task, int attempt,
                            const std::string& lease) {
  kwq::v1::FencingToken t;
  t.set_task_id(task);
  t.set_attempt(attempt);
  t.set_lease_id(lease);
  return t;
}

TEST(LeaseSignerTest, ALeaseVerifiesForItsWorkerOnly) {
  LeaseSigner signer("shared-key-of-the-group");
  const std::string id = signer.Issue("s1", 7, "t1", 2, "worker-a");
  EXPECT_EQ(id.rfind("s1-7.", 0), 0u) << id;
  EXPECT_LE(id.size(), 128u);
  EXPECT_TRUE(signer.Verify(Token("t1", 2, id), "worker-a"));
  EXPECT_FALSE(signer.Verify(Token("t1", 2, id), "worker-b"));  // stolen
  EXPECT_FALSE(signer.Verify(Token("t2", 2, id), "worker-a"));  // other task
  EXPECT_FALSE(signer.Verify(Token("t1", 3, id), "worker-a"));  // other try
}

TEST(LeaseSignerTest, MadeUpAndSequentialIdsAreRefused) {
  LeaseSigner signer("k");
  EXPECT_FALSE(signer.Verify(Token("t1", 1, "s1-10017"), "w"));
  EXPECT_FALSE(signer.Verify(Token("t1", 1, ""), "w"));
  EXPECT_FALSE(signer.Verify(
      Token("t1", 1, "s1-1.00000000000000000000000000000000"), "w"));
}

TEST(LeaseSignerTest, InstancesSharingAKeyVerifyEachOther) {
  LeaseSigner a("group-key"), b("group-key"), c("another-key");
  const std::string id = a.Issue("a", 1, "t", 1, "w");
  EXPECT_TRUE(b.Verify(Token("t", 1, id), "w"));
  EXPECT_FALSE(c.Verify(Token("t", 1, id), "w"));
}

TEST(LeaseSignerTest, WithoutAKeyEachSignerHasItsOwnRandomOne) {
  LeaseSigner a, b;
  const std::string id = a.Issue("a", 1, "t", 1, "w");
  EXPECT_TRUE(a.Verify(Token("t", 1, id), "w"));
  EXPECT_FALSE(b.Verify(Token("t", 1, id), "w"));
}

}  // namespace
}  // namespace kwq::scheduler
