#!/usr/bin/env bash
# The tracker uses the shared packages (server/api, server/auth, server/kafka,
# server/metrics,
# server/util)
# and never the scheduler's core or its gRPC service: checked in the sources and
# in the BUILD files (the core's Bazel visibility refuses it too).
set -euo pipefail
cd "${TEST_SRCDIR}/kwq/tracker"
n=$(find . -name '*.h' -o -name '*.cc' | wc -l)
[ "$n" -gt 5 ] || { echo "expected the tracker sources, found $n files"; exit 1; }
bad=0
if grep -RnE '#include "server/(core/|scheduler_service|worker_stream|metrics_exporter)' \
    --include='*.h' --include='*.cc' .; then
  echo "FAIL: the tracker includes the scheduler's core or service"; bad=1
fi
if grep -RnE '"//server(/core)?:' --include=BUILD.bazel .; then
  echo "FAIL: a tracker target depends on //server or //server/core"; bad=1
fi
if grep -RnhoE '"//server/[a-z_]+' --include=BUILD.bazel . | sort -u |
    grep -vE '"//server/(api|auth|kafka|metrics|util)$'; then
  echo "FAIL: the tracker may depend only on //server/api, //server/auth, //server/kafka, //server/metrics, //server/util"; bad=1
fi
[ "$bad" = 0 ] && echo "OK: $n tracker files use only the shared packages"
exit $bad
