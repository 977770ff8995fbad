#ifndef TPDIFF_CORE_SAMPLER_H_
#define TPDIFF_CORE_SAMPLER_H_

#include <cstdint>
#include <optional>
#include <vector>

#include <torch/types.h>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "tpdiff/core/cancellation.h"
#include "tpdiff/core/denoiser.h"
#include "tpdiff/core/stage_plan.h"

namespace tpdiff::core {

// Flow-matching solvers, at the same number of network calls except Heun:
//  - kEuler: one call per step.
//  - kAdamsBashforth2: one call per step; from a stage's second step on, the velocity is
//    extrapolated to the step's midpoint from this call's and the previous call's
//    predictions (second order, no extra call). The first step of every stage is Euler: a
//    jump starts a new path, so the previous stage's predictions do not carry over.
//  - kHeun: two calls per step (Euler predictor, trapezoidal corrector).
enum class FlowSolver { kEuler, kAdamsBashforth2, kHeun };

// "euler", "ab2", "heun"; ParseFlowSolver's INVALID_ARGUMENT names the accepted ones.
const char* FlowSolverName(FlowSolver solver);
absl::StatusOr<FlowSolver> ParseFlowSolver(absl::string_view name);

struct SampleRequest {
  int batch = 1;
  int channels = 3;
  int height = 32;
  int width = 32;
  torch::Tensor tokens;        // [batch, L] int64 caption ids, or [1, L] broadcast; may be empty
  // [batch, L'] or [1, L'] ids of a negative prompt; may be empty. When set, guidance pushes
  // away from it instead of from the empty caption: it replaces the unconditional row.
  torch::Tensor negative_tokens;
  // Latent packages: the text encoder's output for the prompt, [batch or 1, L, D] float, and
  // its mask [batch or 1, L] int64. Guidance (w != 1) needs the negative prompt's (or the
  // empty prompt's) encoding too; the two are concatenated [cond, uncond] on dim 0 for one
  // denoiser call per step. Encode both in one text-encoder call and pass its halves.
  torch::Tensor context;
  torch::Tensor context_mask;
  torch::Tensor negative_context;
  torch::Tensor negative_context_mask;
  double guidance_scale = 1.0;  // classifier-free guidance w; 1 = conditional only
  uint64_t seed = 0;            // all noise is drawn on the CPU from this seed, so a seed
                                // gives the same video on every device
  // v1 flow matching only. VP uses DDIM; latent schedules use Euler (flow) or DDIM (VP),
  // their vanilla samplers, whatever is asked here.
  FlowSolver solver = FlowSolver::kAdamsBashforth2;
  torch::Device device = torch::kCPU;
  // Overrides the initial noise of the noisiest stage ([batch, C, T_K, H, W]); tests use it.
  std::optional<torch::Tensor> initial_noise;
};

// Noise draws, all from one CPU generator seeded with SampleRequest::seed, float32, in this
// order (the latent package contract; Python's reference sampler draws the same):
//  1. the initial noise [batch, C, T_K, H, W];
//  2. at each jump, in sampling order: the pair noise [batch, C, P, H, W] with P the pooled
//     frames of the stage jumped from (Stage::pooled_frames), then, with a causal first
//     frame only, its fresh noise [batch, C, 1, H, W].

struct StepEvent {
  int stage = 0;           // stage number k (K .. 1)
  int stage_ordinal = 0;   // 1-based position in sampling order
  int num_stages = 0;
  int step = 0;            // 1-based step within the stage, after it completed
  int steps_in_stage = 0;
  int frames = 0;          // T_k
  double t = 0;            // time reached
};

struct StageEndEvent {
  int stage = 0;
  int stage_ordinal = 0;
  int num_stages = 0;
  int frames = 0;          // T_k
  int frame_stride = 1;    // 2^(k-1): the preview's fps is fps / frame_stride
  // [batch, C, T_k, H, W] clean estimate: the video clamped to [-1, 1] for v1 packages, the
  // latent (not clamped, still to be decoded) for latent ones.
  torch::Tensor preview;
  torch::Tensor latent;    // the stage's end point x_{e_k}
  double seconds = 0;      // wall time spent in this stage (jump included)
};

// Receives progress from the sampling thread, synchronously: keep callbacks short.
class SamplerObserver {
 public:
  virtual ~SamplerObserver() = default;
  virtual void OnStep(const StepEvent& event) {}
  virtual void OnStageEnd(const StageEndEvent& event) {}
};

// Runs a Denoiser through the stages of a plan (method note, section 5). Vanilla sampling is
// the same call with StagePlan::Vanilla. Stateless; safe to use from several threads with
// different denoisers.
class PyramidSampler {
 public:
  // Returns the clean video [batch, C, T, H, W] on request.device (values are not clamped),
  // CANCELLED if `cancel` was set (checked before every network call), or the denoiser's
  // error. `observer` and `cancel` may be null.
  static absl::StatusOr<torch::Tensor> Sample(Denoiser& denoiser, const StagePlan& plan,
                                              const SampleRequest& request,
                                              SamplerObserver* observer = nullptr,
                                              const CancellationToken* cancel = nullptr);
};

}  // namespace tpdiff::core

#endif  // TPDIFF_CORE_SAMPLER_H_
