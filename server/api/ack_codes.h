#pragma once

// UpdateAck.code values (proto/kwq/v1/worker.proto): gRPC status numbers, so a
// worker in any language reads them the same way.
namespace kwq::api {

inline constexpr int kAckOk = 0;
// The update itself is wrong (a state a worker may not send, a result or
// error over the limit): sending it again does not help.
inline constexpr int kAckInvalidArgument = 3;
// The attempt is no longer this worker's (stale lease): drop the update.
inline constexpr int kAckFailedPrecondition = 9;
// Not durable yet: send the update again.
inline constexpr int kAckUnavailable = 14;

}  // namespace kwq::api
