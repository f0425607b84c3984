#include "server/api/limits.h"

#include "absl/strings/str_cat.h"

namespace kwq::api {

std::string Truncated(std::string_view text, size_t max) {
  if (text.size() <= max) return std::string(text);
  const std::string marker =
      absl::StrCat("... [", text.size(), " bytes, truncated]");
  size_t keep = max > marker.size() ? max - marker.size() : 0;
  // Do not cut a UTF-8 sequence: back up over continuation bytes.
  while (keep > 0 &&
         (static_cast<unsigned char>(text[keep]) & 0xC0) == 0x80) {
    --keep;
  }
  return (std::string(text.substr(0, keep)) + marker).substr(0, max);
}

}  // namespace kwq::api
