#include "server/auth/security_flags.h"

#include "gflags/gflags.h"

DEFINE_string(tls_cert, "",
              "PEM certificate chain of this server: serve TLS (with "
              "--tls_key; both files are re-read when they change)");
DEFINE_string(tls_key, "", "PEM private key of --tls_cert");
DEFINE_string(tls_client_ca, "",
              "PEM CA bundle: clients must present a certificate it signed "
              "(mutual TLS); its common name identifies the caller");
DEFINE_string(identities_file, "",
              "who may do what: lines 'token sha256:HEX PRINCIPAL ROLES' or "
              "'cert COMMON-NAME PRINCIPAL ROLES' (roles: submit, work, "
              "operate, view, admin; `kwqctl token new` makes a token); "
              "re-read when it changes. Empty and no --tls_client_ca: every "
              "caller may do everything (the loopback dev default)");
DEFINE_bool(insecure, false,
            "allow a non-loopback --listen without TLS and identities "
            "(anyone who reaches the port may submit, cancel and work)");

namespace kwq::auth {

ServerSecurityOptions ServerSecurityFromFlags() {
  ServerSecurityOptions o;
  o.tls_cert_file = FLAGS_tls_cert;
  o.tls_key_file = FLAGS_tls_key;
  o.tls_client_ca_file = FLAGS_tls_client_ca;
  o.identities_file = FLAGS_identities_file;
  o.insecure = FLAGS_insecure;
  return o;
}

}  // namespace kwq::auth
