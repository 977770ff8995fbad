#!/usr/bin/env bash
# End to end: the README's secure set-up ("Using the service"; the default CMD of
# docker/Dockerfile): TLS with a CA-signed server certificate, API keys from a tenants file,
# the worker secret from a file and one local worker. The local worker must register (health
# of tpdiff.v1.VideoGeneration turns SERVING) and `tpdiff generate` over TLS with an API key
# must leave a decodable MP4 with the model's frame count. Twice: with a certificate for
# localhost, and with one that names only tpdiff-front.test (a Service name, as in
# Kubernetes; the local worker still dials localhost). Certificates, keys, secret and
# tenants file are made here with the openssl command line; nothing secret is committed.
#   secure_test.sh REPO_ROOT BUILD_DIR MAKE_PACKAGE VIDEO_PROBE
set -euo pipefail
root=$1 build=$2 make_package=$3 probe=$4

tmp=$(mktemp -d)
server_pid=
cleanup() {
  if [[ -n $server_pid ]]; then kill -TERM "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() {
  echo "$1" >&2
  echo "--- server log (server and local worker) ---" >&2
  tail -n 40 "$tmp/server.log" >&2 || true
  exit 1
}
cli="$build/client/tpdiff"

source "$(dirname "$0")/model.sh"

# A CA and server certificates it signs (each .crt holds the leaf only, as a CA issues it).
cd "$tmp"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=tpdiff-e2e-ca \
  -keyout ca.key -out ca.crt 2>/dev/null
server_cert() { # NAME SUBJECT_ALT_NAMES
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$1" \
    -keyout "$1.key" -out "$1.csr" 2>/dev/null
  printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\n' "$2" >"$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
    -extfile "$1.ext" -out "$1.crt" 2>/dev/null
}
server_cert localhost DNS:localhost,IP:127.0.0.1
server_cert tpdiff-front.test DNS:tpdiff-front.test
openssl rand -hex 32 >worker.secret
key=$(openssl rand -hex 24)
printf '{"tenants": [{"name": "e2e", "api_key_sha256": ["%s"]}]}\n' \
  "$(printf %s "$key" | sha256sum | cut -d' ' -f1)" >tenants.json

serve_and_generate() { # CERT_NAME
  "$build/server/tpdiff-server" --listen=127.0.0.1:0 --metrics-listen=127.0.0.1:0 --models-dir="$models_dir" \
    --tls-cert="$1.crt" --tls-key="$1.key" --worker-secret-file=worker.secret \
    --tenants-file=tenants.json --local-workers=1 --worker-binary="$build/worker/tpdiff-worker" \
    >server.log 2>&1 &
  server_pid=$!
  for _ in $(seq 1 100); do
    grep -q "serving on port" server.log && break
    kill -0 "$server_pid" 2>/dev/null || fail "server exited"
    sleep 0.1
  done
  local port
  port=$(sed -n 's/.*serving on port \([0-9]*\).*/\1/p' server.log | head -n 1)
  [[ -n $port ]] || fail "server did not report its port"
  local tls=(--server="localhost:$port" --tls-ca=ca.crt --tls-server-name="$1")

  # SERVING once a worker has registered with the model loaded; a worker the gateway rejects
  # never gets there.
  local ready=0
  for _ in $(seq 1 120); do
    if "$cli" health "${tls[@]}" --service=tpdiff.v1.VideoGeneration >/dev/null 2>&1; then
      ready=1
      break
    fi
    kill -0 "$server_pid" 2>/dev/null || fail "server exited"
    sleep 0.5
  done
  [[ $ready == 1 ]] || fail "$1: the local worker did not register within 60 s"

  rm -f video.mp4
  timeout 60 "$cli" generate "${tls[@]}" --api-key="$key" --model="$model" \
    --prompt="a red circle moving right" --steps=10,10,10 --guidance=3 --seed=7 \
    --out=video.mp4 --previews-dir=previews >generate.log 2>&1 ||
    { cat generate.log >&2; fail "$1: generate failed"; }
  local line got
  line=$("$probe" video.mp4) || fail "$1: video.mp4 does not decode"
  echo "$1: $line"
  read -r _ got _ <<<"$line"
  [[ $got == "$frames" ]] || fail "$1: video.mp4 has $got frames, expected $frames"

  kill -TERM "$server_pid"
  wait "$server_pid" || true
  server_pid=
}

serve_and_generate localhost
serve_and_generate tpdiff-front.test
