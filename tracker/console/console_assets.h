#pragma once

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"

namespace kwq::tracker {

struct ConsoleAsset {
  absl::string_view body;
  const char* content_type;
};

// The console's web files by URL path ("/", "/console.js", ...), compiled in
// from tracker/console/web (see embed.py).
const std::vector<std::pair<std::string, ConsoleAsset>>& ConsoleAssets();

}  // namespace kwq::tracker
