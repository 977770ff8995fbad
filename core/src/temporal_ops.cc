#include "tpdiff/core/temporal_ops.h"

#include <ATen/ATen.h>

namespace tpdiff::core {
namespace {

torch::Tensor PairMean(const torch::Tensor& x) {
  TORCH_CHECK(x.size(2) % 2 == 0, "TemporalDown needs an even number of pooled frames, got ",
              x.size(2));
  const auto s = x.sizes();
  return x.reshape({s[0], s[1], s[2] / 2, 2, s[3], s[4]}).mean(3);
}

}  // namespace

torch::Tensor TemporalDown(const torch::Tensor& x, bool causal_first_frame) {
  TORCH_CHECK(x.dim() == 5, "TemporalDown expects [B, C, T, H, W], got ", x.sizes());
  if (!causal_first_frame) return PairMean(x);
  TORCH_CHECK(x.size(2) >= 1, "TemporalDown: no first frame in ", x.sizes());
  return torch::cat({x.narrow(2, 0, 1), PairMean(x.narrow(2, 1, x.size(2) - 1))}, 2);
}

torch::Tensor TemporalUp(const torch::Tensor& x, bool causal_first_frame) {
  TORCH_CHECK(x.dim() == 5, "TemporalUp expects [B, C, T, H, W], got ", x.sizes());
  if (!causal_first_frame) return x.repeat_interleave(2, 2);
  return torch::cat({x.narrow(2, 0, 1), x.narrow(2, 1, x.size(2) - 1).repeat_interleave(2, 2)},
                    2);
}

torch::Tensor TemporalProject(const torch::Tensor& x, bool causal_first_frame) {
  return TemporalUp(TemporalDown(x, causal_first_frame), causal_first_frame);
}

torch::Tensor TemporalDownTimes(const torch::Tensor& x, int times, bool causal_first_frame) {
  torch::Tensor y = x;
  for (int i = 0; i < times; ++i) y = TemporalDown(y, causal_first_frame);
  return y;
}

}  // namespace tpdiff::core
