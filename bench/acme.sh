#!/usr/bin/env bash
# ACME benchmark: starts Pebble and pebble-challtestsrv (as the tests do: no validation sleep,
# no authorization reuse, every name resolving to 127.0.0.1), builds cmpd and cmp-bench in release
# mode and runs `cmp-bench acme` against them. Extra arguments go to `cmp-bench acme`, e.g.
#   bench/acme.sh --seconds 10 --concurrency 1,4,16 --databases sqlite,postgres
set -euo pipefail
cd "$(dirname "$0")/.."

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
work=$(mktemp -d)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=pebble \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
    -addext "basicConstraints=critical,CA:FALSE" -addext "extendedKeyUsage=serverAuth" \
    -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
api=$(free_port); mgmt=$(free_port); http01=$(free_port); dns=$(free_port); cts=$(free_port)
cat > "$work/pebble.json" <<JSON
{"pebble": {"listenAddress": "127.0.0.1:$api", "managementListenAddress": "127.0.0.1:$mgmt",
  "certificate": "$work/cert.pem", "privateKey": "$work/key.pem", "httpPort": $http01,
  "tlsPort": $(free_port), "ocspResponderURL": "", "externalAccountBindingRequired": false}}
JSON
pebble-challtestsrv -http01 "" -https01 "" -tlsalpn01 "" -defaultIPv6 "" \
    -dns01 "127.0.0.1:$dns" -management "127.0.0.1:$cts" >"$work/challtestsrv.log" 2>&1 &
pids+=($!)
PEBBLE_VA_NOSLEEP=1 PEBBLE_AUTHZREUSE=0 PEBBLE_WFE_NONCEREJECT=0 \
    pebble -config "$work/pebble.json" -dnsserver "127.0.0.1:$dns" >"$work/pebble.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do
    curl -sf --cacert "$work/cert.pem" "https://127.0.0.1:$api/dir" >/dev/null && break
    sleep 0.1
done

# cmp-bench starts the cmpd built beside it.
cargo build --release -p cmp-server -p cmp-bench
"${CARGO_TARGET_DIR:-target}/release/cmp-bench" acme --directory "https://127.0.0.1:$api/dir" \
    --ca-bundle "$work/cert.pem" --http01-port "$http01" "$@"
