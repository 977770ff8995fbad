#ifndef TPDIFF_BENCH_LATENT_BENCH_H_
#define TPDIFF_BENCH_LATENT_BENCH_H_

namespace tpdiff::bench {

// `tpdiff-bench latent --package=DIR`: a latent package's job costs through the worker's
// pipeline (model::SampleLatentJob, LatentModules::Decode): TPDiff vs vanilla sampling at
// equal total steps, interleaved in one run, with the text encoding and the VAE decoding of
// the previews and the video per job, and the process's peak resident memory. Returns the
// process exit code.
int RunLatentBench();

}  // namespace tpdiff::bench

#endif  // TPDIFF_BENCH_LATENT_BENCH_H_
