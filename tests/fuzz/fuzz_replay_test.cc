// Runs every fuzz target on its checked-in seed corpus and on deterministic
// mutations of it (bit flips, cuts, splices, random bytes): what libFuzzer
// found once stays found, in every CI run, without clang. tools/fuzz/run is the
// real fuzzing (libFuzzer, ASan, UBSan).
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/fuzz/fuzz_targets.h"

namespace kwq::fuzz {
namespace {

std::vector<std::string> Corpus(const std::string& target) {
  std::vector<std::string> out;
  const char* root = std::getenv("TEST_SRCDIR");
  const std::filesystem::path dir = std::filesystem::path(root ? root : ".") /
                                    "kwq/tests/fuzz/corpus" / target;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    std::ifstream in(entry.path(), std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    out.push_back(s.str());
  }
  return out;
}

class FuzzReplayTest : public ::testing::TestWithParam<std::string> {};

TEST_P(FuzzReplayTest, SeedsAndMutationsNeitherCrashNorTripAChecks) {
  Target target = ByName(GetParam());
  ASSERT_NE(target, nullptr);
  const std::vector<std::string> seeds = Corpus(GetParam());
  ASSERT_FALSE(seeds.empty()) << "no seed corpus for " << GetParam();
  uint64_t rng = 0x9e3779b97f4a7c15ULL;
  auto next = [&] {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
  };
  int runs = 0;
  for (const std::string& s : seeds) {
    target(reinterpret_cast<const uint8_t*>(s.data()), s.size());
    ++runs;
  }
  for (int i = 0; i < 3000; ++i) {
    std::string input = seeds[next() % seeds.size()];
    switch (next() % 4) {
      case 0:  // flip bits
        for (int k = 0; k < 4 && !input.empty(); ++k) {
          input[next() % input.size()] ^= static_cast<char>(1 << (next() % 8));
        }
        break;
      case 1:  // cut
        input.resize(input.empty() ? 0 : next() % input.size());
        break;
      case 2:  // splice with another seed
        input += seeds[next() % seeds.size()];
        break;
      case 3:  // random bytes
        for (int k = 0; k < 64; ++k) input += static_cast<char>(next());
        break;
    }
    target(reinterpret_cast<const uint8_t*>(input.data()), input.size());
    ++runs;
  }
  EXPECT_EQ(runs, static_cast<int>(seeds.size()) + 3000);
}

INSTANTIATE_TEST_SUITE_P(Targets, FuzzReplayTest,
                         ::testing::Values("task_record", "worker_session",
                                           "control_record", "tracker_event"));

}  // namespace
}  // namespace kwq::fuzz
