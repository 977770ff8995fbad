#ifndef TPDIFF_BENCH_CONV_VIDEO_NET_H_
#define TPDIFF_BENCH_CONV_VIDEO_NET_H_

#include <torch/types.h>

#include "tpdiff/core/denoiser.h"

namespace tpdiff::bench {

// A randomly initialised factorized conv video network with a fixed cost per frame: two
// spatial 3x3 convolutions (time folded into the batch) around one temporal conv (space
// folded into the batch). Its cost is linear in the frame count, which is what the
// cost-counting prediction of TPDiff's speed-up assumes.
class ConvVideoNet : public core::Denoiser {
 public:
  ConvVideoNet(int channels, int width, uint64_t seed, torch::Device device = torch::kCPU);
  absl::StatusOr<torch::Tensor> Predict(const core::DenoiserInput& input) override;

 private:
  torch::Tensor in_w_, in_b_, mid_w_, mid_b_, time_w_, time_b_, out_w_, out_b_;
};

}  // namespace tpdiff::bench

#endif  // TPDIFF_BENCH_CONV_VIDEO_NET_H_
