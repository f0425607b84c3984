#!/usr/bin/env bash
# Fetches the Kafka broker jars into tools/kafka/.libs (idempotent: a stamp file holds the
# pom's checksum, so a second run on a ready machine returns at once).
set -euo pipefail
DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LIBS="$DIR/.libs"
STAMP="$LIBS/.stamp"
sum="$(sha256sum "$DIR/pom.xml" | cut -d' ' -f1)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$sum" ]; then
  echo "[kafka] broker jars present ($(ls "$LIBS"/*.jar | wc -l) jars)" >&2
  exit 0
fi
echo "[kafka] fetching broker jars from Maven Central" >&2
rm -rf "$LIBS"
mvn -q -B -f "$DIR/pom.xml" dependency:copy-dependencies \
  -DoutputDirectory="$LIBS" -DincludeScope=runtime
echo "$sum" > "$STAMP"
echo "[kafka] $(ls "$LIBS"/*.jar | wc -l) jars in $LIBS" >&2
