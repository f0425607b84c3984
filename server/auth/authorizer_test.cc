#include "server/auth/authorizer.h"

#include <unistd.h>

#include <cstdlib>
#include <fstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/auth/server_security.h"

namespace kwq::auth {
namespace {

using ::testing::HasSubstr;

std::string TempFile(const std::string& text) {
  std::string path =
      std::string(getenv("TEST_TMPDIR") ? getenv("TEST_TMPDIR") : "/tmp") +
      "/identities-XXXXXX";
  int fd = mkstemp(path.data());
  close(fd);
  std::ofstream(path) << text;
  return path;
}

TEST(RolesTest, ParsesNamesAndAdminHoldsEveryRole) {
  auto roles = ParseRoles("submit,view");
  ASSERT_TRUE(roles.ok());
  EXPECT_TRUE(roles->Has(Role::kSubmit));
  EXPECT_TRUE(roles->Has(Role::kView));
  EXPECT_FALSE(roles->Has(Role::kOperate));
  EXPECT_EQ(roles->ToString(), "submit,view");
  EXPECT_TRUE(ParseRoles("admin")->Has(Role::kWork));
  EXPECT_FALSE(ParseRoles("submit,root").ok());
  EXPECT_FALSE(ParseRoles("").ok());
}

TEST(IdentityTableTest, TokensAreKeptOnlyAsHashes) {
  const std::string token = NewToken();
  ASSERT_EQ(token.size(), 4u + 43u);
  EXPECT_NE(token, NewToken());
  auto table =
      IdentityTable::Parse("# comment\n\ntoken sha256:" + TokenHash(token) +
                           " alice submit,view  # trailing\n"
                           "cert worker-1 workers work\n");
  ASSERT_TRUE(table.ok()) << table.status();
  ASSERT_NE(table->ForToken(token), nullptr);
  EXPECT_EQ(table->ForToken(token)->principal, "alice");
  EXPECT_EQ(table->ForToken(TokenHash(token)), nullptr);  // the hash is no key
  EXPECT_EQ(table->ForCertificate("worker-1")->principal, "workers");
  EXPECT_EQ(table->ForCertificate("worker-2"), nullptr);
}

TEST(IdentityTableTest, BadLinesAreErrorsNamingTheLine) {
  for (const char* bad : {
           "token abc alice view",                  // not a hash
           "token sha256:zz alice view",            // not hex
           "password x alice view",                 // unknown kind
           "cert cn alice",                         // no roles
           "cert cn alice root",                    // unknown role
           "cert cn alice view\ncert cn bob view",  // twice
       }) {
    auto table = IdentityTable::Parse(std::string("\n") + bad);
    ASSERT_FALSE(table.ok()) << bad;
    EXPECT_THAT(std::string(table.status().message()),
                testing::ContainsRegex("line [23]:"));
  }
}

class AuthorizerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    viewer_ = NewToken();
    operator_ = NewToken();
    path_ = TempFile("token sha256:" + TokenHash(viewer_) +
                     " viewer view\n"
                     "token sha256:" +
                     TokenHash(operator_) +
                     " ops operate,view\n"
                     "cert worker-1 pool work\n");
    AuthorizerOptions o;
    o.identities_file = path_;
    o.client_certificates = true;
    auto a = Authorizer::Create(o, &clock_);
    ASSERT_TRUE(a.ok()) << a.status();
    auth_ = std::move(*a);
  }
  void TearDown() override { unlink(path_.c_str()); }

  FakeClock clock_;
  std::string viewer_, operator_, path_;
  std::unique_ptr<Authorizer> auth_;
};

TEST_F(AuthorizerTest, RolesDecide) {
  auto v = auth_->Authorize(viewer_, std::nullopt, Role::kView);
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->principal, "viewer");
  auto denied = auth_->Authorize(viewer_, std::nullopt, Role::kOperate);
  EXPECT_EQ(denied.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(std::string(denied.status().message()), HasSubstr("operate"));
  EXPECT_TRUE(auth_->Authorize(operator_, std::nullopt, Role::kOperate).ok());
  EXPECT_TRUE(auth_->Authorize(std::nullopt, "worker-1", Role::kWork).ok());
  EXPECT_EQ(
      auth_->Authorize(std::nullopt, "worker-1", Role::kSubmit).status().code(),
      absl::StatusCode::kPermissionDenied);
}

