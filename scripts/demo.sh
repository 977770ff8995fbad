#!/usr/bin/env bash
# The main job: build, serve the bundled model with local workers, generate one video with the
# CLI, and leave the stage previews and the final MP4 in out/ (or $OUT_DIR).
#   PROMPT="a fast blue square moving up-left" scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${BUILD_DIR:-build}
out_dir=${OUT_DIR:-out}
model=${MODEL:-shapes-tpdiff}
prompt=${PROMPT:-a red circle moving right}
port=${PORT:-50071}
metrics_port=${METRICS_PORT:-9471}

cmake -S . -B "$build_dir" -G Ninja >/dev/null
cmake --build "$build_dir" -j "$(nproc)" --target tpdiff_server_bin tpdiff_worker_bin tpdiff_cli

mkdir -p "$out_dir/previews"
log="$out_dir/server.log"
"$build_dir/server/tpdiff-server" --listen="127.0.0.1:$port" --metrics-listen="127.0.0.1:$metrics_port" \
  --models-dir=models --local-workers=1 --worker-binary="$build_dir/worker/tpdiff-worker" >"$log" 2>&1 &
server_pid=$!
trap 'kill -TERM $server_pid 2>/dev/null; wait $server_pid 2>/dev/null || true' EXIT

cli="$build_dir/client/tpdiff"
for _ in $(seq 1 120); do
  if "$cli" health --server="127.0.0.1:$port" --service=tpdiff.v1.VideoGeneration >/dev/null 2>&1; then break; fi
  if ! kill -0 $server_pid 2>/dev/null; then echo "server exited; see $log" >&2; cat "$log" >&2; exit 1; fi
  sleep 0.5
done

"$cli" generate --server="127.0.0.1:$port" --model="$model" --prompt="$prompt" --seed=7 \
  --out="$out_dir/video.mp4" --previews-dir="$out_dir/previews"
echo "video:    $out_dir/video.mp4"
echo "previews: $(ls "$out_dir/previews" | tr '\n' ' ')"
echo "metrics:  http://127.0.0.1:$metrics_port/metrics while the server runs; server log in $log"
