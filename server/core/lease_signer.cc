#include "server/core/lease_signer.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <random>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace kwq::scheduler {
namespace {

constexpr size_t kMacBytes = 16;  // 128 bits, 32 hex characters

std::string RandomKey() {
  std::random_device rd;  // the OS's entropy source
  std::string key(32, '\0');
  for (char& c : key) c = static_cast<char>(rd() & 0xff);
  return key;
}

}  // namespace

LeaseSigner::LeaseSigner(std::string key) { SetKey(std::move(key)); }

void LeaseSigner::SetKey(std::string key) {
  key_ = key.empty() ? RandomKey() : std::move(key);
}

std::string LeaseSigner::Mac(const std::string& prefix,
                             const std::string& task_id, int attempt,
                             const std::string& worker_id) const {
  const std::string msg =
      absl::StrCat(prefix, std::string(1, '\0'), task_id, std::string(1, '\0'),
                   attempt, std::string(1, '\0'), worker_id);
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key_.data(), static_cast<int>(key_.size()),
       reinterpret_cast<const unsigned char*>(msg.data()), msg.size(), out,
       &len);
  return absl::BytesToHexString(absl::string_view(
      reinterpret_cast<const char*>(out), std::min<size_t>(len, kMacBytes)));
}

std::string LeaseSigner::Issue(const std::string& scheduler_id, uint64_t serial,
                               const std::string& task_id, int attempt,
                               const std::string& worker_id) const {
  const std::string prefix = absl::StrCat(scheduler_id, "-", serial);
  return absl::StrCat(prefix, ".", Mac(prefix, task_id, attempt, worker_id));
}

bool LeaseSigner::Verify(const kwq::v1::FencingToken& token,
                         const std::string& worker_id) const {
  const std::string& id = token.lease_id();
  const size_t dot = id.rfind('.');
  if (dot == std::string::npos || id.size() - dot - 1 != 2 * kMacBytes) {
    return false;
  }
  const std::string want =
      Mac(id.substr(0, dot), token.task_id(), token.attempt(), worker_id);
  return CRYPTO_memcmp(want.data(), id.data() + dot + 1, want.size()) == 0;
}

}  // namespace kwq::scheduler
