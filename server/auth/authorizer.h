#pragma once

#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/auth/identities.h"
#include "server/auth/roles.h"
#include "server/util/clock.h"

namespace kwq::auth {

struct AuthorizerOptions {
  // The identities file (see identities.h); empty: no tokens, and a caller
  // with a verified client certificate is its common name with every role.
  std::string identities_file;
  // Client certificates are verified (mutual TLS): a caller without a token
  // may be known by its certificate.
  bool client_certificates = false;
  // How often the identities file is looked at for changes.
  absl::Duration reload_check = absl::Seconds(1);
};

// Decides who a caller is and whether it may do what it asks. Open (every
// caller "anonymous" with every role) when neither an identities file nor
// client certificates are configured: the loopback dev default. The
// identities file is read again when it changes (a file that fails to parse
// is logged and the previous table kept). Thread-safe.
class Authorizer {
 public:
  static absl::StatusOr<std::unique_ptr<Authorizer>> Create(
      AuthorizerOptions options, const Clock* clock = SystemClock::Get());

  bool open() const { return open_; }

  // `bearer_token`: the caller's "authorization: Bearer" value, if any;
  // `certificate_name`: its verified client certificate's common name, if
  // any. UNAUTHENTICATED when the caller is unknown, PERMISSION_DENIED when
  // it lacks `needed`; both messages say what would be accepted.
  absl::StatusOr<Identity> Authorize(
      std::optional<absl::string_view> bearer_token,
      std::optional<absl::string_view> certificate_name, Role needed);

 private:
  Authorizer(AuthorizerOptions options, const Clock* clock);
  absl::Status Load() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);  // reads the file
  void MaybeReload();

  const AuthorizerOptions options_;
  const Clock* clock_;
  bool open_ = false;
  absl::Mutex mu_;
  std::shared_ptr<const IdentityTable> table_ ABSL_GUARDED_BY(mu_);
  absl::Time next_check_ ABSL_GUARDED_BY(mu_);
  int64_t file_mtime_ns_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t file_size_ ABSL_GUARDED_BY(mu_) = -1;
};

}  // namespace kwq::auth
