#!/usr/bin/env bash
# Stops a broker started by tools/kafka/start.sh, by its own pid, and removes its state dir.
#   tools/kafka/stop.sh STATE_DIR [--keep]
set -euo pipefail
STATE="${1:?usage: stop.sh STATE_DIR [--keep]}"
if [ -f "$STATE/pid" ]; then
  PID="$(cat "$STATE/pid")"
  if kill -0 "$PID" 2>/dev/null; then
    kill "$PID"
    for _ in $(seq 1 150); do kill -0 "$PID" 2>/dev/null || break; sleep 0.2; done
    if kill -0 "$PID" 2>/dev/null; then
      echo "[kafka] broker $PID did not stop in 30s; killing it" >&2
      kill -9 "$PID" 2>/dev/null || true
    fi
  fi
  echo "[kafka] broker $PID stopped" >&2
fi
[ "${2:-}" = "--keep" ] || rm -rf "$STATE"
