#!/usr/bin/env bash
# End to end: the README's secure set-up ("Using the service"; the default CMD of
# docker/Dockerfile): TLS with a CA-signed server certificate, API keys from a tenants file,
# the worker secret from a file and one local worker. The local worker must register (health
# of tpdiff.v1.VideoGeneration turns SERVING) and `tpdiff generate` over TLS with an API key
# must leave a decodable MP4 with the model's frame count. Certificates, key, secret and
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

source "$(dirname "$0")/model.sh"

# A CA and a server certificate it signs (server.crt holds the leaf only, as a CA issues it).
cd "$tmp"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=tpdiff-e2e-ca \
  -keyout ca.key -out ca.crt 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost \
  -keyout server.key -out server.csr 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >server.ext
openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
  -extfile server.ext -out server.crt 2>/dev/null
openssl rand -hex 32 >worker.secret
key=$(openssl rand -hex 24)
printf '{"tenants": [{"name": "e2e", "api_key_sha256": ["%s"]}]}\n' \
  "$(printf %s "$key" | sha256sum | cut -d' ' -f1)" >tenants.json

"$build/server/tpdiff-server" --listen=127.0.0.1:0 --metrics-listen=127.0.0.1:0 --models-dir="$models_dir" \
  --tls-cert=server.crt --tls-key=server.key --worker-secret-file=worker.secret \
  --tenants-file=tenants.json --local-workers=1 --worker-binary="$build/worker/tpdiff-worker" \
  >server.log 2>&1 &
server_pid=$!

for _ in $(seq 1 100); do
  grep -q "serving on port" server.log && break
  kill -0 "$server_pid" 2>/dev/null || fail "server exited"
  sleep 0.1
done
port=$(sed -n 's/.*serving on port \([0-9]*\).*/\1/p' server.log | head -n 1)
[[ -n $port ]] || fail "server did not report its port"

# SERVING once a worker has registered with the model loaded; a worker the gateway rejects
# never gets there.
cli="$build/client/tpdiff"
ready=0
for _ in $(seq 1 120); do
  if "$cli" health --server="localhost:$port" --tls-ca=ca.crt --service=tpdiff.v1.VideoGeneration \
    >/dev/null 2>&1; then
    ready=1
    break
  fi
  kill -0 "$server_pid" 2>/dev/null || fail "server exited"
  sleep 0.5
done
[[ $ready == 1 ]] || fail "the local worker did not register within 60 s"

timeout 60 "$cli" generate --server="localhost:$port" --tls-ca=ca.crt --api-key="$key" --model="$model" \
  --prompt="a red circle moving right" --steps=10,10,10 --guidance=3 --seed=7 \
  --out=video.mp4 --previews-dir=previews >generate.log 2>&1 || { cat generate.log >&2; fail "generate failed"; }

line=$("$probe" video.mp4) || fail "video.mp4 does not decode"
echo "$line"
read -r _ got _ <<<"$line"
[[ $got == "$frames" ]] || fail "video.mp4 has $got frames, expected $frames"
