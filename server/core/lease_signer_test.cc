#include "server/core/lease_signer.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
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

// The MAC is HMAC-SHA256 (first 128 bits) of the lease's fields, as OpenSSL's
// one-shot HMAC() computes it, for keys shorter than, as long as and longer
// than SHA-256's 64-byte block (hashed first).
TEST(LeaseSignerTest, TheMacIsHmacSha256OfTheLeaseFields) {
  for (const std::string& key :
       {std::string("k"), std::string(64, 'b'), std::string(100, 'c')}) {
    LeaseSigner signer(key);
    for (int attempt : {1, 7}) {
      const std::string id = signer.Issue("s2", 42, "task-9", attempt, "w-1");
      const std::string msg = absl::StrCat(
          "s2-42", std::string(1, '\0'), "task-9", std::string(1, '\0'),
          attempt, std::string(1, '\0'), "w-1");
      unsigned char out[EVP_MAX_MD_SIZE];
      unsigned int len = 0;
      HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
           reinterpret_cast<const unsigned char*>(msg.data()), msg.size(), out,
           &len);
      ASSERT_EQ(len, 32u);
      EXPECT_EQ(id, absl::StrCat("s2-42.",
                                 absl::BytesToHexString(absl::string_view(
                                     reinterpret_cast<const char*>(out), 16))))
          << "key of " << key.size() << " bytes";
    }
  }
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
