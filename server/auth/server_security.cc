#include "server/auth/server_security.h"

#include <sys/stat.h>

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "glog/logging.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/security/tls_certificate_provider.h"
#include "grpcpp/security/tls_credentials_options.h"

namespace kwq::auth {

namespace {

bool Readable(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

grpc::Status ToGrpc(const absl::Status& s) {
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()),
                      std::string(s.message()));
}

}  // namespace

bool IsLoopbackAddress(const std::string& listen) {
  if (absl::StartsWith(listen, "unix:")) return true;
  std::string host = listen.substr(0, listen.rfind(':'));
  if (absl::StartsWith(host, "[") && absl::EndsWith(host, "]")) {
    host = host.substr(1, host.size() - 2);
  }
  if (host == "localhost" || host == "::1") return true;
  std::vector<std::string> octets = absl::StrSplit(host, '.');
  int first = 0;
  return octets.size() == 4 && absl::SimpleAtoi(octets[0], &first) &&
         first == 127;
}

absl::StatusOr<ServerSecurity> MakeServerSecurity(
    const ServerSecurityOptions& o, const std::string& listen) {
  const bool tls = !o.tls_cert_file.empty() || !o.tls_key_file.empty();
  if (tls && (o.tls_cert_file.empty() || o.tls_key_file.empty())) {
    return absl::InvalidArgumentError(
        "TLS needs both --tls_cert and --tls_key");
  }
  if (!o.tls_client_ca_file.empty() && !tls) {
    return absl::InvalidArgumentError(
        "--tls_client_ca (mutual TLS) needs --tls_cert and --tls_key");
  }
  for (const std::string* f :
       {&o.tls_cert_file, &o.tls_key_file, &o.tls_client_ca_file}) {
    if (!f->empty() && !Readable(*f)) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot read TLS file ", *f));
    }
  }
  const bool authenticated =
      !o.identities_file.empty() || !o.tls_client_ca_file.empty();
  if (!IsLoopbackAddress(listen) && !(tls && authenticated)) {
    const std::string what =
        absl::StrCat("listening on ", listen, " (not loopback) ",
                     tls             ? "with TLS but no identities"
                     : authenticated ? "with identities but without TLS "
                                       "(tokens would travel in clear)"
                                     : "without TLS or identities",
                     ": anyone who reaches the port can ",
                     authenticated ? "read the tokens"
                                   : "submit, cancel and "
                                     "act as a worker");
    if (!o.insecure) {
      return absl::FailedPreconditionError(absl::StrCat(
          what,
          ". Give --tls_cert, --tls_key and --identities_file (or "
          "--tls_client_ca), see server/auth/README.md, or --insecure to "
          "accept this"));
    }
    LOG(WARNING) << "INSECURE: " << what << " (--insecure)";
  }
  AuthorizerOptions ao;
  ao.identities_file = o.identities_file;
  ao.client_certificates = !o.tls_client_ca_file.empty();
  auto authorizer = Authorizer::Create(ao);
  if (!authorizer.ok()) return authorizer.status();
  ServerSecurity out;
  out.authorizer = std::move(*authorizer);
  if (tls) {
    auto provider =
        std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
            o.tls_key_file, o.tls_cert_file, o.tls_client_ca_file,
            std::max(1u, o.certificate_refresh_seconds));
    grpc::experimental::TlsServerCredentialsOptions tls_options(provider);
    tls_options.watch_identity_key_cert_pairs();
    if (!o.tls_client_ca_file.empty()) {
      tls_options.watch_root_certs();
      tls_options.set_cert_request_type(
          GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
    } else {
      tls_options.set_cert_request_type(
          GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
    }
    out.credentials = grpc::experimental::TlsServerCredentials(tls_options);
  } else {
    out.credentials = grpc::InsecureServerCredentials();
  }
  out.description = absl::StrCat(
      tls ? (o.tls_client_ca_file.empty() ? "TLS" : "mutual TLS") : "plaintext",
      out.authorizer->open()      ? ", open (no identities)"
      : o.identities_file.empty() ? ", client certificates"
                                  : ", identities from " + o.identities_file);
  return out;
}

grpc::Status CheckCall(Authorizer* authorizer,
                       const grpc::ServerContextBase& ctx, Role needed,
                       Identity* who) {
  if (authorizer == nullptr || authorizer->open()) {
    if (who != nullptr) *who = Identity{"anonymous", RoleSet::All()};
    return grpc::Status::OK;
  }
  std::optional<absl::string_view> token;
  const auto& md = ctx.client_metadata();
  auto it = md.find("authorization");
  if (it != md.end()) {
    absl::string_view v(it->second.data(), it->second.size());
    if (!absl::ConsumePrefix(&v, "Bearer ") &&
        !absl::ConsumePrefix(&v, "bearer ")) {
      return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                          "the authorization header must be 'Bearer TOKEN'");
    }
    token = v;
  }
  std::optional<std::string> cert;
  if (auto auth = ctx.auth_context(); auth && auth->IsPeerAuthenticated()) {
    for (const auto& v : auth->FindPropertyValues("x509_common_name")) {
      cert = std::string(v.data(), v.size());
      break;
    }
  }
  std::optional<absl::string_view> cert_view;
  if (cert) cert_view = *cert;
  auto id = authorizer->Authorize(token, cert_view, needed);
  if (!id.ok()) return ToGrpc(id.status());
  if (who != nullptr) *who = std::move(*id);
  return grpc::Status::OK;
}

}  // namespace kwq::auth
