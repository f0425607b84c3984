#!/usr/bin/env bash
# The scheduler core stays free of I/O libraries: no gRPC, no librdkafka includes.
set -euo pipefail
cd "${TEST_SRCDIR}/kwq/server/core"
n=$(ls *.h *.cc | wc -l)
[ "$n" -gt 3 ] || { echo "expected the core sources, found $n files"; exit 1; }
if grep -nE '#include [<"](grpcpp/|grpc/|librdkafka/|rdkafka)' *.h *.cc; then
  echo "FAIL: the core must not include gRPC or librdkafka (see style.md)"; exit 1
fi
echo "OK: $n core files checked"
