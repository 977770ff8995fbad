#ifndef TPDIFF_BENCH_MODEL_BENCH_H_
#define TPDIFF_BENCH_MODEL_BENCH_H_

namespace tpdiff::bench {

// `tpdiff-bench models --tpdiff_model=DIR --vanilla_model=DIR`: the inference comparison of
// issue #3, end to end. The TPDiff-trained package is sampled with its default stage plan
// (3x10), the vanilla-trained package of the same network with its default (1 stage, 30
// steps), optionally the TPDiff package with the vanilla sampler at the vanilla package's
// steps too (separates the sampler from the training); every row goes through tpdiff-eval's
// runner (the service's sampler, the caption detector's scoring) on the same prompts and
// seeds, with prompts interleaved between rows so the machine's load hits all of them alike.
// Prints seconds per video, adherence overall and per attribute, smoothness, the speed ratio
// and the adherence difference against the targets (>= 1.6x, <= 2 points lower); writes each
// row's eval output, a JSON summary (--json) and a bar chart (--svg). Returns the exit code
// (0 also when a target is missed: the figures are the result).
int RunModelBench();

}  // namespace tpdiff::bench

#endif  // TPDIFF_BENCH_MODEL_BENCH_H_
