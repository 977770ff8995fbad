#include "tpdiff/model/latent_job.h"

#include <chrono>
#include <numeric>
#include <utility>

#include "absl/strings/str_cat.h"
#include "tpdiff/core/torch_status.h"

namespace tpdiff::model {
namespace {

using SteadyClock = std::chrono::steady_clock;

double SecondsSince(SteadyClock::time_point t) {
  return std::chrono::duration<double>(SteadyClock::now() - t).count();
}

// Rows of `ids` as an int64 tensor [rows, max_tokens] on `device`.
torch::Tensor Rows(const std::vector<std::vector<int64_t>>& rows, torch::Device device) {
  std::vector<torch::Tensor> t;
  for (const auto& r : rows) t.push_back(torch::tensor(r, torch::kLong));
  return torch::stack(t).to(device);
}

// Collects each stage's end latents for the result, then passes the event on.
class StageCollector : public core::SamplerObserver {
 public:
  StageCollector(core::SamplerObserver* next, std::vector<torch::Tensor>* stage_latents)
      : next_(next), stage_latents_(stage_latents) {}
  void OnStep(const core::StepEvent& e) override {
    if (next_ != nullptr) next_->OnStep(e);
  }
  void OnStageEnd(const core::StageEndEvent& e) override {
    stage_latents_->push_back(e.latent);
    if (next_ != nullptr) next_->OnStageEnd(e);
  }

 private:
  core::SamplerObserver* next_;
  std::vector<torch::Tensor>* stage_latents_;
};

}  // namespace

absl::StatusOr<torch::Tensor> LatentDenoiser::Predict(const core::DenoiserInput& in) {
  if (!in.context.defined() || !in.mask.defined() || !in.timestep.defined()) {
    return absl::InternalError("denoiser: a latent denoiser needs timestep, context and mask");
  }
  return modules_->Denoise(in.x, in.timestep, in.stage, in.context, in.mask);
}

absl::StatusOr<core::StagePlan> LatentPlan(const spec::ModelManifest& manifest,
                                           const LatentJobRequest& request) {
  const spec::VaeConfig& vae = manifest.latent.vae;
  const int stages = static_cast<int>(request.stage_steps.size());
  absl::StatusOr<spec::LatentShape> shape = spec::LatentShapeFor(
      vae, stages, request.num_frames, request.height, request.width, "num_frames");
  if (!shape.ok()) return shape.status();
  absl::StatusOr<core::NoiseSchedule> schedule =
      core::NoiseSchedule::FromConfig(manifest.latent.schedule);
  if (!schedule.ok()) return schedule.status();
  if (request.vanilla) {
    const int total =
        std::accumulate(request.stage_steps.begin(), request.stage_steps.end(), 0);
    return core::StagePlan::Vanilla(*schedule, shape->frames, total, vae.causal_first_frame);
  }
  core::StagePlanOptions o;
  o.num_frames = shape->frames;
  o.causal_first_frame = vae.causal_first_frame;
  o.num_stages = stages;
  o.steps_per_stage = request.stage_steps;
  if (stages == manifest.stages) o.boundaries = manifest.boundaries;
  absl::StatusOr<core::StagePlan> plan = core::StagePlan::Create(*schedule, o);
  if (!plan.ok()) {
    return absl::Status(plan.status().code(),
                        absl::StrCat("stage_steps: ", plan.status().message()));
  }
  return plan;
}

absl::StatusOr<LatentJobResult> SampleLatentJob(const spec::ModelManifest& manifest,
                                                const spec::Tokenizer& tokenizer,
                                                const LatentModules& modules,
                                                core::Denoiser& denoiser,
                                                const LatentJobRequest& request,
                                                core::SamplerObserver* observer,
                                                const core::CancellationToken* cancel) {
  absl::StatusOr<core::StagePlan> plan = LatentPlan(manifest, request);
  if (!plan.ok()) return plan.status();
  LatentJobResult result;

  // The text, once per job: [cond, uncond-or-negative] in one encoder call.
  const auto encode_begin = SteadyClock::now();
  const bool guided = request.guidance_scale != 1.0;
  absl::StatusOr<spec::EncodedPrompt> cond = tokenizer.EncodeWithMask(request.prompt);
  if (!cond.ok()) return cond.status();
  std::vector<std::vector<int64_t>> ids = {cond->ids};
  std::vector<std::vector<int64_t>> masks = {cond->mask};
  if (guided) {
    absl::StatusOr<spec::EncodedPrompt> uncond =
        tokenizer.EncodeWithMask(request.negative_prompt);
    if (!uncond.ok()) {
      return absl::Status(uncond.status().code(),
                          absl::StrCat("negative_", uncond.status().message()));
    }
    ids.push_back(uncond->ids);
    masks.push_back(uncond->mask);
  }
  const torch::Device device = modules.device();
  absl::StatusOr<torch::Tensor> mask =
      core::TorchCall("prompt mask", [&] { return Rows(masks, device); });
  if (!mask.ok()) return mask.status();
  absl::StatusOr<torch::Tensor> context = modules.EncodeText(Rows(ids, device), *mask);
  if (!context.ok()) return context.status();
  result.encode_seconds = SecondsSince(encode_begin);

  const spec::VaeConfig& vae = manifest.latent.vae;
  absl::StatusOr<spec::LatentShape> shape = spec::LatentShapeFor(
      vae, plan->num_stages(), request.num_frames, request.height, request.width, "num_frames");
  if (!shape.ok()) return shape.status();
  core::SampleRequest sample;
  sample.batch = 1;
  sample.channels = vae.latent_channels;
  sample.height = shape->height;
  sample.width = shape->width;
  sample.guidance_scale = request.guidance_scale;
  sample.seed = request.seed;
  sample.solver = core::FlowSolver::kEuler;
  sample.device = device;
  sample.context = context->narrow(0, 0, 1);
  sample.context_mask = mask->narrow(0, 0, 1);
  if (guided) {
    sample.negative_context = context->narrow(0, 1, 1);
    sample.negative_context_mask = mask->narrow(0, 1, 1);
  }
  StageCollector collector(observer, &result.stage_latents);
  const auto sample_begin = SteadyClock::now();
  absl::StatusOr<torch::Tensor> latents =
      core::PyramidSampler::Sample(denoiser, *plan, sample, &collector, cancel);
  if (!latents.ok()) return latents.status();
  result.sample_seconds = SecondsSince(sample_begin);
  result.latents = *std::move(latents);
  return result;
}

}  // namespace tpdiff::model
