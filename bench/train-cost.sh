#!/usr/bin/env bash
# Training cost, TPDiff vs vanilla (issue #3): trains the same network preset in both modes from
# the same seed for the same wall-clock budget, measures each mode's per-iteration cost with
# tpdiff-train --bench, evaluates both packages with tpdiff-eval (each with its own default
# plan: 10,10,10 and 30) and prints steps done, clips seen, seconds per iteration, the
# per-iteration cost ratio (vanilla / tpdiff; the paper reports ~2x) and the adherence each
# reached. Reproduce:
#
#   MINUTES=20 DEVICE=cpu PRESET=cpu bench/train-cost.sh              # 2 x 20 min, one after the other
#   MINUTES=20 DEVICE=cuda PRESET=gpu BATCH=128 PARALLEL=1 bench/train-cost.sh   # both at once on a GPU
#   MINUTES=0.5 PRESET=tiny BATCH=4 bench/train-cost.sh               # smoke run (a minute or two)
#
# Environment (defaults in brackets):
#   MINUTES [20]     training budget per mode, wall clock (the trainer's --minutes)
#   DEVICE [cpu]     cpu | cuda[:N]
#   PRESET [cpu]     network preset: tiny | cpu | gpu
#   BATCH [16]       clips per step, both modes
#   THREADS [0]      LibTorch intra-op threads (0 = all cores), training, --bench and eval
#   SEED [1]         seed for initialisation, data and noise, both modes
#   PARALLEL [0]     1 = train both modes at once (a GPU with spare capacity); else one after
#                    the other, so neither slows the other down
#   BENCH_REPEATS [5]  timed steps per stage for the --bench cost measurement
#   EXTRA_TRAIN_ARGS   more tpdiff-train flags for both modes (e.g. "--lr 8e-4 --render-threads 4")
#   PROMPTS [models/eval/prompts-single.txt]   eval prompts
#   OUT [out/train-cost]   OUT/{tpdiff,vanilla} packages + logs, OUT/eval-*, OUT/summary.json
#   BUILD_DIR [build], TRAIN_BIN [$BUILD_DIR/train/tpdiff-train],
#   EVAL_BIN [$BUILD_DIR/train/tpdiff-eval]
set -euo pipefail
cd "$(dirname "$0")/.."

minutes=${MINUTES:-20}
device=${DEVICE:-cpu}
preset=${PRESET:-cpu}
batch=${BATCH:-16}
threads=${THREADS:-0}
seed=${SEED:-1}
parallel=${PARALLEL:-0}
bench_repeats=${BENCH_REPEATS:-5}
prompts=${PROMPTS:-models/eval/prompts-single.txt}
out=${OUT:-out/train-cost}
build_dir=${BUILD_DIR:-build}
train_bin=${TRAIN_BIN:-$build_dir/train/tpdiff-train}
eval_bin=${EVAL_BIN:-$build_dir/train/tpdiff-eval}
read -r -a extra_args <<<"${EXTRA_TRAIN_ARGS:-}"
modes=(tpdiff vanilla)

for bin in "$train_bin" "$eval_bin"; do
  if [[ ! -x $bin ]]; then
    echo "train-cost: $bin is not an executable (build tpdiff_train and tpdiff_eval, or set TRAIN_BIN/EVAL_BIN)" >&2
    exit 1
  fi
done
[[ -f $prompts ]] || { echo "train-cost: no prompt list $prompts" >&2; exit 1; }
if [[ $parallel == 1 && $device == cpu ]]; then
  echo "train-cost: warning: PARALLEL=1 on the CPU: the two trainings share the cores" >&2
fi
mkdir -p "$out"

# Both modes get identical flags except --mode (and where they write).
common_args=(--preset "$preset" --batch "$batch" --threads "$threads" --seed "$seed"
  --device "$device" "${extra_args[@]}")

# 1. Training, same budget and seed. A fresh package folder each time: --resume is never given,
#    so an old checkpoint in OUT cannot leak into the comparison.
train() {
  local mode=$1
  rm -rf "${out:?}/$mode"
  "$train_bin" --mode "$mode" "${common_args[@]}" --minutes "$minutes" --name "train-cost-$mode" \
    --out "$out/$mode" --progress-interval 10 >"$out/train-$mode.log" 2>&1
}
echo "train-cost: training ${modes[*]} for $minutes min each (preset $preset, batch $batch," \
  "device $device, seed $seed, $([[ $parallel == 1 ]] && echo "in parallel" || echo "one after the other"))"
if [[ $parallel == 1 ]]; then
  pids=()
  for mode in "${modes[@]}"; do
    train "$mode" &
    pids+=($!)
  done
  for i in "${!pids[@]}"; do
    wait "${pids[$i]}" || { echo "train-cost: ${modes[$i]} training failed; see $out/train-${modes[$i]}.log" >&2; exit 1; }
  done
else
  for mode in "${modes[@]}"; do
    train "$mode" || { echo "train-cost: $mode training failed; see $out/train-$mode.log" >&2; exit 1; }
  done
fi

# 2. Per-iteration cost measured in isolation (tpdiff-train --bench: timed steps of each stage;
#    stages are drawn uniformly in training, so their mean is the expected step), one mode at a
#    time even with PARALLEL=1 so the two measurements never share the machine.
for mode in "${modes[@]}"; do
  "$train_bin" --mode "$mode" "${common_args[@]}" --bench --bench-repeats "$bench_repeats" \
    >"$out/bench-$mode.txt" 2>&1 || { echo "train-cost: $mode --bench failed; see $out/bench-$mode.txt" >&2; exit 1; }
done

