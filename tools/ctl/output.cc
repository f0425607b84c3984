#include "tools/ctl/output.h"

#include <algorithm>
#include <iostream>

#include "absl/strings/str_format.h"
#include "google/protobuf/util/json_util.h"
#include "nlohmann/json.hpp"

namespace kwq::ctl {

namespace {

bool Is64BitInteger(const google::protobuf::FieldDescriptor* f) {
  using FD = google::protobuf::FieldDescriptor;
  return f->cpp_type() == FD::CPPTYPE_INT64 ||
         f->cpp_type() == FD::CPPTYPE_UINT64;
}

// proto3's JSON mapping prints 64-bit integers as strings; people and jq
// want numbers. Walks the message's fields alongside its JSON and turns
// exactly the 64-bit integer fields into numbers.
void NumbersFor64BitFields(const google::protobuf::Message& msg,
                           nlohmann::json* j) {
  if (!j->is_object()) return;
  const auto* d = msg.GetDescriptor();
  const auto* r = msg.GetReflection();
  for (int i = 0; i < d->field_count(); ++i) {
    const auto* f = d->field(i);
    auto it = j->find(f->name());
    if (it == j->end()) continue;
    if (Is64BitInteger(f)) {
      auto convert = [](nlohmann::json& v) {
        if (v.is_string()) {
          const std::string text = v.get<std::string>();
          if (!text.empty() &&
              text.find_first_not_of("-0123456789") == std::string::npos) {
            v = std::stoll(text);
          }
        }
      };
      if (it->is_array()) {
        for (auto& v : *it) convert(v);
      } else {
        convert(*it);
      }
    } else if (f->cpp_type() ==
                   google::protobuf::FieldDescriptor::CPPTYPE_MESSAGE &&
               !f->is_map()) {
      if (f->is_repeated()) {
        if (!it->is_array()) continue;
        const int n = r->FieldSize(msg, f);
        for (int k = 0; k < n && k < static_cast<int>(it->size()); ++k) {
          NumbersFor64BitFields(r->GetRepeatedMessage(msg, f, k), &(*it)[k]);
        }
      } else if (r->HasField(msg, f)) {
        NumbersFor64BitFields(r->GetMessage(msg, f), &*it);
      }
    }
  }
}

}  // namespace

std::string ToJson(const google::protobuf::Message& msg) {
  std::string out;
  google::protobuf::util::JsonPrintOptions o;
  o.preserve_proto_field_names = true;
  o.always_print_primitive_fields = true;
  (void)google::protobuf::util::MessageToJsonString(msg, &out, o);
  nlohmann::json j = nlohmann::json::parse(out, nullptr, false);
  if (j.is_discarded()) return out;
  NumbersFor64BitFields(msg, &j);
  return j.dump();
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
