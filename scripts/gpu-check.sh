#!/usr/bin/env bash
# End-to-end check of the CUDA worker on a machine with an NVIDIA GPU, in one go (about 4 to 8
# minutes on one H100, most of it the build): builds the full service against a CUDA LibTorch,
# runs the real front and a CUDA worker on loopback, and prints a summary block of figures:
#   1. generate with previews (stage previews and MP4 written to OUT_DIR),
#   2. cancel a running job,
#   3. TPDiff vs vanilla sampling through the service and the sampler bench on the GPU,
#   4. time to first preview and total job time, encoding inline vs overlapped,
#   5. the worker's encoder choice (h264_nvenc or the libx264 fallback) and its step metrics.
# Environment:
#   LIBTORCH=DIR     a CUDA LibTorch (its share/cmake/Torch); default: python3's PyTorch
#   DEPS_PREFIX=DIR  gRPC, protobuf, Abseil, FFmpeg, prometheus-cpp, ... copied off a Debian 12
#                    machine by `scripts/gpu-deps.sh --full`, for machines without them;
#                    default: .gpu/usr when it holds gRPC, else the system's
#                    (TPDIFF_SKIP_TORCH=1 scripts/install-deps.sh installs them with apt)
#   BUILD_DIR (build-gpu-full), SKIP_BUILD=1 (use the binaries there), OUT_DIR (out/gpu-check),
#   MODEL (shapes-tpdiff), STEPS (10,10,10), JOBS (10, per preview-bench mode), PORT (50081),
#   DEVICE (cuda; cpu runs the same steps on a machine without a GPU, to try the script)
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${BUILD_DIR:-build-gpu-full}
out_dir=${OUT_DIR:-out/gpu-check}
model=${MODEL:-shapes-tpdiff}
steps=${STEPS:-10,10,10}
jobs=${JOBS:-10}
port=${PORT:-50081}
worker_metrics_port=${WORKER_METRICS_PORT:-9481}
device=${DEVICE:-cuda}
started=$(date +%s)
mkdir -p "$out_dir/previews"
log() { echo "gpu-check [$(($(date +%s) - started)) s]: $*"; }

if [[ $device == cpu ]]; then
  echo "none (DEVICE=cpu)" >"$out_dir/gpu.txt"
else
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out_dir/gpu.txt"
fi