# 3. Adherence reached: each package with its own default plan and guidance.
for mode in "${modes[@]}"; do
  "$eval_bin" --model "$out/$mode" --prompts "$prompts" --out "$out/eval-$mode" \
    --threads "$threads" --device "$device" >"$out/eval-$mode.txt" 2>"$out/eval-$mode.log" ||
    { echo "train-cost: $mode eval failed; see $out/eval-$mode.log" >&2; exit 1; }
done

# Figures. train_log.csv: step,loss,seconds,stage,lr,clips (seconds = training time so far).
declare -A steps clips train_s s_per_iter bench_s adherence eval_line plan
for mode in "${modes[@]}"; do
  IFS=, read -r "steps[$mode]" _ "train_s[$mode]" _ _ "clips[$mode]" < <(tail -n 1 "$out/$mode/train_log.csv")
  if [[ ${steps[$mode]} == step ]]; then
    echo "train-cost: $mode trained no steps in $minutes min; see $out/train-$mode.log" >&2
    exit 1
  fi
  s_per_iter[$mode]=$(awk -v s="${train_s[$mode]}" -v n="${steps[$mode]}" 'BEGIN { printf "%.5f", s / n }')
  # "mean over stages (stages drawn uniformly): S s/step = C clips/s": batch / C keeps more
  # digits than S for small networks.
  clips_per_s=$(sed -n 's/^mean over stages.* s\/step = \([0-9.]*\) clips\/s.*/\1/p' "$out/bench-$mode.txt")
  [[ -n $clips_per_s ]] || { echo "train-cost: no 'mean over stages' line in $out/bench-$mode.txt" >&2; exit 1; }
  bench_s[$mode]=$(awk -v b="$batch" -v c="$clips_per_s" 'BEGIN { printf "%.5f", b / c }')
  # tpdiff-eval's summary line: "<sampler> sampler, N steps: adherence A (...) ... S s/video".
  eval_line[$mode]=$(grep -m 1 ' sampler, .* steps: adherence ' "$out/eval-$mode.txt")
  adherence[$mode]=$(sed -n 's/.*: adherence \([0-9.]*\) .*/\1/p' <<<"${eval_line[$mode]}")
  # The package's default plan (model.json: "default_stage_steps": [10, 10, 10], one per line).
  plan[$mode]=$(awk '/"default_stage_steps"/ { on = 1; next } on && /]/ { exit }
                     on { gsub(/[ ,]/, ""); p = p (p == "" ? "" : ",") $0 } END { print p }' \
    "$out/$mode/model.json")
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", (b > 0) ? a / b : 0 }'; }
train_ratio=$(ratio "${s_per_iter[vanilla]}" "${s_per_iter[tpdiff]}")
bench_ratio=$(ratio "${bench_s[vanilla]}" "${bench_s[tpdiff]}")
clips_ratio=$(ratio "${clips[tpdiff]}" "${clips[vanilla]}")
diff_points=$(awk -v a="${adherence[tpdiff]}" -v b="${adherence[vanilla]}" 'BEGIN { printf "%+.1f", 100 * (a - b) }')

echo
echo "training cost, TPDiff vs vanilla: preset $preset, batch $batch, $minutes min each, seed $seed, device $device, threads $threads, $([[ $parallel == 1 ]] && echo parallel || echo sequential)"
printf '%-8s %8s %10s %12s %14s %10s  %s\n' mode steps clips "s/iter train" "s/iter --bench" adherence "eval plan (steps)"
for mode in "${modes[@]}"; do
  printf '%-8s %8d %10d %12.5f %14.5f %10.3f  %s\n' "$mode" "${steps[$mode]}" "${clips[$mode]}" \
    "${s_per_iter[$mode]}" "${bench_s[$mode]}" "${adherence[$mode]}" "${plan[$mode]}"
done
echo "per-iteration cost ratio vanilla/tpdiff: ${train_ratio}x in training (elapsed/steps), ${bench_ratio}x by --bench (paper: ~2x)"
echo "clips seen in the same budget, tpdiff/vanilla: ${clips_ratio}x"
echo "adherence reached on $(basename "$prompts"): tpdiff ${adherence[tpdiff]}, vanilla ${adherence[vanilla]} ($diff_points points)"
for mode in "${modes[@]}"; do echo "  $mode eval: ${eval_line[$mode]}"; done

json_mode() {
  local mode=$1
  printf '    "%s": {"steps": %s, "clips": %s, "train_seconds": %s, "seconds_per_iteration": %s, "bench_seconds_per_iteration": %s, "adherence": %s, "eval_plan": "%s", "package": "%s", "eval_out": "%s"}' \
    "$mode" "${steps[$mode]}" "${clips[$mode]}" "${train_s[$mode]}" "${s_per_iter[$mode]}" \
    "${bench_s[$mode]}" "${adherence[$mode]}" "${plan[$mode]}" "$out/$mode" "$out/eval-$mode"
}
{
  echo "{"
  printf '  "config": {"minutes": %s, "device": "%s", "preset": "%s", "batch": %s, "threads": %s, "seed": %s, "parallel": %s, "prompts": "%s"},\n' \
    "$minutes" "$device" "$preset" "$batch" "$threads" "$seed" "$([[ $parallel == 1 ]] && echo true || echo false)" "$prompts"
  echo '  "modes": {'
  json_mode tpdiff; echo ","
  json_mode vanilla; echo
  echo "  },"
  printf '  "cost_ratio_vanilla_over_tpdiff": {"training": %s, "bench": %s},\n' "$train_ratio" "$bench_ratio"
  printf '  "clips_ratio_tpdiff_over_vanilla": %s,\n' "$clips_ratio"
  printf '  "adherence_diff_points": %s\n' "${diff_points#+}"
  echo "}"
} >"$out/summary.json"
echo "summary: $out/summary.json"
