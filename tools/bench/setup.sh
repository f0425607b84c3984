#!/usr/bin/env bash
# Installs what the benchmark suite needs beyond tools/setup.sh: redis-server (Debian) and
# a venv with Celery for the peer comparison. Idempotent.
set -euo pipefail
DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if ! command -v redis-server >/dev/null; then
  apt-get install -y -q redis-server >/dev/null
fi
VENV="$DIR/.venv"
SUM="$(sha256sum "$DIR/requirements.txt" | cut -d' ' -f1)"
if [ ! -f "$VENV/.req" ] || [ "$(cat "$VENV/.req")" != "$SUM" ]; then
  echo "[bench] creating $VENV (celery, redis)" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check -r "$DIR/requirements.txt"
  echo "$SUM" > "$VENV/.req"
fi