if [[ ${SKIP_BUILD:-0} != 1 ]]; then
  torch_prefix=${LIBTORCH:-$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')}
  # LibTorch's own libraries: <prefix>/share/cmake -> <prefix>/lib (a LibTorch download or
  # PyTorch's torch/ folder alike).
  export LD_LIBRARY_PATH="$(cd "$torch_prefix/../.." && pwd)/lib:${LD_LIBRARY_PATH:-}"
fi
prefix_path="${torch_prefix:-}"
deps_prefix=${DEPS_PREFIX:-}
if [[ -z $deps_prefix && -d .gpu/usr/lib/x86_64-linux-gnu/cmake/grpc ]]; then deps_prefix=$PWD/.gpu/usr; fi
if [[ -n $deps_prefix ]]; then
  deps_lib=$deps_prefix/lib/x86_64-linux-gnu
  prefix_path="$prefix_path;$deps_prefix"
  export PATH="$deps_prefix/bin:$PATH"
  export PKG_CONFIG_PATH="$deps_lib/pkgconfig"
  export LD_LIBRARY_PATH="$deps_lib:${LD_LIBRARY_PATH:-}" LIBRARY_PATH="$deps_lib"
  # Debian keeps FFmpeg's, OpenSSL's and curl's headers in its multiarch folder.
  export CPATH="$deps_prefix/include/x86_64-linux-gnu:$deps_prefix/include"
  sed -i "s|^prefix=.*|prefix=$deps_prefix|" "$deps_lib"/pkgconfig/*.pc  # wherever it landed
  extra_cmake=(-DPNG_PNG_INCLUDE_DIR="$deps_prefix/include" -DPNG_LIBRARY="$deps_lib/libpng16.so"
               -DZLIB_INCLUDE_DIR="$deps_prefix/include" -DZLIB_LIBRARY="$deps_lib/libz.so"
               -DOPENSSL_ROOT_DIR="$deps_prefix" -DProtobuf_PROTOC_EXECUTABLE="$deps_prefix/bin/protoc"
               -DPKG_CONFIG_EXECUTABLE="$deps_prefix/bin/pkgconf")
else
  extra_cmake=()
fi

if [[ ${SKIP_BUILD:-0} != 1 ]]; then
  log "building the full service against $torch_prefix"
  cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DTPDIFF_BUILD_TESTS=ON \
    -DCMAKE_PREFIX_PATH="$prefix_path" "${extra_cmake[@]}" >"$out_dir/cmake.log"
  cmake --build "$build_dir" -j "$(nproc)" --target tpdiff_server_bin tpdiff_worker_bin tpdiff_cli \
    tpdiff_bench tpdiff_core_tests tpdiff_media_tests tpdiff_worker_tests >"$out_dir/build.log" 2>&1 \
    || { tail -n 40 "$out_dir/build.log"; exit 1; }
fi
cli="$build_dir/client/tpdiff"
log "unit tests with a GPU (CUDA sampler, device timer, NVENC, job runner)"
unit=""
for t in "core/tpdiff_core_tests *Cuda*:DeviceTimer*" "tpdiff_media_tests H264*" \
         "worker/tpdiff_worker_tests JobRunner*:EncodeQueue*"; do
  read -r binary filter <<<"$t"
  "$build_dir/tests/unit/$binary" --gtest_brief=1 --gtest_filter="$filter" >"$out_dir/unit.log" 2>&1 \
    || { cat "$out_dir/unit.log"; exit 1; }
  passed=$(sed -n 's/^\[  PASSED  \] //p' "$out_dir/unit.log")
  skipped=$(sed -n 's/^\[  SKIPPED \] \([0-9]\)/skipped \1/p' "$out_dir/unit.log")
  unit+="$(basename "$binary"): $passed${skipped:+ $skipped}; "
done
echo "$unit"

log "starting the front and a $device worker"
"$build_dir/server/tpdiff-server" --listen="127.0.0.1:$port" --metrics-listen= --models-dir=models \
  --local-workers=0 --insecure --auth=none >"$out_dir/server.log" 2>&1 &
server_pid=$!
"$build_dir/worker/tpdiff-worker" --server="127.0.0.1:$port" --insecure --models-dir=models \
  --models="$model" --device="$device" --video-encoder=auto --metrics-listen="127.0.0.1:$worker_metrics_port" \
  --worker-id=gpu-check >"$out_dir/worker.log" 2>&1 &
worker_pid=$!
trap 'kill -TERM $worker_pid $server_pid 2>/dev/null; wait 2>/dev/null || true' EXIT
ready=0
for _ in $(seq 1 240); do
  if "$cli" health --insecure --server="127.0.0.1:$port" --service=tpdiff.v1.VideoGeneration >/dev/null 2>&1; then ready=1; break; fi
  kill -0 $worker_pid 2>/dev/null || { cat "$out_dir/worker.log"; exit 1; }
  sleep 0.5
done
[[ $ready == 1 ]] || { echo "not ready after 120 s"; tail "$out_dir/server.log" "$out_dir/worker.log"; exit 1; }
encoder_line=$(grep -m1 "MP4 via" "$out_dir/worker.log" || true)

seconds() { python3 -c "import time; print(f'{time.time() - $1:.3f}')"; }
run_generate() {  # sampler, output name
  local t0
  t0=$(python3 -c 'import time; print(time.time())')
  "$cli" generate --insecure --server="127.0.0.1:$port" --model="$model" --prompt="a red circle moving right" \
    --steps="$steps" --seed=7 --sampler="$1" --out="$out_dir/$2.mp4" --previews-dir="$out_dir/previews-$2" >/dev/null 2>>"$out_dir/generate.log"
  seconds "$t0"
}
log "generate with previews"
run_generate tpdiff warmup >/dev/null
# Three of each, alternating; the medians.
tpdiff_runs=() vanilla_runs=()
for _ in 1 2 3; do
  tpdiff_runs+=("$(run_generate tpdiff tpdiff)")
  vanilla_runs+=("$(run_generate vanilla vanilla)")
done
median() { printf '%s\n' "$@" | sort -g | sed -n 2p; }
gen_tpdiff=$(median "${tpdiff_runs[@]}")
gen_vanilla=$(median "${vanilla_runs[@]}")
previews=$(ls "$out_dir/previews-tpdiff" | wc -l)

log "cancel a running job"
job=$("$cli" submit --insecure --server="127.0.0.1:$port" --model="$model" --prompt="a blue square moving up" \
  --steps=100,100,100 --seed=3)
for _ in $(seq 1 100); do
  "$cli" get --insecure --server="127.0.0.1:$port" "$job" | grep -q '"JOB_STATE_RUNNING"' && break
  sleep 0.05
done
"$cli" cancel --insecure --server="127.0.0.1:$port" "$job" >/dev/null
cancel_state=unknown
for _ in $(seq 1 100); do
  cancel_state=$("$cli" get --insecure --server="127.0.0.1:$port" "$job" | sed -n 's/.*"state": *"\([A-Z_]*\)".*/\1/p' | head -n 1)
  [[ $cancel_state == JOB_STATE_CANCELLED ]] && break
  sleep 0.05
done

metrics=$(exec 3<>/dev/tcp/127.0.0.1/$worker_metrics_port && printf 'GET /metrics HTTP/1.0\r\n\r\n' >&3 && cat <&3)
step_lines=$(grep -E '^tpdiff_worker_step_seconds_(sum|count)' <<<"$metrics" || true)
kill -TERM $worker_pid $server_pid 2>/dev/null; wait 2>/dev/null || true
trap - EXIT

log "sampler bench (TPDiff vs vanilla, same steps) on $device"
"$build_dir/bench/tpdiff-bench" sampler --device="$device" --repeats=5 --svg="$out_dir/sampler.svg" | tee "$out_dir/sampler.txt"
log "preview bench: first preview and total, encoding inline vs overlapped"
"$build_dir/bench/tpdiff-bench" preview --model="models/$model" --device="$device" --jobs="$jobs" \
  --worker_threads=0 --svg="$out_dir/preview.svg" | tee "$out_dir/preview.txt"

echo
echo "==================== gpu-check summary ===================="
echo "gpu:                 $(head -n 1 "$out_dir/gpu.txt")"
echo "unit tests:          $unit"
echo "worker:              ${encoder_line#*: }"
echo "generate (tpdiff):   $gen_tpdiff s wall (median of 3), $previews previews, $(stat -c %s "$out_dir/tpdiff.mp4") bytes MP4 (steps $steps)"
echo "generate (vanilla):  $gen_vanilla s wall -> TPDiff $(python3 -c "print(f'{$gen_vanilla / $gen_tpdiff:.2f}')")x faster end to end"
echo "cancel:              job $job -> $cancel_state"
grep -E "speed-up|speedup|x faster" "$out_dir/sampler.txt" | sed 's/^/sampler bench:       /' || true
grep -E "^  (inline|overlapped) +(first preview|total) " "$out_dir/preview.txt" |
  sed 's/^ */preview bench:       /' || true
echo "step metrics:        $(tr '\n' ' ' <<<"$step_lines")"
echo "elapsed:             $(($(date +%s) - started)) s; files in $out_dir"
echo "==========================================================="
