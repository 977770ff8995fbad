#!/usr/bin/env bash
# Trains on a CUDA machine: builds core/, train/ and bench/ against that machine's LibTorch
# (PyTorch's, found through python3), checks the CUDA path (core tests, sampler bench), then
# runs tpdiff-train and tpdiff-eval there. Dependencies that the machine lacks (Abseil,
# nlohmann-json, GoogleTest, libpng headers) come from a prefix copied off a Debian 12 machine:
#   DEPS_PREFIX=/path/with/usr   (default: .gpu/usr, made by `scripts/gpu-deps.sh`)
#   STEP=build|check|train|pair|cost|eval  (several, comma separated; default build,check)
#   MODE=tpdiff|vanilla PRESET=gpu MINUTES=8 BATCH=64 TRAIN_OUT=out/gpu/shapes-tpdiff RESUME=1
#   TRAIN_ARGS="--word_layout_frames=16 --stage_weights=1,2,3"  (more tpdiff-train flags, `train`)
# `pair` trains the TPDiff model and its vanilla twin at once (same preset, batch, seed and
# wall-clock budget, sharing the GPU) into out/gpu/shapes-{tpdiff,vanilla}. END_AT (epoch
# seconds) caps both runs so that the whole command fits a time limit: the budget becomes
# min(MINUTES, time left until END_AT).
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${STEP:-build,check}
deps_prefix=${DEPS_PREFIX:-$PWD/.gpu/usr}
build_dir=${BUILD_DIR:-build-gpu}
torch_prefix=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')
torch_lib=$(python3 -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
export LD_LIBRARY_PATH="$deps_prefix/lib/x86_64-linux-gnu:$torch_lib:${LD_LIBRARY_PATH:-}"
has() { [[ ",$steps," == *",$1,"* ]]; }

if has build; then
  cmake -S . -B "$build_dir" -G Ninja -DTPDIFF_CORE_ONLY=ON -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_PREFIX_PATH="$torch_prefix;$deps_prefix" -DPNG_PNG_INCLUDE_DIR="$deps_prefix/include" \
    -DPNG_LIBRARY="$deps_prefix/lib/x86_64-linux-gnu/libpng16.so" -DZLIB_INCLUDE_DIR="$deps_prefix/include"
  # shellcheck disable=SC2086  # TARGETS is a word list
  cmake --build "$build_dir" -j "$(nproc)" --target ${TARGETS:-tpdiff_core_tests tpdiff_bench tpdiff_train tpdiff_eval}
fi
if has check; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  "$build_dir/tests/unit/tpdiff_core_tests" --gtest_brief=1
  "$build_dir/bench/tpdiff-bench" sampler --device=cuda --repeats=5
  "$build_dir/bench/tpdiff-bench" sampler --device=cuda --repeats=5 --net_width=128 --size=64
fi
if has train; then
  out=${TRAIN_OUT:-out/gpu/shapes-${MODE:-tpdiff}}
  args=(--device=cuda --mode="${MODE:-tpdiff}" --preset="${PRESET:-gpu}" --batch="${BATCH:-64}"
        --minutes="${MINUTES:-8}" --out="$out" --name="$(basename "$out")" --seed="${SEED:-1}"
        --checkpoint_every="${CHECKPOINT_EVERY:-1000}" --render_threads=8 --threads=8)
  [[ -n "${RESUME:-}" ]] && args+=(--resume)
  [[ -n "${ITERS:-}" ]] && args+=(--iters="$ITERS")
  [[ -n "${LR:-}" ]] && args+=(--lr="$LR")
  read -r -a extra <<<"${TRAIN_ARGS:-}"
  "$build_dir/train/tpdiff-train" "${args[@]}" "${extra[@]}"
fi
if has pair; then
  minutes=${MINUTES:-8}
  if [[ -n "${END_AT:-}" ]]; then
    minutes=$(python3 -c "import time; print(max(0.5, min($minutes, ($END_AT - time.time()) / 60)))")
  fi
  echo "pair: training both modes for $minutes minutes"
  pids=()
  for mode in tpdiff vanilla; do
    out=out/gpu/shapes-$mode
    mkdir -p "$out"
    "$build_dir/train/tpdiff-train" --device=cuda --mode="$mode" --preset="${PRESET:-cpu}" \
      --batch="${BATCH:-256}" --lr="${LR:-1e-3}" --warmup="${WARMUP:-200}" --minutes="$minutes" \
      --out="$out" --name="shapes-$mode" --seed="${SEED:-1}" --checkpoint_every=1000 \
      --render_threads="${RENDER_THREADS:-6}" --threads=2 --progress_interval=10 \
      >"$out/train.log" 2>&1 &
    pids+=($!)
  done
  status=0
  for pid in "${pids[@]}"; do wait "$pid" || status=1; done
  tail -n 3 out/gpu/shapes-*/train.log
  [[ $status == 0 ]]
fi
if has cost; then  # per-iteration cost of both modes at the pair's batch (seconds per step)
  for mode in tpdiff vanilla; do
    "$build_dir/train/tpdiff-train" --device=cuda --bench --bench_repeats=10 --mode="$mode" \
      --preset="${PRESET:-cpu}" --batch="${BATCH:-256}" --threads=2
  done
fi
if has eval; then
  model=${EVAL_MODEL:-out/gpu/shapes-tpdiff}
  sampler=${SAMPLER:-tpdiff}
  for list in single two; do
    "$build_dir/train/tpdiff-eval" --model="$model" --prompts="models/eval/prompts-$list.txt" \
      --out="${EVAL_OUT:-out/gpu/eval}-$(basename "$model")-$sampler-$list" --sampler="$sampler" \
      --guidance="${GUIDANCE:-4}" --device=cuda
  done
fi
