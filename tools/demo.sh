#!/usr/bin/env bash
# The main job for a newcomer: installs what is missing, builds, and runs a dev grid on the
# embedded Kafka cluster (nothing kept on disk) with a simulated job, shown live.
#   tools/demo.sh [extra flags for kwqctl simulate, e.g. --workers 4 --duration-ms 5]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
KWQ_SETUP_SKIP_KAFKA=1 tools/setup.sh
bazel build //tools:kwqctl
exec bazel-bin/tools/kwqctl simulate --tasks 100000 "$@"
