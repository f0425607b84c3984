#!/usr/bin/env bash
# Makes tools/python/.venv with grpcio, grpcio-tools and pytest, and generates the kwq.v1
# Python client from proto/ into tools/python/gen (never hand-edited). Idempotent.
set -euo pipefail
DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$DIR/../.." && pwd)"
VENV="$DIR/.venv"
REQ_SUM="$(sha256sum "$DIR/requirements.txt" | cut -d' ' -f1)"
if [ ! -f "$VENV/.req" ] || [ "$(cat "$VENV/.req")" != "$REQ_SUM" ]; then
  echo "[python] creating $VENV" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check -r "$DIR/requirements.txt"
  echo "$REQ_SUM" > "$VENV/.req"
fi
# Regenerate when any proto changed.
PROTO_SUM="$(cat "$ROOT"/proto/kwq/v1/*.proto | sha256sum | cut -d' ' -f1)"
GEN="$DIR/gen"
if [ ! -f "$GEN/.proto_sum" ] || [ "$(cat "$GEN/.proto_sum")" != "$PROTO_SUM" ]; then
  echo "[python] generating the kwq.v1 client into $GEN" >&2
  rm -rf "$GEN"; mkdir -p "$GEN"
  "$VENV/bin/python" -m grpc_tools.protoc -I"$ROOT/proto" \
    --python_out="$GEN" --pyi_out="$GEN" --grpc_python_out="$GEN" \
    "$ROOT"/proto/kwq/v1/*.proto
  touch "$GEN/kwq/__init__.py" "$GEN/kwq/v1/__init__.py"
  echo "$PROTO_SUM" > "$GEN/.proto_sum"
else
  echo "[python] client up to date" >&2
fi
