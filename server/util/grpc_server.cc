#include "server/util/grpc_server.h"

#include "grpcpp/resource_quota.h"

namespace kwq {

void ApplyServerSettings(grpc::ServerBuilder& builder, int max_message_bytes) {
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS,
                             kMaxConcurrentStreams);
  builder.SetMaxReceiveMessageSize(max_message_bytes);
  static grpc::ResourceQuota* quota = [] {
    auto* q = new grpc::ResourceQuota("kwq-server");
    q->Resize(kGrpcMemoryQuotaBytes);
    return q;
  }();
  builder.SetResourceQuota(*quota);
}

std::string CannotListen(const std::string& address) {
  return "cannot listen on " + address +
         " (is the port in use by another process, or the address not "
         "local?)";
}

}  // namespace kwq
