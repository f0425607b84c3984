#include "worker_sdk/client_security.h"

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"

namespace kwq {

namespace {
std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? "" : v;
}
}  // namespace

bool ReadFileToString(const std::string& path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::stringstream s;
  s << in.rdbuf();
  *out = s.str();
  return static_cast<bool>(in) || in.eof();
}

ClientSecurity ClientSecurity::FromEnv() {
  ClientSecurity s;
  s.ca_file = Env("KWQ_TLS_CA");
  s.cert_file = Env("KWQ_TLS_CERT");
  s.key_file = Env("KWQ_TLS_KEY");
  s.token = Env("KWQ_TOKEN");
  s.server_name = Env("KWQ_TLS_SERVER_NAME");
  s.tls = Env("KWQ_TLS") == "1";
  return s;
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>>
ClientSecurity::Credentials() const {
  if (!tls && ca_file.empty() && cert_file.empty() && key_file.empty()) {
    return grpc::InsecureChannelCredentials();
  }
  if (cert_file.empty() != key_file.empty()) {
    return absl::InvalidArgumentError(
        "a client certificate needs both its certificate and its key file");
  }
  grpc::SslCredentialsOptions ssl;
  for (auto [path, into] : {std::pair{&ca_file, &ssl.pem_root_certs},
                            std::pair{&cert_file, &ssl.pem_cert_chain},
                            std::pair{&key_file, &ssl.pem_private_key}}) {
    if (!path->empty() && !ReadFileToString(*path, into)) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot read TLS file ", *path));
    }
  }
  return grpc::SslCredentials(ssl);
}

grpc::ChannelArguments ClientSecurity::ChannelArgs() const {
  grpc::ChannelArguments args;
  if (!server_name.empty()) {
    args.SetSslTargetNameOverride(server_name);
  }
  return args;
}

void ClientSecurity::Apply(grpc::ClientContext* ctx) const {
  if (!token.empty()) ctx->AddMetadata("authorization", "Bearer " + token);
}

}  // namespace kwq
