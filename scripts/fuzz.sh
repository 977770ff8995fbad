#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz) with clang, ASan and UBSan in build-fuzz, replays
# the seed corpora, then fuzzes each target for FUZZ_SECONDS (default 20). New inputs go to
# build-fuzz/fuzz-corpus/<target>/ (not the repository); a crash leaves its input in
# build-fuzz/fuzz-artifacts/ and fails the script. To keep a crash as a regression, fix it,
# add a unit test, and copy the input into tests/fuzz/corpus/<target>/.
#   FUZZ_SECONDS=300 scripts/fuzz.sh            # a longer local run
#   FUZZ_TARGETS="manifest" scripts/fuzz.sh     # one target
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
build_dir=${BUILD_DIR:-build-fuzz}
jobs=${JOBS:-$(nproc)}
seconds=${FUZZ_SECONDS:-20}
targets=(${FUZZ_TARGETS:-validation manifest tokenizer})

start=$(date +%s)
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DTPDIFF_FUZZ=ON \
  -DTPDIFF_SANITIZE=address,undefined ${CMAKE_ARGS:-}
cmake --build "$build_dir" -j "$jobs" --target $(printf 'tpdiff_%s_fuzzer ' "${targets[@]}")
built=$(date +%s)

export ASAN_OPTIONS="halt_on_error=1:detect_leaks=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:suppressions=$root/tests/sanitizers/ubsan.supp"
export LSAN_OPTIONS="suppressions=$root/tests/sanitizers/lsan.supp:print_suppressions=0"
ctest --test-dir "$build_dir" --output-on-failure -L fuzz
mkdir -p "$build_dir/fuzz-artifacts"
for name in "${targets[@]}"; do
  work=$build_dir/fuzz-corpus/$name
  mkdir -p "$work"
  dict=()
  [[ -f tests/fuzz/$name.dict ]] && dict=(-dict="tests/fuzz/$name.dict")
  echo "fuzz.sh: $name for ${seconds} s"
  "$build_dir/tests/fuzz/tpdiff_${name}_fuzzer" "${dict[@]}" -max_total_time="$seconds" \
    -timeout=10 -rss_limit_mb=4096 -max_len=4096 -print_final_stats=1 \
    -artifact_prefix="$build_dir/fuzz-artifacts/$name-" "$work" "tests/fuzz/corpus/$name"
done
echo "fuzz.sh: build $((built - start)) s, fuzzing $(( $(date +%s) - built )) s"
