#pragma once

#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/auth/roles.h"

namespace kwq::auth {

inline constexpr size_t kMaxPrincipalBytes = 64;

// Who a caller is, once authenticated.
struct Identity {
  std::string principal;
  RoleSet roles;
};

// The identities file: one identity per line, `#` starts a comment.
//   token  sha256:<64 hex digits>  PRINCIPAL  ROLES
//   cert   COMMON-NAME             PRINCIPAL  ROLES
// A `token` line holds the SHA-256 of a bearer token (never the token itself;
// `kwqctl token new` makes one). A `cert` line maps a client certificate's
// common name (verified against --tls_client_ca) to a principal. ROLES is a
// comma-separated list of submit, work, operate, view, admin. Principals are
// 1-64 characters of [A-Za-z0-9._:-] (they prefix worker ids).
class IdentityTable {
 public:
  static absl::StatusOr<IdentityTable> Parse(absl::string_view text);

  const Identity* ForToken(absl::string_view token) const;
  const Identity* ForCertificate(absl::string_view common_name) const;
  size_t size() const { return by_token_hash_.size() + by_cert_.size(); }

 private:
  absl::flat_hash_map<std::string, Identity> by_token_hash_;  // hex sha256
  absl::flat_hash_map<std::string, Identity> by_cert_;
};

// Lower-case hex SHA-256 of `token`.
std::string TokenHash(absl::string_view token);
// A new random bearer token ("kwq_" + 43 url-safe characters, 256 bits).
std::string NewToken();

}  // namespace kwq::auth
