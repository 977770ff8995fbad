#!/usr/bin/env bash
# Builds everything (Release) and runs the test suite. This is the README's test command and
# exactly what CI runs after scripts/install-deps.sh.
#   BUILD_DIR=build-asan CMAKE_ARGS="-DTPDIFF_SANITIZE=address,undefined" scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${BUILD_DIR:-build}
jobs=${JOBS:-$(nproc)}
cmake -S . -B "$build_dir" -G Ninja ${CMAKE_ARGS:-}
cmake --build "$build_dir" -j "$jobs"
ctest --test-dir "$build_dir" --output-on-failure -j "$jobs" ${CTEST_ARGS:-}
