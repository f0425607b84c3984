// --kafka_config: a librdkafka properties file for every client (TLS, SASL).
// Parsing, and on the real broker that the properties reach the clients kwq
// makes, the connect probe included.
#include <cstdlib>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "server/kafka/kafka_cluster.h"
#include "server/kafka/kafka_flags.h"
#include "server/kafka/test_backends.h"

namespace kwq {
namespace {

std::string WriteFile(const std::string& name, const std::string& text) {
  const char* dir = std::getenv("TEST_TMPDIR");
  const std::string path = absl::StrCat(dir ? dir : "/tmp", "/", name);
  std::ofstream(path) << text;
  return path;
}

TEST(KafkaPropertiesTest, ReadsKeyValueLinesAndNamesTheBadLine) {
  const auto ok =
      ReadKafkaProperties(WriteFile("ok.properties",
                                    "# TLS to the cluster\n"
                                    "\n"
                                    "security.protocol = SSL\n"
                                    "  ssl.ca.location=/etc/ca.pem  \n"
                                    "sasl.password=a=b\n"));
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->size(), 3u);
  EXPECT_EQ(ok->at("security.protocol"), "SSL");
  EXPECT_EQ(ok->at("ssl.ca.location"), "/etc/ca.pem");
  EXPECT_EQ(ok->at("sasl.password"), "a=b");  // only the first '=' splits

  const auto bad = ReadKafkaProperties(
      WriteFile("bad.properties", "client.id=x\nsecurity.protocol SSL\n"));
  ASSERT_TRUE(absl::IsInvalidArgument(bad.status())) << bad.status();
  EXPECT_NE(bad.status().message().find("bad.properties:2"), std::string::npos)
      << bad.status();
  EXPECT_EQ(bad.status().message().find("SSL"), std::string::npos)
      << "a malformed line may hold a secret: not repeated";

  EXPECT_TRUE(absl::IsNotFound(
      ReadKafkaProperties("/nonexistent/kwq.properties").status()));
  EXPECT_TRUE(absl::IsInvalidArgument(
      OpenKafka("embedded", "", absl::Seconds(1), WriteFile("e.properties", ""))
          .status()));
}

TEST(KafkaPropertiesTest, ReachEveryClientAndBadOnesFailClearly) {
  KWQ_OPEN_BACKEND_OR_SKIP(broker, testing::KafkaBackend::kRealBroker);
  const std::string bootstrap = broker->bootstrap_servers();

  // Applied: the cluster's base client config carries them (every producer
  // and consumer kwq makes starts from it); the address stays the one given.
  auto cluster = KafkaCluster::Connect(bootstrap, absl::Seconds(15),
                                       {{"client.id", "kwq-properties-test"},
                                        {"bootstrap.servers", "127.0.0.1:1"}});
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  EXPECT_EQ((*cluster)->ClientConfig().at("client.id"), "kwq-properties-test");
  EXPECT_EQ((*cluster)->ClientConfig().at("bootstrap.servers"), bootstrap);
  EXPECT_EQ((*cluster)->ConsumerConfig("g").at("client.id"),
            "kwq-properties-test");
  EXPECT_TRUE((*cluster)
                  ->EnsureTopics({{testing::UniqueName("kwqprops"), 1, {}}},
                                 absl::Seconds(15))
                  .ok());

  // Unknown to librdkafka: named at once.
  auto unknown = KafkaCluster::Connect(bootstrap, absl::Seconds(15),
                                       {{"sasl.pasword", "s3cret"}});
  ASSERT_TRUE(absl::IsInvalidArgument(unknown.status())) << unknown.status();
  EXPECT_NE(unknown.status().message().find("sasl.pasword"), std::string::npos);
  EXPECT_EQ(unknown.status().message().find("s3cret"), std::string::npos)
      << "a misspelt key's value may be a secret: not repeated";

  // The probe uses them too: TLS against this plaintext listener never gets
  // an answer, and the bounded wait says so.
  auto tls = KafkaCluster::Connect(bootstrap, absl::Seconds(2),
                                   {{"security.protocol", "ssl"}});
  EXPECT_TRUE(absl::IsUnavailable(tls.status())) << tls.status();
}

}  // namespace
}  // namespace kwq
