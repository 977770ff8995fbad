#include "conv_video_net.h"

#include <ATen/ATen.h>

#include <cmath>

namespace tpdiff::bench {

ConvVideoNet::ConvVideoNet(int channels, int width, uint64_t seed, torch::Device device) {
  torch::manual_seed(seed);
  auto init = [](std::vector<int64_t> shape, int64_t fan_in) {
    return torch::randn(shape) / std::sqrt(static_cast<double>(fan_in));
  };
  in_w_ = init({width, channels, 3, 3}, channels * 9);
  in_b_ = torch::zeros({width});
  mid_w_ = init({width, width, 3, 3}, width * 9);
  mid_b_ = torch::zeros({width});
  time_w_ = init({width, width, 3}, width * 3);
  time_b_ = torch::zeros({width});
  out_w_ = init({channels, width, 3, 3}, width * 9);
  out_b_ = torch::zeros({channels});
  for (torch::Tensor* w : {&in_w_, &in_b_, &mid_w_, &mid_b_, &time_w_, &time_b_, &out_w_, &out_b_}) {
    *w = w->to(device);
  }
}

absl::StatusOr<torch::Tensor> ConvVideoNet::Predict(const core::DenoiserInput& input) {
  const torch::Tensor& x = input.x;  // [B, C, T, H, W]
  const int64_t B = x.size(0), C = x.size(1), T = x.size(2), H = x.size(3), W = x.size(4);
  // Space: [B*T, C, H, W].
  torch::Tensor h = x.permute({0, 2, 1, 3, 4}).reshape({B * T, C, H, W});
  h = at::silu(at::conv2d(h, in_w_, in_b_, 1, 1));
  h = h + input.t.repeat_interleave(T).view({-1, 1, 1, 1});  // a time signal, as real nets have
  h = at::silu(at::conv2d(h, mid_w_, mid_b_, 1, 1));
  const int64_t D = h.size(1);
  // Time: [B*H*W, D, T].
  torch::Tensor s = h.view({B, T, D, H, W}).permute({0, 3, 4, 2, 1}).reshape({B * H * W, D, T});
  s = at::silu(at::conv1d(s, time_w_, time_b_, 1, 1));
  h = s.view({B, H, W, D, T}).permute({0, 4, 3, 1, 2}).reshape({B * T, D, H, W});
  h = at::conv2d(h, out_w_, out_b_, 1, 1);
  return h.view({B, T, C, H, W}).permute({0, 2, 1, 3, 4}).contiguous();
}

}  // namespace tpdiff::bench
