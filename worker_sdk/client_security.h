#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "grpcpp/grpcpp.h"

namespace kwq {

// How a kwq client (worker, kwqctl, any tool) reaches a secured scheduler or
// tracker: TLS with the server's CA, an optional client certificate (mutual
// TLS) and an optional bearer token. Files are PEM.
struct ClientSecurity {
  bool tls = false;       // on when any TLS file is given, or forced
  std::string ca_file;    // CA that signed the server (empty: system roots)
  std::string cert_file;  // client certificate chain (mutual TLS)
  std::string key_file;   // its private key
  std::string token;      // sent as "authorization: Bearer <token>"
  // The TLS name the server certificate must hold, when the address is not it
  // (e.g. dialing an IP whose certificate says "localhost").
  std::string server_name;

  // From the environment: KWQ_TLS_CA, KWQ_TLS_CERT, KWQ_TLS_KEY, KWQ_TOKEN,
  // KWQ_TLS=1 (TLS with the system roots), KWQ_TLS_SERVER_NAME.
  static ClientSecurity FromEnv();

  // Plaintext, or TLS from the files (read now: an unreadable file is an
  // error naming it).
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> Credentials() const;
  // Channel arguments for server_name (none when empty).
  grpc::ChannelArguments ChannelArgs() const;
  // Adds the bearer token (when set) to one call.
  void Apply(grpc::ClientContext* ctx) const;
};

// Reads a whole file ("" and false when it cannot).
bool ReadFileToString(const std::string& path, std::string* out);

}  // namespace kwq
