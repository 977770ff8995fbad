#ifndef TPDIFF_CORE_DENOISER_H_
#define TPDIFF_CORE_DENOISER_H_

#include <string>

#include <torch/types.h>

#include "absl/status/statusor.h"

namespace tpdiff::core {

// One batched network call. v1 denoisers read x, t, stage and tokens; latent denoisers read
// x, timestep, stage, context and mask.
struct DenoiserInput {
  torch::Tensor x;       // [B, C, T_k, H, W] float, the noisy video (or latent) at stage rate
  torch::Tensor t;       // [B] float, global diffusion time in [0, 1] (unshifted)
  torch::Tensor stage;   // [B] int64, stage number k (1 = full frame rate)
  torch::Tensor tokens;  // [B, L] int64 caption token ids; all zeros = unconditional (v1)
  // [B] float, the time in the denoiser's own units (NoiseSchedule::ModelTimestep): flow
  // sigma * timestep_scale, discrete VP the index tau (N - 1); equal to t for v1 schedules.
  torch::Tensor timestep;
  torch::Tensor context;  // [B, L, D] float text embeddings; undefined for v1 denoisers
  torch::Tensor mask;     // [B, L] int64, 1 = real token; undefined for v1 denoisers
};

// The network the sampler drives. A v1 denoiser predicts the stage-wise velocity (flow
// matching) or eps_k (VP); a latent one its schedule's Prediction (flow velocity, epsilon or
// v). Same shape as `x`, on x's device.
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
