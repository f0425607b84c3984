#!/usr/bin/env bash
# Installs everything kwq needs on a fresh Debian 12 machine. Idempotent: on a ready
# machine it only checks and finishes in seconds.
#   tools/setup.sh            everything (Debian packages, Kafka broker jars, Python, grpcurl)
#   KWQ_SETUP_SKIP_KAFKA=1    skip the broker jars
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
log() { echo "[setup] $*" >&2; }

DEB_PACKAGES=(
  bazel-bootstrap bazel-rules-proto pkg-config g++ clang-format
  libgrpc++-dev protobuf-compiler protobuf-compiler-grpc libprotobuf-dev grpc-proto
  librdkafka-dev libabsl-dev libgoogle-glog-dev libgflags-dev
  libgtest-dev libgmock-dev libssl-dev libbenchmark-dev librocksdb-dev
  prometheus-cpp-dev libcpp-httplib-dev nlohmann-json3-dev libjemalloc-dev
  openjdk-17-jre-headless maven redis-server python3-venv openssl
  chromium chromium-driver prometheus
)

missing=()
for p in "${DEB_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  log "installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  log "Debian packages present"
fi

# Apache Kafka broker jars from Maven Central (tools/kafka/pom.xml).
if [ "${KWQ_SETUP_SKIP_KAFKA:-0}" != 1 ]; then
  "$ROOT/tools/kafka/fetch.sh"
fi

# Python: grpcio + grpcio-tools, and the generated kwq client.
"$ROOT/tools/python/setup.sh"

# grpcurl, pinned, from the Go module proxy.
GRPCURL_VERSION=v1.9.1
GOBIN_DIR="$ROOT/.tools/bin"
# `go install` leaves grpcurl's own version string unset, so a stamp file says
# which version is there.
if [ ! -x "$GOBIN_DIR/grpcurl" ] || [ "$(cat "$GOBIN_DIR/grpcurl.version" 2>/dev/null)" != "$GRPCURL_VERSION" ]; then
  log "installing grpcurl $GRPCURL_VERSION"
  mkdir -p "$GOBIN_DIR"
  GOBIN="$GOBIN_DIR" GOFLAGS=-mod=mod go install "github.com/fullstorydev/grpcurl/cmd/grpcurl@$GRPCURL_VERSION"
  echo "$GRPCURL_VERSION" > "$GOBIN_DIR/grpcurl.version"
else
  log "grpcurl present"
fi
log "done"
