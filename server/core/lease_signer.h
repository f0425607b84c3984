#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "kwq/v1/worker.pb.h"

struct evp_md_ctx_st;  // OpenSSL's EVP_MD_CTX

namespace kwq::scheduler {

// Lease ids that cannot be forged: "<scheduler id>-<n>.<MAC>", where the MAC
// (HMAC-SHA256, 128 bits, hex) binds the id to the task, the attempt and the
// worker it was issued to. Instances that share the key (see server/README.md,
// "Leases") verify each other's leases, so a worker that fails over keeps its
// running tasks; a worker can adopt or complete only a lease issued to its
// own worker id, and a made-up or copied lease id is refused.
class LeaseSigner {
 public:
  // An empty key: a random one of this process (leases then verify only
  // here).
  explicit LeaseSigner(std::string key = "");
  void SetKey(std::string key);

  // A new lease id for attempt `attempt` of `task_id` run by `worker_id`.
  std::string Issue(const std::string& scheduler_id, uint64_t serial,
                    const std::string& task_id, int attempt,
                    const std::string& worker_id) const;
  // Whether `token` was issued, under this key, to `worker_id`.
  bool Verify(const kwq::v1::FencingToken& token,
              const std::string& worker_id) const;

 private:
  std::string Mac(const std::string& prefix, const std::string& task_id,
                  int attempt, const std::string& worker_id) const;
  // An OpenSSL digest context (EVP_MD_CTX), freed with EVP_MD_CTX_free.
  struct MdCtxFree {
    void operator()(evp_md_ctx_st* ctx) const;
  };
  using MdCtx = std::unique_ptr<evp_md_ctx_st, MdCtxFree>;
  // One reusable context per thread: Mac() is const and may run on several
  // threads at once.
  static evp_md_ctx_st* ScratchContext();
  // HMAC's two SHA-256 states after the key's inner and outer pads: each MAC
  // copies them instead of re-keying (OpenSSL's one-shot HMAC() fetched the
  // digest and hashed the key anew each time: 5.5% of the scheduler's CPU).
  MdCtx inner_, outer_;
};

}  // namespace kwq::scheduler
