#!/usr/bin/env bash
# The main job for a newcomer: installs what is missing, builds, and runs a dev grid on the
# embedded Kafka cluster (nothing kept on disk) with a simulated job, shown live.
#   tools/demo.sh [extra flags for the simulation]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
KWQ_SETUP_SKIP_KAFKA=1 tools/setup.sh
bazel build //server:kwq_scheduler //tools:kwq_simulate
exec bazel-bin/tools/kwq_simulate "$@"