TEST_F(AuthorizerTest, UnknownCallersAreUnauthenticated) {
  EXPECT_EQ(
      auth_->Authorize(std::nullopt, std::nullopt, Role::kView).status().code(),
      absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(
      auth_->Authorize("kwq_madeup", std::nullopt, Role::kView).status().code(),
      absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(
      auth_->Authorize(std::nullopt, "stranger", Role::kView).status().code(),
      absl::StatusCode::kUnauthenticated);
  // A wrong token is not rescued by a known certificate.
  EXPECT_EQ(
      auth_->Authorize("kwq_madeup", "worker-1", Role::kWork).status().code(),
      absl::StatusCode::kUnauthenticated);
}

TEST_F(AuthorizerTest, TheFileIsReadAgainWhenItChangesAndABadOneIsNotTaken) {
  const std::string newcomer = NewToken();
  std::ofstream(path_) << "token sha256:" << TokenHash(newcomer)
                       << " newcomer admin\n";
  // Not before the next check.
  EXPECT_FALSE(auth_->Authorize(newcomer, std::nullopt, Role::kView).ok());
  clock_.Advance(absl::Seconds(2));
  EXPECT_TRUE(auth_->Authorize(newcomer, std::nullopt, Role::kView).ok());
  EXPECT_FALSE(auth_->Authorize(viewer_, std::nullopt, Role::kView).ok());
  std::ofstream(path_) << "this is not an identities file\n";
  clock_.Advance(absl::Seconds(2));
  EXPECT_TRUE(auth_->Authorize(newcomer, std::nullopt, Role::kView).ok());
}

TEST(AuthorizerOpenTest, NoIdentitiesAndNoClientCertificatesIsOpen) {
  auto a = Authorizer::Create({});
  ASSERT_TRUE(a.ok());
  EXPECT_TRUE((*a)->open());
  EXPECT_TRUE((*a)->Authorize(std::nullopt, std::nullopt, Role::kAdmin).ok());
}

TEST(AuthorizerOpenTest, MutualTlsWithoutIdentitiesTrustsTheCertificate) {
  AuthorizerOptions o;
  o.client_certificates = true;
  auto a = Authorizer::Create(o);
  ASSERT_TRUE(a.ok());
  EXPECT_FALSE((*a)->open());
  auto id = (*a)->Authorize(std::nullopt, "node-7", Role::kAdmin);
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(id->principal, "node-7");
  EXPECT_FALSE((*a)->Authorize(std::nullopt, std::nullopt, Role::kView).ok());
}

TEST(AuthorizerOpenTest, AMissingOrBadFileIsAnErrorAtStart) {
  AuthorizerOptions o;
  o.identities_file = "/nonexistent/identities";
  EXPECT_EQ(Authorizer::Create(o).status().code(), absl::StatusCode::kNotFound);
  o.identities_file = TempFile("token nothash alice view\n");
  EXPECT_EQ(Authorizer::Create(o).status().code(),
            absl::StatusCode::kInvalidArgument);
  unlink(o.identities_file.c_str());
}

TEST(ServerSecurityTest, LoopbackIsTheOnlyPlaceWithoutProtection) {
  EXPECT_TRUE(IsLoopbackAddress("127.0.0.1:50051"));
  EXPECT_TRUE(IsLoopbackAddress("127.4.5.6:0"));
  EXPECT_TRUE(IsLoopbackAddress("localhost:1"));
  EXPECT_TRUE(IsLoopbackAddress("[::1]:50051"));
  EXPECT_TRUE(IsLoopbackAddress("unix:/tmp/kwq.sock"));
  EXPECT_FALSE(IsLoopbackAddress("0.0.0.0:50051"));
  EXPECT_FALSE(IsLoopbackAddress("[::]:50051"));
  EXPECT_FALSE(IsLoopbackAddress("10.0.0.1:50051"));
  EXPECT_FALSE(IsLoopbackAddress("1270.0.0.1:50051"));

  ServerSecurityOptions open;
  EXPECT_TRUE(MakeServerSecurity(open, "127.0.0.1:0").ok());
  auto refused = MakeServerSecurity(open, "0.0.0.0:0");
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("--insecure"));
  open.insecure = true;
  EXPECT_TRUE(MakeServerSecurity(open, "0.0.0.0:0").ok());

  ServerSecurityOptions half;
  half.tls_cert_file = "/etc/hostname";
  EXPECT_EQ(MakeServerSecurity(half, "127.0.0.1:0").status().code(),
            absl::StatusCode::kInvalidArgument);
  ServerSecurityOptions missing;
  missing.tls_cert_file = "/nonexistent.pem";
  missing.tls_key_file = "/nonexistent.key";
  EXPECT_EQ(MakeServerSecurity(missing, "127.0.0.1:0").status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace kwq::auth
