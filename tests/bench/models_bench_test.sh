#!/usr/bin/env bash
# bench.models: trains two tiny packages (TPDiff and vanilla, 30 steps each), runs
# `tpdiff-bench models` on three prompts and checks the table, the JSON summary, the chart and
# the eval outputs; then that a swapped pair of packages is refused.
#   models_bench_test.sh TPDIFF_TRAIN TPDIFF_BENCH PROMPTS_FILE
set -euo pipefail
train_bin=$1 bench_bin=$2 prompts=$3
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

for mode in tpdiff vanilla; do
  "$train_bin" --mode "$mode" --preset tiny --iters 30 --batch 4 --seed 1 --threads 1 \
    --name "tiny-$mode" --out "$dir/$mode" 2>"$dir/train-$mode.log" ||
    { cat "$dir/train-$mode.log" >&2; fail "tpdiff-train --mode $mode"; }
done

"$bench_bin" models --tpdiff_model="$dir/tpdiff" --vanilla_model="$dir/vanilla" \
  --prompts="$prompts" --max_prompts=3 --threads=1 --out="$dir/out" --json="$dir/summary.json" \
  --svg="$dir/chart.svg" >"$dir/stdout.txt" 2>"$dir/stderr.txt" ||
  { cat "$dir/stdout.txt" "$dir/stderr.txt" >&2; fail "tpdiff-bench models failed"; }
cat "$dir/stdout.txt"

out=$(cat "$dir/stdout.txt")
# Table rows: name, package, plan, total steps (the tiny trainer's defaults: 10,10,10 and 30).
grep -Eq '^tpdiff +tiny-tpdiff +10,10,10 +30 ' <<<"$out" || fail "no tpdiff row"
grep -Eq '^vanilla +tiny-vanilla +30 +30 ' <<<"$out" || fail "no vanilla row"
grep -Eq '^tpdiff-pkg\+vanilla-sampler +tiny-tpdiff +30 +30 ' <<<"$out" || fail "no sampler row"
grep -q 'timing interleaved' <<<"$out" || fail "the timing method is not stated"
grep -Eq '^speed-up .*: [0-9.]+x +target >= 1.6x: (met|NOT met)$' <<<"$out" || fail "no speed-up line"
grep -Eq '^adherence difference .*: [-+][0-9.]+ points +target >= -2: (met|NOT met)$' <<<"$out" ||
  fail "no adherence line"

json=$(cat "$dir/summary.json")
grep -q '"benchmark": "models"' <<<"$json" || fail "JSON: benchmark"
[[ $(grep -c '"name": ' <<<"$json") == 3 ]] || fail "JSON: expected 3 rows"
[[ $(grep -c '"videos": 3$' <<<"$json") == 3 ]] || fail "JSON: expected 3 videos per row"
[[ $(grep -c '"total_steps": 30,' <<<"$json") == 3 ]] || fail "JSON: expected 30 steps per row"
# Positive timings and a positive speed-up; adherence fractions within [0, 1].
grep -Eq '"speedup": [0-9]*\.?[0-9]+(e[-+]?[0-9]+)?,' <<<"$json" || fail "JSON: speedup"
grep -Eq '"speedup": 0(\.0*)?,' <<<"$json" && fail "JSON: zero speedup"
while read -r value; do
  awk -v v="$value" 'BEGIN { exit !(v > 0 && v < 60) }' || fail "JSON: seconds per video $value"
done < <(sed -n 's/.*"seconds_per_video_median": \([-0-9.e+]*\).*/\1/p' <<<"$json")
while read -r value; do
  awk -v v="$value" 'BEGIN { exit !(v >= 0 && v <= 1) }' || fail "JSON: adherence $value"
done < <(sed -n 's/^      "adherence": \([-0-9.e+]*\).*/\1/p' <<<"$json")
grep -q '"adherence_met": \(true\|false\)' <<<"$json" || fail "JSON: adherence_met"
grep -q '<svg' "$dir/chart.svg" || fail "no chart"
[[ $(grep -c '<rect x=' "$dir/chart.svg") == 3 ]] || fail "chart: expected 3 bars"
for row in tpdiff vanilla tpdiff-pkg+vanilla-sampler; do
  [[ -f "$dir/out/$row/results.json" && -f "$dir/out/$row/0002/15.png" ]] ||
    fail "eval output of $row missing"
done
[[ ! -e "$dir/out/warmup" ]] || fail "warm-up output left behind"

# A swapped pair (vanilla package as the TPDiff one) is refused, not benchmarked.
if "$bench_bin" models --tpdiff_model="$dir/vanilla" --vanilla_model="$dir/tpdiff" \
  --prompts="$prompts" --max_prompts=1 --out="$dir/swapped" 2>"$dir/swapped.txt"; then
  fail "swapped packages accepted"
fi
grep -q 'tpdiff_model: package .tiny-vanilla. has 1 stage' "$dir/swapped.txt" ||
  { cat "$dir/swapped.txt" >&2; fail "swapped packages: unexpected message"; }
echo "bench.models: ok"
