#!/bin/bash
# core_bench runs a small job through the core and exits 1 unless every task
# was assigned once and completed once.
set -euo pipefail
out=$("$TEST_SRCDIR/$TEST_WORKSPACE/server/core/core_bench" --tasks=5000)
echo "$out"
grep -q '"assigned":5000,"acked":5000' <<<"$out"
