#!/usr/bin/env bash
# Resident memory of a tpdiff-worker once its models are loaded, for several --slots values.
# Writes a random builtin package of --width/--depth (default 512 x 4: 30M parameters,
# 121 MB of float32 weights), starts the worker on the CPU against a closed loopback port (it
# loads its models before dialling the front and keeps retrying the dial), waits for its
# "slot(s)" start line and reads VmRSS and VmHWM from /proc/PID/status.
#
#   bench/worker-memory.sh [--worker=build/worker/tpdiff-worker]
#                          [--make-package=build/bench/tpdiff-make-package]
#                          [--slots="1 4"] [--width=512] [--depth=4]
set -euo pipefail

worker=build/worker/tpdiff-worker
make_package=build/bench/tpdiff-make-package
slots_list="1 4"
width=512
depth=4
for arg in "$@"; do
  case "$arg" in
    --worker=*) worker="${arg#*=}" ;;
    --make-package=*) make_package="${arg#*=}" ;;
    --slots=*) slots_list="${arg#*=}" ;;
    --width=*) width="${arg#*=}" ;;
    --depth=*) depth="${arg#*=}" ;;
    *) echo "worker-memory.sh: unknown argument $arg" >&2; exit 2 ;;
  esac
done

tmp=$(mktemp -d)
pid=""
cleanup() {
  if [[ -n "$pid" ]]; then kill -KILL "$pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

"$make_package" --network=cpu --width="$width" --depth="$depth" --name=big \
  --out="$tmp/models/big"
weights_bytes=$(stat -c %s "$tmp/models/big/weights.safetensors")
echo "package: cpu preset, width $width, depth $depth, weights $((weights_bytes / 1000000)) MB"
printf '%-6s %12s %12s\n' slots VmRSS_MB VmHWM_MB

kib_field() { awk -v f="$1:" '$1 == f { print $2 }' "/proc/$2/status"; }

for slots in $slots_list; do
  "$worker" --server=127.0.0.1:1 --insecure --models-dir="$tmp/models" --slots="$slots" \
    --device=cpu --threads=1 2>"$tmp/worker.log" &
  pid=$!
  for _ in $(seq 1 600); do
    grep -q "slot(s)" "$tmp/worker.log" && break
    if ! kill -0 "$pid" 2>/dev/null; then cat "$tmp/worker.log" >&2; exit 1; fi
    sleep 0.2
  done
  grep -q "slot(s)" "$tmp/worker.log" || { echo "worker did not start" >&2; exit 1; }
  rss=$(kib_field VmRSS "$pid")
  hwm=$(kib_field VmHWM "$pid")
  printf '%-6s %12d %12d\n' "$slots" $((rss / 1024)) $((hwm / 1024))
  kill -KILL "$pid"
  wait "$pid" 2>/dev/null || true
  pid=""
done
