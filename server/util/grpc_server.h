#pragma once

#include <string>

#include "grpcpp/grpcpp.h"

namespace kwq {

// The settings every kwq gRPC server uses (scheduler, tracker, dev grid):
// - a port in use is an error (gRPC would otherwise share it with SO_REUSEPORT
//   and two servers would answer on one address);
// - bounded per-connection work: at most `kMaxConcurrentStreams` concurrent
//   calls per connection, messages up to `max_message_bytes`.
inline constexpr int kMaxConcurrentStreams = 256;
void ApplyServerSettings(grpc::ServerBuilder& builder,
                         int max_message_bytes = 64 << 20);

// "cannot listen on ADDRESS" with the likely reason.
std::string CannotListen(const std::string& address);

}  // namespace kwq
