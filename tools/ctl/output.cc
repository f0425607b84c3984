#include "tools/ctl/output.h"

#include <algorithm>
#include <iostream>

#include "absl/strings/str_format.h"
#include "google/protobuf/util/json_util.h"

namespace kwq::ctl {

std::string ToJson(const google::protobuf::Message& msg) {
  std::string out;
  google::protobuf::util::JsonPrintOptions o;
  o.preserve_proto_field_names = true;
  o.always_print_primitive_fields = true;
  (void)google::protobuf::util::MessageToJsonString(msg, &out, o);
  return out;
}

void PrintTable(const std::vector<std::string>& header,
                const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width(header.size(), 0);
  for (size_t c = 0; c < header.size(); ++c) width[c] = header[c].size();
  for (const auto& r : rows) {
    for (size_t c = 0; c < r.size() && c < width.size(); ++c) {
      width[c] = std::max(width[c], r[c].size());
    }
  }
  auto line = [&](const std::vector<std::string>& cells) {
    std::string s;
    for (size_t c = 0; c < cells.size() && c < width.size(); ++c) {
      s += cells[c];
      if (c + 1 < cells.size())
        s += std::string(width[c] - cells[c].size() + 2, ' ');
    }
    std::cout << s << "\n";
  };
  line(header);
  for (const auto& r : rows) line(r);
}

std::string RpcError(const std::string& what, const std::string& address,
                     const grpc::Status& status) {
  switch (status.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return "cannot reach the " + what + " at " + address + " (" +
             status.error_message() +
             "); is it running? `kwqctl dev` starts a local grid";
    case grpc::StatusCode::UNIMPLEMENTED:
      return "the " + what + " at " + address +
             " does not implement this yet: " + status.error_message();
    default:
      return status.error_message();
  }
}

std::string Thousands(long long v) {
  std::string digits = std::to_string(v < 0 ? -v : v);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return v < 0 ? "-" + out : out;
}

bool IsPrintableText(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7f) return false;
      ++i;
      continue;
    }
    // Continuation bytes a lead byte announces (overlong 0xc0/0xc1 refused).
    size_t more = 0;
    if (c >= 0xc2 && c <= 0xdf) {
      more = 1;
    } else if (c >= 0xe0 && c <= 0xef) {
      more = 2;
    } else if (c >= 0xf0 && c <= 0xf4) {
      more = 3;
    } else {
      return false;
    }
    if (i + more >= s.size()) return false;  // cut short
    for (size_t k = 1; k <= more; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) & 0xc0) != 0x80) return false;
    }
    i += more + 1;
  }
  return true;
}

std::string FormatRate(double per_second) {
  if (per_second < 100) return absl::StrFormat("%.1f", per_second);
  return Thousands(static_cast<long long>(per_second + 0.5));
}

std::string FormatEta(double seconds) {
  if (!(seconds > 0)) return "-";
  if (seconds < 120) return absl::StrFormat("%.1f s", seconds);
  if (seconds < 7200) return absl::StrFormat("%.0f min", seconds / 60);
  return absl::StrFormat("%.1f h", seconds / 3600);
}

}  // namespace kwq::ctl
