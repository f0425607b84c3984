#!/bin/bash
# submit_admission_bench admits a few Submits and exits 1 unless every task got
# its record and PENDING event.
set -euo pipefail
out=$("$TEST_SRCDIR/$TEST_WORKSPACE/server/submit_admission_bench" --tasks=2500)
echo "$out"
grep -q '^2500 tasks admitted: 2500 records, 2500 PENDING events$' <<<"$out"
