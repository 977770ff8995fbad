#ifndef TPDIFF_CORE_DENOISER_H_
#define TPDIFF_CORE_DENOISER_H_

#include <string>

#include <torch/types.h>

#include "absl/status/statusor.h"

namespace tpdiff::core {

// One batched network call.
struct DenoiserInput {
  torch::Tensor x;       // [B, C, T_k, H, W] float, the noisy video at stage frame rate
  torch::Tensor t;       // [B] float, global diffusion time in [0, 1]
  torch::Tensor stage;   // [B] int64, stage number k (1 = full frame rate)
  torch::Tensor tokens;  // [B, L] int64 caption token ids; all zeros = unconditional
};

// The network the sampler drives. It predicts the stage-wise velocity (flow matching) or
// eps_k (VP), with the same shape as `x`, on x's device.
//
// Thread safety: Predict is called from one thread at a time per instance (the job runner
// owns its denoiser); implementations need no locking of their own.
class Denoiser {
 public:
  virtual ~Denoiser() = default;
  virtual absl::StatusOr<torch::Tensor> Predict(const DenoiserInput& input) = 0;
};

}  // namespace tpdiff::core

#endif  // TPDIFF_CORE_DENOISER_H_
