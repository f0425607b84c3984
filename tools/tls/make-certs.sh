#!/usr/bin/env bash
# Makes a small private CA and certificates for a kwq grid (tests, trials, a
# first deployment):
#   tools/tls/make-certs.sh DIR [CLIENT_NAME ...]
# writes DIR/ca.pem + ca.key, DIR/server.pem + server.key (for localhost and
# 127.0.0.1, plus any names in KWQ_TLS_SERVER_NAMES="dns1 dns2"), and for each
# CLIENT_NAME DIR/CLIENT_NAME.pem + .key (common name CLIENT_NAME, for mutual
# TLS and `cert` lines of the identities file). ECDSA P-256, valid 30 days.
# Needs only the openssl command line (Debian's `openssl` package).
set -euo pipefail
DIR="${1:?usage: make-certs.sh DIR [CLIENT_NAME ...]}"; shift
mkdir -p "$DIR"
cd "$DIR"
KEY=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
log="$PWD/openssl.log"
: >"$log"
openssl req -x509 "${KEY[@]}" -days 30 -subj "/CN=kwq private CA" \
  -addext "basicConstraints=critical,CA:TRUE" \
  -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -keyout ca.key -out ca.pem >>"$log" 2>&1
sign() {  # NAME EXTENSIONS
  openssl req "${KEY[@]}" -subj "/CN=$1" -keyout "$1.key" -out "$1.csr" >>"$log" 2>&1
  printf '%s\n' "$2" >"$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial \
    -days 30 -extfile "$1.ext" -out "$1.pem" >>"$log" 2>&1
  rm -f "$1.csr" "$1.ext"
}
san="DNS:localhost,IP:127.0.0.1,IP:::1"
for n in ${KWQ_TLS_SERVER_NAMES:-}; do san="$san,DNS:$n"; done
sign server "subjectAltName=$san
extendedKeyUsage=serverAuth
basicConstraints=CA:FALSE"
for name in "$@"; do
  sign "$name" "extendedKeyUsage=clientAuth
basicConstraints=CA:FALSE"
done
chmod 600 ./*.key
echo "certificates in $PWD: ca.pem server.pem${*:+ $*}" >&2
