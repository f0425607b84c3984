#include "server/core/lease_signer.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <algorithm>
#include <cstring>
#include <random>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace kwq::scheduler {
namespace {

constexpr size_t kMacBytes = 16;    // 128 bits, 32 hex characters
constexpr size_t kBlockBytes = 64;  // SHA-256's block

std::string RandomKey() {
  std::random_device rd;  // the OS's entropy source
  std::string key(32, '\0');
  for (char& c : key) c = static_cast<char>(rd() & 0xff);
  return key;
}

}  // namespace

void LeaseSigner::MdCtxFree::operator()(EVP_MD_CTX* ctx) const {
  EVP_MD_CTX_free(ctx);
}

EVP_MD_CTX* LeaseSigner::ScratchContext() {
  thread_local const MdCtx ctx(EVP_MD_CTX_new());
  return ctx.get();
}

LeaseSigner::LeaseSigner(std::string key) { SetKey(std::move(key)); }

void LeaseSigner::SetKey(std::string key) {
  if (key.empty()) key = RandomKey();
  const EVP_MD* md = EVP_sha256();
  // HMAC (RFC 2104): a key longer than a block is hashed first, then padded
  // with zeros to a block.
  unsigned char block[kBlockBytes] = {0};
  if (key.size() > kBlockBytes) {
    unsigned int len = 0;
    EVP_Digest(key.data(), key.size(), block, &len, md, nullptr);
  } else {
    std::memcpy(block, key.data(), key.size());
  }
  unsigned char ipad[kBlockBytes], opad[kBlockBytes];
  for (size_t i = 0; i < kBlockBytes; ++i) {
    ipad[i] = block[i] ^ 0x36;
    opad[i] = block[i] ^ 0x5c;
  }
  inner_.reset(EVP_MD_CTX_new());
  outer_.reset(EVP_MD_CTX_new());
  EVP_DigestInit_ex(inner_.get(), md, nullptr);
  EVP_DigestUpdate(inner_.get(), ipad, sizeof ipad);
  EVP_DigestInit_ex(outer_.get(), md, nullptr);
  EVP_DigestUpdate(outer_.get(), opad, sizeof opad);
  OPENSSL_cleanse(block, sizeof block);
  OPENSSL_cleanse(ipad, sizeof ipad);
  OPENSSL_cleanse(opad, sizeof opad);
}

std::string LeaseSigner::Mac(const std::string& prefix,
                             const std::string& task_id, int attempt,
                             const std::string& worker_id) const {
  const std::string msg =
      absl::StrCat(prefix, std::string(1, '\0'), task_id, std::string(1, '\0'),
                   attempt, std::string(1, '\0'), worker_id);
  EVP_MD_CTX* ctx = ScratchContext();
  unsigned char inner[EVP_MAX_MD_SIZE], out[EVP_MAX_MD_SIZE];
  unsigned int inner_len = 0, len = 0;
  EVP_MD_CTX_copy_ex(ctx, inner_.get());
  EVP_DigestUpdate(ctx, msg.data(), msg.size());
  EVP_DigestFinal_ex(ctx, inner, &inner_len);
  EVP_MD_CTX_copy_ex(ctx, outer_.get());
  EVP_DigestUpdate(ctx, inner, inner_len);
  EVP_DigestFinal_ex(ctx, out, &len);
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
