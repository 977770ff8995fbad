#!/usr/bin/env bash
# Builds and runs test suites under sanitizers, each in its own build folder (CI runs both
# after scripts/test.sh; timings on a 2-core machine are in docs/robustness.md).
#   scripts/sanitize.sh asan   AddressSanitizer + UndefinedBehaviorSanitizer: every unit and
#                              integration suite (build-asan)
#   scripts/sanitize.sh tsan   ThreadSanitizer: the concurrency suites — server (queue, job store,
#                              dispatcher), gateway + streaming integration, client, the fake
#                              clock, and the worker (job runner, gateway client) (build-tsan)
# Any sanitizer report fails the test that triggered it, and so the script.
# Environment: BUILD_DIR, JOBS, CMAKE_ARGS, CTEST_ARGS as in scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
mode=${1:?usage: scripts/sanitize.sh asan|tsan}
jobs=${JOBS:-$(nproc)}
supp=$root/tests/sanitizers

case "$mode" in
  asan)
    build_dir=${BUILD_DIR:-build-asan}
    sanitize=address,undefined
    targets=(tpdiff_common_tests tpdiff_spec_tests tpdiff_core_tests tpdiff_model_tests tpdiff_train_tests
             tpdiff_media_tests tpdiff_server_tests tpdiff_worker_tests tpdiff_client_tests
             tpdiff_server_integration_tests tpdiff_worker_integration_tests)
    labels='^(unit|integration)$'
    export ASAN_OPTIONS="halt_on_error=1:detect_leaks=1:detect_stack_use_after_return=0:strict_string_checks=1:check_initialization_order=1"
    export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:suppressions=$supp/ubsan.supp"
    export LSAN_OPTIONS="suppressions=$supp/lsan.supp:print_suppressions=0"
    ;;
  tsan)
    build_dir=${BUILD_DIR:-build-tsan}
    sanitize=thread
    targets=(tpdiff_common_tests tpdiff_server_tests tpdiff_server_integration_tests tpdiff_client_tests
             tpdiff_worker_tests)
    labels='^(unit|integration)$'
    # One LibTorch/OpenMP thread: the sampler's intra-op threads are uninstrumented third-party
    # code (see tsan.supp); the service's own threads are what is under test.
    export OMP_NUM_THREADS=1
    export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:history_size=4:suppressions=$supp/tsan.supp"
    ;;
  *)
    echo "usage: scripts/sanitize.sh asan|tsan" >&2
    exit 2
    ;;
esac

start=$(date +%s)
cmake -S . -B "$build_dir" -G Ninja -DTPDIFF_SANITIZE=$sanitize ${CMAKE_ARGS:-}
cmake --build "$build_dir" -j "$jobs" --target "${targets[@]}"
built=$(date +%s)
# Suites not built in this folder (gtest_discover_tests' *_NOT_BUILT placeholders) are skipped.
ctest --test-dir "$build_dir" --output-on-failure -j "$jobs" -L "$labels" -E '_NOT_BUILT' \
  --timeout 600 ${CTEST_ARGS:-}
echo "sanitize.sh $mode: build $((built - start)) s, tests $(( $(date +%s) - built )) s"
