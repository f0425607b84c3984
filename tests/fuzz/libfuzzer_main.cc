// libFuzzer entry point; KWQ_FUZZ_TARGET names the target (tools/fuzz/run
// builds one binary per target with clang -fsanitize=fuzzer,address,undefined).
#include <cstddef>
#include <cstdint>

#include "tests/fuzz/fuzz_targets.h"

#ifndef KWQ_FUZZ_TARGET
#error "define KWQ_FUZZ_TARGET, e.g. -DKWQ_FUZZ_TARGET=WorkerSession"
#endif

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return kwq::fuzz::KWQ_FUZZ_TARGET(data, size);
}
