#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "grpcpp/grpcpp.h"
#include "server/auth/authorizer.h"

namespace kwq::auth {

// How a kwq server (scheduler, tracker) secures its gRPC port; the flags of
// security_flags.h fill it.
struct ServerSecurityOptions {
  std::string tls_cert_file;       // PEM certificate chain; with tls_key_file
  std::string tls_key_file;        // PEM private key
  std::string tls_client_ca_file;  // set: clients must present a certificate
                                   // signed by this CA (mutual TLS)
  std::string identities_file;     // tokens and certificate names with roles
  bool insecure = false;           // allow a non-loopback address with neither
  // How often the TLS files are looked at for a renewed certificate.
  unsigned certificate_refresh_seconds = 10;
};

// What the server is built with: its port's credentials (TLS files are
// watched and reloaded when they change, no restart) and the authorizer
// every RPC asks.
struct ServerSecurity {
  std::shared_ptr<grpc::ServerCredentials> credentials;
  std::shared_ptr<Authorizer> authorizer;
  std::string description;  // for the start banner, e.g. "TLS, tokens"
};

// Checks the options against `listen`: a non-loopback address with neither
// TLS nor an identities file is refused unless `insecure` (then a warning is
// logged).
absl::StatusOr<ServerSecurity> MakeServerSecurity(
    const ServerSecurityOptions& options, const std::string& listen);

// True for 127.0.0.0/8, ::1, localhost and unix: addresses.
bool IsLoopbackAddress(const std::string& listen);

// Authenticates and authorizes one call: the bearer token from its
// "authorization" metadata, the common name of its verified client
// certificate. OK fills `who`; otherwise UNAUTHENTICATED or
// PERMISSION_DENIED. A null authorizer allows everything as "anonymous".
grpc::Status CheckCall(Authorizer* authorizer,
                       const grpc::ServerContextBase& ctx, Role needed,
                       Identity* who = nullptr);

}  // namespace kwq::auth
