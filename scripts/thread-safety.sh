#!/usr/bin/env bash
# Checks the Abseil thread-safety annotations (ABSL_GUARDED_BY, ABSL_EXCLUSIVE_LOCKS_REQUIRED,
# ...) with clang's -Wthread-safety, warnings as errors, in its own build folder (build-tsa).
# Compiles, without linking, every translation unit of the components whose headers carry
# annotations and of the test binaries that use them: the common, server, worker and client
# libraries and tpdiff_{common,server,client,worker}_tests, tpdiff_server_integration_tests. Nothing links, so
# LibTorch-heavy core/ is never compiled; only its headers are parsed. Left out:
# tpdiff_worker_integration_tests, which annotates nothing and whose objects wait for the
# tpdiff-worker binary (add_dependencies), that is for all of core/.
# Plain -Werror works: third-party headers (LibTorch, Abseil, gRPC, protobuf) come in as
# system headers, whose warnings clang does not report.
# Cost in a fresh folder with a cold ccache: about 100 s of CPU time (no optimization), so
# about a minute on 2 idle cores; 6 minutes of wall time on 2 cores shared with other builds
# (2 minutes there with a warm ccache).
#   scripts/thread-safety.sh         Environment: BUILD_DIR (build-tsa), JOBS (nproc)
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${BUILD_DIR:-build-tsa}
jobs=${JOBS:-$(nproc)}
launcher=()
if command -v ccache >/dev/null; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi

start=$(date +%s)
# Build type ThreadSafety has no flags of its own: no optimization and no debug info, as only
# the diagnostics matter here.
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=ThreadSafety \
  -DCMAKE_CXX_FLAGS="-Wthread-safety -Werror" "${launcher[@]}" >/dev/null

targets=(tpdiff_common tpdiff_server tpdiff_worker tpdiff_client tpdiff_common_tests
         tpdiff_server_tests tpdiff_client_tests tpdiff_worker_tests
         tpdiff_server_integration_tests)
pattern=$(IFS='|'; echo "${targets[*]}")
# The object files of those targets (Ninja builds an object once the generated headers it
# needs exist, without linking its target's dependencies).
mapfile -t objects < <(ninja -C "$build_dir" -t targets all |
  sed -n -E "s#^(.*CMakeFiles/(${pattern})\.dir/.*\.o): .*#\1#p")
(( ${#objects[@]} > 0 )) || { echo "thread-safety: no object files found for ${targets[*]}" >&2; exit 1; }
# -k 0: report every failing translation unit, not just the first.
ninja -C "$build_dir" -j "$jobs" -k 0 "${objects[@]}"
echo "thread-safety: ${#objects[@]} translation units clean in $(( $(date +%s) - start )) s"
