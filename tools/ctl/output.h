#pragma once

#include <string>
#include <vector>

#include "google/protobuf/message.h"
#include "grpcpp/grpcpp.h"

namespace kwq::ctl {

enum class Format { kTable, kJson, kJsonl };

// One proto as JSON (proto field names, zero values printed), on one line.
std::string ToJson(const google::protobuf::Message& msg);

// Prints rows under a header with aligned columns.
void PrintTable(const std::vector<std::string>& header,
                const std::vector<std::vector<std::string>>& rows);

// A failed RPC as one line a user can act on ("cannot reach the scheduler at
// ...").
std::string RpcError(const std::string& what, const std::string& address,
                     const grpc::Status& status);

// 12345 -> "12,345".
std::string Thousands(long long v);
// True for text a terminal shows as is: valid UTF-8 without control
// characters other than newline and tab.
bool IsPrintableText(const std::string& s);
// A rate for people: one decimal below 100 ("3.4"), else whole ("1,234").
std::string FormatRate(double per_second);
// Seconds as "42.0 s", "12 min", "3.5 h"; "-" when unknown (0 or less).
std::string FormatEta(double seconds);

}  // namespace kwq::ctl
