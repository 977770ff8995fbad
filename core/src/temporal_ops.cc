#include "tpdiff/core/temporal_ops.h"

#include <ATen/ATen.h>

namespace tpdiff::core {

torch::Tensor TemporalDown(const torch::Tensor& x) {
  TORCH_CHECK(x.dim() == 5, "TemporalDown expects [B, C, T, H, W], got ", x.sizes());
  TORCH_CHECK(x.size(2) % 2 == 0, "TemporalDown needs an even frame count, got ", x.size(2));
  const auto s = x.sizes();
  return x.reshape({s[0], s[1], s[2] / 2, 2, s[3], s[4]}).mean(3);
}

torch::Tensor TemporalUp(const torch::Tensor& x) {
  TORCH_CHECK(x.dim() == 5, "TemporalUp expects [B, C, T, H, W], got ", x.sizes());
  return x.repeat_interleave(2, 2);
}

torch::Tensor TemporalProject(const torch::Tensor& x) { return TemporalUp(TemporalDown(x)); }

torch::Tensor TemporalDownTimes(const torch::Tensor& x, int times) {
  torch::Tensor y = x;
  for (int i = 0; i < times; ++i) y = TemporalDown(y);
  return y;
}

}  // namespace tpdiff::core
