#ifndef TPDIFF_BENCH_SAMPLER_BENCH_H_
#define TPDIFF_BENCH_SAMPLER_BENCH_H_

namespace tpdiff::bench {

// `tpdiff-bench sampler`: TPDiff vs vanilla sampling at equal total steps with a fixed-cost
// conv network; prints seconds per video, the measured ratio and the cost-counting
// prediction. Returns the process exit code.
int RunSamplerBench();

}  // namespace tpdiff::bench

#endif  // TPDIFF_BENCH_SAMPLER_BENCH_H_
