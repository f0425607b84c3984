#!/usr/bin/env bash
# Installs what is missing, builds, starts a real Kafka broker, runs every test (Bazel and
# pytest) against it and the embedded cluster, and the chaos checker's short form (on
# its own broker), stops the broker, and prints
# `N passed, N failed, N skipped`. Exit status 0 only when nothing failed.
#
#   tools/test.sh [bazel test target patterns...]   (default //...)
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TARGETS=("$@"); ((${#TARGETS[@]})) || TARGETS=(//...)

tools/setup.sh || { echo "setup failed"; echo "0 passed, 1 failed"; exit 1; }

KAFKA_STATE=""
cleanup() { [ -z "$KAFKA_STATE" ] || tools/kafka/stop.sh "$KAFKA_STATE"; }
trap cleanup EXIT
if ! out="$(tools/kafka/start.sh)"; then
  echo "test.sh: could not start the Kafka broker (see above)"; echo "0 passed, 1 failed"; exit 1
fi
eval "$out"   # KWQ_KAFKA_BOOTSTRAP, _SASL_BOOTSTRAP, _TLS_BOOTSTRAP, _TLS_CA,
              # _MTLS_BOOTSTRAP, _TLS_CLIENT_CERT, _TLS_CLIENT_KEY, _STATE
KAFKA_STATE="$KWQ_KAFKA_STATE"
export KWQ_KAFKA_BOOTSTRAP KWQ_KAFKA_SASL_BOOTSTRAP KWQ_KAFKA_TLS_BOOTSTRAP KWQ_KAFKA_TLS_CA \
  KWQ_KAFKA_MTLS_BOOTSTRAP KWQ_KAFKA_TLS_CLIENT_CERT KWQ_KAFKA_TLS_CLIENT_KEY

RESULTS="$(mktemp -d /tmp/kwq-test-results.XXXXXX)"
bazel query "tests(set(${TARGETS[*]}))" 2>/dev/null > "$RESULTS/targets" || true
bazel test "${TARGETS[@]}" \
  --test_env=KWQ_KAFKA_BOOTSTRAP="$KWQ_KAFKA_BOOTSTRAP" \
  --test_env=KWQ_KAFKA_SASL_BOOTSTRAP="$KWQ_KAFKA_SASL_BOOTSTRAP" \
  --test_env=KWQ_KAFKA_TLS_BOOTSTRAP="$KWQ_KAFKA_TLS_BOOTSTRAP" \
  --test_env=KWQ_KAFKA_TLS_CA="$KWQ_KAFKA_TLS_CA" \
  --test_env=KWQ_KAFKA_MTLS_BOOTSTRAP="$KWQ_KAFKA_MTLS_BOOTSTRAP" \
  --test_env=KWQ_KAFKA_TLS_CLIENT_CERT="$KWQ_KAFKA_TLS_CLIENT_CERT" \
  --test_env=KWQ_KAFKA_TLS_CLIENT_KEY="$KWQ_KAFKA_TLS_CLIENT_KEY" \
  --test_env=KWQ_REQUIRE_REAL_BROKER=1 \
  --test_env=KWQ_ROOT="$ROOT"
bazel_rc=$?

# Python client tests.
tools/python/.venv/bin/python -m pytest -q tools/python/tests \
  --junitxml="$RESULTS/pytest.xml" -p no:cacheprovider

# The unit tests of the input paths under ASan + UBSan (.bazelrc --config=asan), as
# one test case: the core, the API rules, the tracker's model and the fuzz replay.
ASAN_JUNIT=()
if [ "${TARGETS[*]}" = "//..." ]; then
  ASAN_JUNIT=(--junit "$RESULTS/asan.xml")
  if bazel test --config=asan //server/core/... //server/api/... \
       //tracker/model/... //tests:fuzz_replay_test >"$RESULTS/asan.out" 2>&1; then
    failure=""
  else
    failure="<failure message=\"unit tests under ASan/UBSan failed\"/>"
    tail -60 "$RESULTS/asan.out" >&2
  fi
  printf '<testsuite name="asan"><testcase name="asan_ubsan_unit_tests">%s</testcase></testsuite>\n' \
    "$failure" > "$RESULTS/asan.xml"
fi

# The chaos checker's short form (tools/chaos/README.md: 3 instances, a tracker, 6
# workers as processes on its own broker; an instance killed -9 right after a
# rebalance, a worker killed, a worker stalled past its lease), as one test case.
CHAOS_JUNIT=()
if [ "${TARGETS[*]}" = "//..." ]; then
  CHAOS_JUNIT=(--junit "$RESULTS/chaos.xml")
  if tools/chaos/run --quick --json >"$RESULTS/chaos.out" 2>"$RESULTS/chaos.err"; then
    failure=""
  else
    failure="<failure message=\"tools/chaos/run --quick failed\"/>"
    tail -40 "$RESULTS/chaos.err" >&2
  fi
  cat "$RESULTS/chaos.out"
  printf '<testsuite name="chaos"><testcase name="chaos_quick">%s</testcase></testsuite>\n' \
    "$failure" > "$RESULTS/chaos.xml"
fi

# The alert rules: syntax (promtool check rules) and their unit tests (promtool test
# rules), as one test case.
RULES_JUNIT=(--junit "$RESULTS/rules.xml")
if (cd tools/deploy/monitoring && promtool check rules kwq-alerts.yml &&
    promtool test rules kwq-alerts.test.yml) >"$RESULTS/rules.out" 2>&1; then
  failure=""
else
  failure="<failure message=\"promtool check/test rules failed\"/>"
  tail -40 "$RESULTS/rules.out" >&2
fi
printf '<testsuite name="alert_rules"><testcase name="promtool_test_rules">%s</testcase></testsuite>\n' \
  "$failure" > "$RESULTS/rules.xml"

python3 tools/test_summary.py --bazel-targets "$RESULTS/targets" \
  --testlogs "$(bazel info bazel-testlogs 2>/dev/null)" --junit "$RESULTS/pytest.xml" \
  ${CHAOS_JUNIT[@]+"${CHAOS_JUNIT[@]}"} ${ASAN_JUNIT[@]+"${ASAN_JUNIT[@]}"} "${RULES_JUNIT[@]}"
rc=$?
rm -rf "$RESULTS"
[ "$bazel_rc" = 0 ] || rc=1
exit $rc
