#include "server/auth/identities.h"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace kwq::auth {

namespace {

bool IsPrincipal(absl::string_view p) {
  if (p.empty() || p.size() > kMaxPrincipalBytes) return false;
  for (char c : p) {
    if (!absl::ascii_isalnum(c) && c != '.' && c != '_' && c != ':' &&
        c != '-') {
      return false;
    }
  }
  return true;
}

bool IsHex64(absl::string_view h) {
  if (h.size() != 64) return false;
  for (char c : h) {
    if (!absl::ascii_isxdigit(c)) return false;
  }
  return true;
}

}  // namespace

std::string TokenHash(absl::string_view token) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(token.data(), token.size(), digest, &n, EVP_sha256(), nullptr);
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(digest), n));
}

std::string NewToken() {
  unsigned char bytes[32];
  if (RAND_bytes(bytes, sizeof(bytes)) != 1) return "";
  std::string out;
  absl::WebSafeBase64Escape(
      absl::string_view(reinterpret_cast<const char*>(bytes), sizeof(bytes)),
      &out);
  return "kwq_" + out;
}

absl::StatusOr<IdentityTable> IdentityTable::Parse(absl::string_view text) {
  IdentityTable table;
  int line_no = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_no;
    if (size_t hash = line.find('#'); hash != absl::string_view::npos) {
      line = line.substr(0, hash);
    }
    std::vector<absl::string_view> f =
        absl::StrSplit(line, absl::ByAnyChar(" \t\r"), absl::SkipEmpty());
    if (f.empty()) continue;
    auto bad = [&](absl::string_view why) {
      return absl::InvalidArgumentError(
          absl::StrCat("identities line ", line_no, ": ", why));
    };
    if (f.size() != 4) return bad("want KIND CREDENTIAL PRINCIPAL ROLES");
    if (!IsPrincipal(f[2]))
      return bad("a principal is 1-64 characters of [A-Za-z0-9._:-]");
    auto roles = ParseRoles(f[3]);
    if (!roles.ok()) return bad(roles.status().message());
    Identity id{std::string(f[2]), *roles};
    if (f[0] == "token") {
      absl::string_view h = f[1];
      if (!absl::ConsumePrefix(&h, "sha256:") || !IsHex64(h)) {
        return bad("a token is given as sha256:<64 hex digits> of the token");
      }
      if (!table.by_token_hash_.emplace(absl::AsciiStrToLower(h), id).second) {
        return bad("the same token hash is listed twice");
      }
    } else if (f[0] == "cert") {
      if (!table.by_cert_.emplace(std::string(f[1]), id).second) {
        return bad("the same certificate name is listed twice");
      }
    } else {
      return bad("KIND must be token or cert");
    }
  }
  return table;
}

const Identity* IdentityTable::ForToken(absl::string_view token) const {
  auto it = by_token_hash_.find(TokenHash(token));
  return it == by_token_hash_.end() ? nullptr : &it->second;
}

const Identity* IdentityTable::ForCertificate(
    absl::string_view common_name) const {
  auto it =
      by_cert_.find(absl::string_view(common_name.data(), common_name.size()));
  return it == by_cert_.end() ? nullptr : &it->second;
}

}  // namespace kwq::auth
