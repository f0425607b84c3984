#!/usr/bin/env bash
# Refreshes the console's vendored Chart.js from npm: tracker/console/vendor.sh 4.5.1
set -euo pipefail
VERSION="${1:?usage: vendor.sh CHARTJS_VERSION}"
DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/web/vendor"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
(cd "$TMP" && npm pack "chart.js@$VERSION" >/dev/null && tar xzf "chart.js-$VERSION.tgz")
cp "$TMP/package/dist/chart.umd.min.js" "$DIR/chart.umd.min.js"
cp "$TMP/package/LICENSE.md" "$DIR/chart.js-LICENSE.md"
echo "chart.js $VERSION: tarball sha256 $(sha256sum "$TMP/chart.js-$VERSION.tgz" | cut -d' ' -f1)"
