#!/usr/bin/env bash
# Trains on a CUDA machine: builds core/, train/ and bench/ against that machine's LibTorch
# (PyTorch's, found through python3), checks the CUDA path (core tests, sampler bench), then
# runs tpdiff-train and tpdiff-eval there. Dependencies that the machine lacks (Abseil,
# nlohmann-json, GoogleTest, libpng headers) come from a prefix copied off a Debian 12 machine:
#   DEPS_PREFIX=/path/with/usr   (default: .gpu/usr, made by `scripts/gpu-deps.sh`)
#   STEP=build|check|train|eval  (several, comma separated; default build,check)
#   MODE=tpdiff|vanilla PRESET=gpu MINUTES=8 BATCH=64 TRAIN_OUT=out/gpu/shapes-tpdiff RESUME=1
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
  cmake --build "$build_dir" -j "$(nproc)" --target tpdiff_core_tests tpdiff_bench tpdiff_train tpdiff_eval
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
  "$build_dir/train/tpdiff-train" "${args[@]}"
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
