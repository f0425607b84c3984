#include "server/api/limits.h"

#include "gtest/gtest.h"

namespace kwq::api {
namespace {

TEST(LimitsTest, ShortTextIsKeptWhole) {
  EXPECT_EQ(Truncated("boom", 100), "boom");
}

TEST(LimitsTest, LongTextIsCutWithAMarkerWithinTheLimit) {
  const std::string big(2 << 20, 'x');
  const std::string cut = Truncated(big, 1000);
  EXPECT_LE(cut.size(), 1000u);
  EXPECT_NE(cut.find("2097152 bytes, truncated"), std::string::npos) << cut;
}

TEST(LimitsTest, NeverSplitsAUtf8Character) {
  std::string text;
  for (int i = 0; i < 200; ++i) text += "\xc3\xa9";  // é, two bytes each
  const std::string cut = Truncated(text, 101);
  const size_t marker = cut.find("...");
  ASSERT_NE(marker, std::string::npos);
  EXPECT_EQ(marker % 2, 0u) << "cut inside a character";
}

}  // namespace
}  // namespace kwq::api
