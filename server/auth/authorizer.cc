#include "server/auth/authorizer.h"

#include <sys/stat.h>

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"

namespace kwq::auth {

namespace {

bool StatFile(const std::string& path, int64_t* mtime_ns, int64_t* size) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return false;
  *mtime_ns = int64_t{st.st_mtim.tv_sec} * 1'000'000'000 + st.st_mtim.tv_nsec;
  *size = st.st_size;
  return true;
}

}  // namespace

Authorizer::Authorizer(AuthorizerOptions options, const Clock* clock)
    : options_(std::move(options)), clock_(clock) {
  open_ = options_.identities_file.empty() && !options_.client_certificates;
}

absl::StatusOr<std::unique_ptr<Authorizer>> Authorizer::Create(
    AuthorizerOptions options, const Clock* clock) {
  std::unique_ptr<Authorizer> a(new Authorizer(std::move(options), clock));
  if (!a->options_.identities_file.empty()) {
    absl::MutexLock lock(&a->mu_);
    if (absl::Status s = a->Load(); !s.ok()) return s;
  }
  return a;
}

absl::Status Authorizer::Load() {
  int64_t mtime = 0, size = -1;
  if (!StatFile(options_.identities_file, &mtime, &size)) {
    return absl::NotFoundError(absl::StrCat("cannot read the identities file ",
                                            options_.identities_file));
  }
  std::ifstream in(options_.identities_file);
  std::stringstream text;
  text << in.rdbuf();
  if (!in) {
    return absl::NotFoundError(absl::StrCat("cannot read the identities file ",
                                            options_.identities_file));
  }
  auto table = IdentityTable::Parse(text.str());
  if (!table.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(options_.identities_file, ": ", table.status().message()));
  }
  table_ = std::make_shared<const IdentityTable>(std::move(*table));
  file_mtime_ns_ = mtime;
  file_size_ = size;
  next_check_ = clock_->Now() + options_.reload_check;
  return absl::OkStatus();
}

void Authorizer::MaybeReload() {
  if (options_.identities_file.empty()) return;
  absl::MutexLock lock(&mu_);
  const absl::Time now = clock_->Now();
  if (now < next_check_) return;
  next_check_ = now + options_.reload_check;
  int64_t mtime = 0, size = -1;
  if (!StatFile(options_.identities_file, &mtime, &size)) return;
  if (mtime == file_mtime_ns_ && size == file_size_) return;
  if (absl::Status s = Load(); !s.ok()) {
    LOG(ERROR) << "identities file not reloaded, the previous one stays: "
               << s.message();
    file_mtime_ns_ = mtime;  // do not log again until it changes
    file_size_ = size;
  } else {
    LOG(INFO) << "identities file reloaded: " << table_->size()
              << " identities";
  }
}

absl::StatusOr<Identity> Authorizer::Authorize(
    std::optional<absl::string_view> bearer_token,
    std::optional<absl::string_view> certificate_name, Role needed) {
  if (open_) return Identity{"anonymous", RoleSet::All()};
  MaybeReload();
  std::shared_ptr<const IdentityTable> table;
  {
    absl::MutexLock lock(&mu_);
    table = table_;
  }
  std::optional<Identity> who;
  if (bearer_token.has_value()) {
    const Identity* id = table ? table->ForToken(*bearer_token) : nullptr;
    if (id == nullptr) {
      return absl::UnauthenticatedError(
          "the bearer token is not known to this server");
    }
    who = *id;
  } else if (certificate_name.has_value()) {
    const Identity* id =
        table ? table->ForCertificate(*certificate_name) : nullptr;
    if (id != nullptr) {
      who = *id;
    } else if (options_.identities_file.empty()) {
      // Mutual TLS without an identities file: the CA vouches for everyone.
      who =
          Identity{std::string(certificate_name->substr(0, kMaxPrincipalBytes)),
                   RoleSet::All()};
    } else {
      return absl::UnauthenticatedError(
          "the client certificate's name is not in the identities file "
          "(and no bearer token was sent)");
    }
  } else {
    return absl::UnauthenticatedError(
        "no credentials: send a bearer token (kwqctl --token or KWQ_TOKEN) "
        "or a client certificate");
  }
  if (!who->roles.Has(needed)) {
    return absl::PermissionDeniedError(
        absl::StrCat(who->principal, " (roles: ", who->roles.ToString(),
                     ") needs the '", RoleName(needed), "' role for this"));
  }
  return *who;
}

}  // namespace kwq::auth
