#pragma once

#include <string>

#include "grpcpp/grpcpp.h"

namespace kwq {

// The settings every kwq gRPC server uses (scheduler, tracker, dev grid):
// - a port in use is an error (gRPC would otherwise share it with SO_REUSEPORT
//   and two servers would answer on one address);
// - bounded per-connection work: at most `kMaxConcurrentStreams` concurrent
//   calls per connection, messages up to `max_message_bytes`;
// - bounded memory over all connections: gRPC's buffers share a quota of
//   `kGrpcMemoryQuotaBytes` (past it gRPC shrinks its reads and refuses new
//   calls rather than grow). gRPC 1.51 has no limit on the number of
//   connections: bound it with the process's file limit (LimitNOFILE).
inline constexpr int kMaxConcurrentStreams = 256;
inline constexpr size_t kGrpcMemoryQuotaBytes = size_t{1} << 30;
void ApplyServerSettings(grpc::ServerBuilder& builder,
                         int max_message_bytes = 64 << 20);

// "cannot listen on ADDRESS" with the likely reason.
std::string CannotListen(const std::string& address);

}  // namespace kwq
