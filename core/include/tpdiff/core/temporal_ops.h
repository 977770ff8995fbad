#ifndef TPDIFF_CORE_TEMPORAL_OPS_H_
#define TPDIFF_CORE_TEMPORAL_OPS_H_

// Temporal resampling of videos laid out as [B, C, T, H, W] (any device, any float dtype).
// Down and Up are chosen so that P = Up(Down(.)) is an orthogonal projection, which the
// jump-point and preview formulas rely on (method note, section 2).
//
// `causal_first_frame`: the latents of a causal video VAE, T = 1 + N, whose frame 0 encodes
// the first pixel frame alone. Frame 0 is kept as is by every operation and only frames 1..N
// are pooled in pairs (N even) and duplicated; P is then the identity on frame 0 and still an
// orthogonal projection.

#include <torch/types.h>

namespace tpdiff::core {

// Mean of frames 2i and 2i+1: [B, C, T, H, W] -> [B, C, T/2, H, W]. T must be even
// (causal: frame 0, then the means of frames (1,2), (3,4), ...; T - 1 must be even).
torch::Tensor TemporalDown(const torch::Tensor& x, bool causal_first_frame = false);
// Each frame duplicated: [B, C, T, H, W] -> [B, C, 2T, H, W] (causal: frame 0 once, then
// frames 1.. twice: T -> 1 + 2 (T - 1)).
torch::Tensor TemporalUp(const torch::Tensor& x, bool causal_first_frame = false);
// Up(Down(x)): replaces each frame pair by its mean (causal: frame 0 unchanged).
torch::Tensor TemporalProject(const torch::Tensor& x, bool causal_first_frame = false);
// Down applied `times` times (D_k with times = k - 1).
torch::Tensor TemporalDownTimes(const torch::Tensor& x, int times,
                                bool causal_first_frame = false);

}  // namespace tpdiff::core

#endif  // TPDIFF_CORE_TEMPORAL_OPS_H_
