#ifndef TPDIFF_CORE_TEMPORAL_OPS_H_
#define TPDIFF_CORE_TEMPORAL_OPS_H_

// Temporal resampling of videos laid out as [B, C, T, H, W] (any device, any float dtype).
// Down and Up are chosen so that P = Up(Down(.)) is an orthogonal projection, which the
// jump-point and preview formulas rely on (method note, section 2).

#include <torch/types.h>

namespace tpdiff::core {

// Mean of frames 2i and 2i+1: [B, C, T, H, W] -> [B, C, T/2, H, W]. T must be even.
torch::Tensor TemporalDown(const torch::Tensor& x);
// Each frame duplicated: [B, C, T, H, W] -> [B, C, 2T, H, W].
torch::Tensor TemporalUp(const torch::Tensor& x);
// Up(Down(x)): replaces each frame pair by its mean.
torch::Tensor TemporalProject(const torch::Tensor& x);
// Down applied `times` times (D_k with times = k - 1).
torch::Tensor TemporalDownTimes(const torch::Tensor& x, int times);

}  // namespace tpdiff::core

#endif  // TPDIFF_CORE_TEMPORAL_OPS_H_
