#!/usr/bin/env bash
# The main job: build, serve the bundled model with local workers, generate one video with the
# CLI, and leave the stage previews and the final MP4 in out/ (or $OUT_DIR).
#   PROMPT="a fast blue square moving up-left" scripts/demo.sh
# Environment: BUILD_DIR (build), OUT_DIR (out), MODELS_DIR (models), MODEL (shapes-tpdiff),
# PROMPT, SEED (7), PORT (50071) and METRICS_PORT (9471), 0 = any free port;
# SKIP_BUILD=1 uses the binaries already in BUILD_DIR (the end-to-end test does).
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${BUILD_DIR:-build}
out_dir=${OUT_DIR:-out}
models_dir=${MODELS_DIR:-models}
model=${MODEL:-shapes-tpdiff}
prompt=${PROMPT:-a red circle moving right}
seed=${SEED:-7}
port=${PORT:-50071}
metrics_port=${METRICS_PORT:-9471}

if [[ ${SKIP_BUILD:-0} != 1 ]]; then
  cmake -S . -B "$build_dir" -G Ninja >/dev/null
  cmake --build "$build_dir" -j "$(nproc)" --target tpdiff_server_bin tpdiff_worker_bin tpdiff_cli
fi
if [[ ! -f $models_dir/$model/model.json ]]; then
  echo "no model package $models_dir/$model (set MODELS_DIR and MODEL)" >&2
  exit 1
fi

mkdir -p "$out_dir/previews"
log="$out_dir/server.log"
"$build_dir/server/tpdiff-server" --listen="127.0.0.1:$port" --metrics-listen="127.0.0.1:$metrics_port" \
  --models-dir="$models_dir" --local-workers=1 --insecure --auth=none --worker-binary="$build_dir/worker/tpdiff-worker" \
  >"$log" 2>&1 &
server_pid=$!
trap 'kill -TERM $server_pid 2>/dev/null; wait $server_pid 2>/dev/null || true' EXIT

# The server logs the ports it bound ("serving on port P, /metrics on port M"), which is how
# port 0 becomes a real one.
for _ in $(seq 1 100); do
  grep -q "serving on port" "$log" && break
  if ! kill -0 $server_pid 2>/dev/null; then echo "server exited; see $log" >&2; cat "$log" >&2; exit 1; fi
  sleep 0.1
done
port=$(sed -n 's/.*serving on port \([0-9]*\).*/\1/p' "$log" | head -n 1)
metrics_port=$(sed -n 's/.*\/metrics on port \([0-9]*\).*/\1/p' "$log" | head -n 1)
[[ -n $port ]] || { echo "server did not report its port; see $log" >&2; cat "$log" >&2; exit 1; }

# Ready (the readiness service) once a worker has connected with the model loaded.
cli="$build_dir/client/tpdiff"
ready=0
for _ in $(seq 1 120); do
  if "$cli" health --insecure --server="127.0.0.1:$port" --service=tpdiff.v1.VideoGeneration >/dev/null 2>&1; then ready=1; break; fi
  if ! kill -0 $server_pid 2>/dev/null; then echo "server exited; see $log" >&2; cat "$log" >&2; exit 1; fi
  sleep 0.5
done
[[ $ready == 1 ]] || { echo "server not ready after 60 s; see $log" >&2; cat "$log" >&2; exit 1; }

"$cli" generate --insecure --server="127.0.0.1:$port" --model="$model" --prompt="$prompt" --seed="$seed" \
  --out="$out_dir/video.mp4" --previews-dir="$out_dir/previews"
echo "video:    $out_dir/video.mp4"
echo "previews: $(ls "$out_dir/previews" | tr '\n' ' ')"
echo "metrics:  http://127.0.0.1:$metrics_port/metrics while the server runs; server log in $log"
