#ifndef TPDIFF_MODEL_LATENT_JOB_H_
#define TPDIFF_MODEL_LATENT_JOB_H_

// One text-to-video job on a latent package, as the worker and tpdiff-sample run it:
// tokenize, encode the prompt and the unconditional (or negative) prompt once in one batch-2
// encoder call, sample the latents with the package's schedule and stage plan, decode.

#include <torch/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "tpdiff/core/cancellation.h"
#include "tpdiff/core/denoiser.h"
#include "tpdiff/core/sampler.h"
#include "tpdiff/core/schedule.h"
#include "tpdiff/core/stage_plan.h"
#include "tpdiff/model/latent_modules.h"
#include "tpdiff/spec/manifest.h"
#include "tpdiff/spec/tokenizer.h"

namespace tpdiff::model {

// The denoiser of a latent package: the shared modules called with the sampler's batched
// input (latents, the model's timestep, stage, the job's text context and mask; under
// guidance [cond, uncond] rows). Returns the module's raw prediction (flow velocity, eps or
// v, per the manifest), float32; the sampler turns it into its step. Cheap to make: no
// weights are copied.
//
// Thread safety: one thread at a time per instance; any number of instances share the
// modules.
class LatentDenoiser : public core::Denoiser {
 public:
  explicit LatentDenoiser(std::shared_ptr<const LatentModules> modules)
      : modules_(std::move(modules)) {}
  absl::StatusOr<torch::Tensor> Predict(const core::DenoiserInput& input) override;

 private:
  std::shared_ptr<const LatentModules> modules_;
};

// A latent job, every field already validated against the manifest (spec::ValidateAndFill).
struct LatentJobRequest {
  std::string prompt;
  std::string negative_prompt;  // empty = unconditional
  double guidance_scale = 1.0;  // 1 = conditional only (batch 1, no second encoder row)
  uint64_t seed = 1;
  std::vector<int> stage_steps;  // one per stage, noisiest first
  bool vanilla = false;          // one stage with the sum of the steps
  int num_frames = 0;            // pixels
  int height = 0;
  int width = 0;
};

struct LatentJobResult {
  torch::Tensor latents;  // the last stage's end latents [1, C, T', h, w] float32
  // Each stage's end latents, in sampling order (stage K first).
  std::vector<torch::Tensor> stage_latents;
  double encode_seconds = 0;  // tokenizing and the text encoder
  double sample_seconds = 0;  // every denoiser call and the sampler's arithmetic
};

// The stage plan of a request: `stage_steps` over the latent frame count of
// num_frames, the manifest's boundaries when the stage count is the manifest's; vanilla = one
// stage with the total steps. INVALID_ARGUMENT naming stage_steps or the size fields.
absl::StatusOr<core::StagePlan> LatentPlan(const spec::ModelManifest& manifest,
                                           const LatentJobRequest& request);

// Runs the job up to its final latents through `denoiser` (one of the package's
// LatentDenoisers). `observer` sees every step and stage end (StageEnd's preview is the
// stage's clean latent estimate, for Decode); `cancel` is polled before every denoiser call.
// Either may be null.
absl::StatusOr<LatentJobResult> SampleLatentJob(const spec::ModelManifest& manifest,
                                                const spec::Tokenizer& tokenizer,
                                                const LatentModules& modules,
                                                core::Denoiser& denoiser,
                                                const LatentJobRequest& request,
                                                core::SamplerObserver* observer = nullptr,
                                                const core::CancellationToken* cancel = nullptr);

}  // namespace tpdiff::model

#endif  // TPDIFF_MODEL_LATENT_JOB_H_
