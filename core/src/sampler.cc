#include "tpdiff/core/sampler.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>

#include "absl/strings/str_cat.h"
#include "tpdiff/core/stage_math.h"
#include "tpdiff/core/torch_status.h"

namespace tpdiff::core {
namespace {

using Clock = std::chrono::steady_clock;

// Evaluates the network with classifier-free guidance folded into one batched call: rows
// [cond, uncond] (v1: caption ids, latent: text embeddings and masks).
class GuidedPredictor {
 public:
  GuidedPredictor(Denoiser& denoiser, const NoiseSchedule& schedule,
                  const SampleRequest& request)
      : denoiser_(denoiser), schedule_(schedule) {
    scale_ = request.guidance_scale;
    if (schedule.latent()) {
      guided_ = request.guidance_scale != 1.0;
      return;
    }
    guided_ = request.tokens.defined() && request.tokens.numel() > 0 &&
              request.guidance_scale != 1.0;
    if (request.tokens.defined() && request.tokens.numel() > 0) {
      tokens_ = request.tokens.to(request.device, torch::kLong);
      if (tokens_.size(0) == 1 && request.batch > 1) tokens_ = tokens_.expand({request.batch, -1});
    } else {
      tokens_ = torch::zeros({request.batch, 1}, torch::TensorOptions(request.device).dtype(torch::kLong));
    }
    if (!guided_) return;
    torch::Tensor uncond = torch::zeros_like(tokens_);
    if (request.negative_tokens.defined() && request.negative_tokens.numel() > 0) {
      uncond = request.negative_tokens.to(request.device, torch::kLong);
      if (uncond.size(0) == 1 && request.batch > 1) uncond = uncond.expand({request.batch, -1});
      // The two rows share one batched call, so pad the shorter caption with id 0 (padding).
      const int64_t len = std::max(tokens_.size(1), uncond.size(1));
      tokens_ = torch::constant_pad_nd(tokens_, {0, len - tokens_.size(1)}, 0);
      uncond = torch::constant_pad_nd(uncond, {0, len - uncond.size(1)}, 0);
    }
    tokens_ = torch::cat({tokens_, uncond}, 0);
  }

  // Latent packages: checks and places the text embeddings.
  absl::Status SetContext(const SampleRequest& request) {
    auto rows = [&](const torch::Tensor& t) {
      return t.size(0) == 1 && request.batch > 1 ? t.expand({request.batch, -1, -1}) : t;
    };
    auto mask_rows = [&](const torch::Tensor& t) {
      return t.size(0) == 1 && request.batch > 1 ? t.expand({request.batch, -1}) : t;
    };
    auto check = [&](const torch::Tensor& context, const torch::Tensor& mask,
                     const char* name) -> absl::Status {
      if (!context.defined() || context.dim() != 3 || !mask.defined() || mask.dim() != 2 ||
          mask.size(0) != context.size(0) || mask.size(1) != context.size(1) ||
          (context.size(0) != 1 && context.size(0) != request.batch)) {
        return absl::InvalidArgumentError(absl::StrCat(
            name, ": a text encoding [batch or 1, L, D] with its mask [batch or 1, L] is "
                  "required for a latent package",
            guided_ ? " (guidance needs the negative or empty prompt's as well)" : ""));
      }
      return absl::OkStatus();
    };
    if (absl::Status s = check(request.context, request.context_mask, "context"); !s.ok()) {
      return s;
    }
    context_ = rows(request.context.to(request.device, torch::kFloat));
    mask_ = mask_rows(request.context_mask.to(request.device, torch::kLong));
    if (!guided_) return absl::OkStatus();
    if (absl::Status s = check(request.negative_context, request.negative_context_mask,
                               "negative_context");
        !s.ok()) {
      return s;
    }
    if (request.negative_context.size(1) != request.context.size(1) ||
        request.negative_context.size(2) != request.context.size(2)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "negative_context: shape ", c10::str(request.negative_context.sizes()),
          " differs from context's ", c10::str(request.context.sizes()), " after the batch"));
    }
    context_ = torch::cat(
        {context_, rows(request.negative_context.to(request.device, torch::kFloat))}, 0);
    mask_ = torch::cat(
        {mask_, mask_rows(request.negative_context_mask.to(request.device, torch::kLong))}, 0);
    return absl::OkStatus();
  }

  absl::StatusOr<torch::Tensor> operator()(const torch::Tensor& x, double t, int stage) {
    DenoiserInput in;
    const int64_t rows = guided_ ? 2 * x.size(0) : x.size(0);
    in.x = guided_ ? torch::cat({x, x}, 0) : x;
    in.t = torch::full({rows}, t, x.options());
    in.timestep = torch::full({rows}, schedule_.ModelTimestep(t), x.options());
    in.stage = torch::full({rows}, static_cast<int64_t>(stage),
                           torch::TensorOptions(x.device()).dtype(torch::kLong));
    if (schedule_.latent()) {
      in.context = context_;
      in.mask = mask_;
    } else {
      in.tokens = tokens_;
    }
    absl::StatusOr<torch::Tensor> out = denoiser_.Predict(in);
    if (!out.ok()) return out.status();
    if (!out->defined() || out->sizes() != in.x.sizes()) {
      return absl::InternalError(absl::StrCat(
          "denoiser returned shape ", out->defined() ? c10::str(out->sizes()) : "undefined",
          " for input shape ", c10::str(in.x.sizes())));
    }
    // The sampler's arithmetic is float32 whatever precision the network ran in.
    const torch::Tensor pred = out->to(x.scalar_type());
    if (!guided_) return pred;
    auto halves = pred.chunk(2, 0);
    return halves[1] + (halves[0] - halves[1]) * scale_;
  }

 private:
  Denoiser& denoiser_;
  NoiseSchedule schedule_;
  bool guided_ = false;
  double scale_ = 1.0;
  torch::Tensor tokens_;
  torch::Tensor context_;
  torch::Tensor mask_;
};

absl::StatusOr<torch::Tensor> SampleImpl(Denoiser& denoiser, const StagePlan& plan,
                                         const SampleRequest& request,
                                         SamplerObserver* observer,
                                         const CancellationToken* cancel) {
  if (request.batch < 1 || request.channels < 1 || request.height < 1 || request.width < 1) {
    return absl::InvalidArgumentError("sample request: batch, channels, height and width must be positive");
  }
  const auto& stages = plan.stages();
  const auto& schedule = plan.schedule();
  at::Generator gen = at::detail::createCPUGenerator(request.seed);
  const auto cpu_float = torch::TensorOptions().dtype(torch::kFloat);
  auto noise = [&](int64_t frames) {
    return at::randn({request.batch, request.channels, frames, request.height, request.width},
                     gen, cpu_float)
        .to(request.device);
  };

  torch::Tensor x;
  if (request.initial_noise.has_value()) {
    x = request.initial_noise->to(request.device, torch::kFloat);
    const std::vector<int64_t> want = {request.batch, request.channels, stages.front().frames,
                                       request.height, request.width};
    if (x.sizes() != c10::IntArrayRef(want)) {
      return absl::InvalidArgumentError(absl::StrCat("initial_noise: shape ", c10::str(x.sizes()),
                                                     ", expected ", c10::str(want)));
    }
  } else {
    x = noise(stages.front().frames);
  }

  GuidedPredictor predict(denoiser, schedule, request);
  if (schedule.latent()) {
    if (absl::Status s = predict.SetContext(request); !s.ok()) return s;
  }
  // Latent packages sample with their vanilla solvers: Euler (flow) and DDIM (VP).
  const FlowSolver solver = schedule.latent() ? FlowSolver::kEuler : request.solver;
  const bool multistep = solver == FlowSolver::kAdamsBashforth2 &&
                         schedule.parameterization() == Parameterization::kFlowMatching;
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < stages.size(); ++i) {
    const Stage& stage = stages[i];
    const auto stage_begin = Clock::now();
    const StageGeometry geometry(schedule, stage, /*starts_from_noise=*/i == 0);
    if (i > 0) {
      const Stage& from = stages[i - 1];
      const torch::Tensor pair_noise = noise(from.pooled_frames());
      const torch::Tensor first_frame_noise =
          from.causal_first_frame ? noise(1) : torch::Tensor();
      x = ApplyJump(x, ComputeJump(schedule, from, stage), pair_noise, first_frame_noise);
    }
    torch::Tensor last_pred;      // the network's prediction at the previous step's start
    torch::Tensor last_velocity;  // what the previous step moved x along
    double last_t = stage.start;
    double t = stage.start;
    for (int step = 0; step < stage.steps; ++step) {
      if (cancel != nullptr && cancel->cancelled()) {
        return absl::CancelledError(absl::StrCat("sampling cancelled in stage ", stage.k,
                                                 " at step ", step + 1, " of ", stage.steps));
      }
      const double t_next = stage.start - (stage.start - stage.end) * (step + 1) / stage.steps;
      absl::StatusOr<torch::Tensor> pred = predict(x, t, stage.k);
      if (!pred.ok()) return pred.status();
      if (schedule.latent()) *pred = geometry.TargetFromModel(x, t, *pred);
      torch::Tensor velocity = *pred;
      if (multistep && last_pred.defined()) {
        // Adams-Bashforth 2 for steps h (this one) and h_prev: v + h / (2 h_prev) (v - v_prev),
        // the linear extrapolation of the velocity to the middle of this step.
        const double ratio = (t_next - t) / (2.0 * (t - last_t));
        velocity = *pred + (*pred - last_pred) * ratio;
      }
      torch::Tensor x_next = geometry.Step(x, t, t_next, velocity);
      // Heun's correction needs a prediction at t_next; at the clean end of the last stage
      // there is no noise left to predict from, so that step stays Euler (as in EDM).
      if (solver == FlowSolver::kHeun &&
          schedule.parameterization() == Parameterization::kFlowMatching &&
          geometry.State(t_next).sigma > 0) {
        if (cancel != nullptr && cancel->cancelled()) {
          return absl::CancelledError(absl::StrCat("sampling cancelled in stage ", stage.k));
        }
        absl::StatusOr<torch::Tensor> pred2 = predict(x_next, t_next, stage.k);
        if (!pred2.ok()) return pred2.status();
        velocity = (*pred + *pred2) * 0.5;
        x_next = geometry.Step(x, t, t_next, velocity);
      }
      last_pred = *pred;
      last_velocity = velocity;
      last_t = t;
      x = x_next;
      t = t_next;
      if (observer != nullptr) {
        observer->OnStep({stage.k, static_cast<int>(i) + 1, plan.num_stages(), step + 1,
                          stage.steps, stage.frames, t});
      }
    }
    if (observer != nullptr) {
      StageEndEvent end;
      end.stage = stage.k;
      end.stage_ordinal = static_cast<int>(i) + 1;
      end.num_stages = plan.num_stages();
      end.frames = stage.frames;
      end.frame_stride = stage.frame_stride;
      // The last step's velocity stays valid at the stage end: the preview is linear along
      // the step, so no extra network call is needed (method note, section 6).
      end.preview = i + 1 == stages.size() ? x : geometry.Preview(x, t, last_velocity);
      if (!schedule.latent()) end.preview = end.preview.clamp(-1, 1);
      end.latent = x;
      end.seconds = std::chrono::duration<double>(Clock::now() - stage_begin).count();
      observer->OnStageEnd(end);
    }
  }
  return x;
}

}  // namespace

const char* FlowSolverName(FlowSolver solver) {
  switch (solver) {
    case FlowSolver::kEuler:
      return "euler";
    case FlowSolver::kAdamsBashforth2:
      return "ab2";
    case FlowSolver::kHeun:
      return "heun";
  }
  return "unknown";
}

absl::StatusOr<FlowSolver> ParseFlowSolver(absl::string_view name) {
  for (FlowSolver s : {FlowSolver::kEuler, FlowSolver::kAdamsBashforth2, FlowSolver::kHeun}) {
    if (name == FlowSolverName(s)) return s;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("solver: '", name, "' is not euler, ab2 or heun"));
}

absl::StatusOr<torch::Tensor> PyramidSampler::Sample(Denoiser& denoiser, const StagePlan& plan,
                                                     const SampleRequest& request,
                                                     SamplerObserver* observer,
                                                     const CancellationToken* cancel) {
  absl::StatusOr<absl::StatusOr<torch::Tensor>> result = TorchCall(
      "sampling", [&] { return SampleImpl(denoiser, plan, request, observer, cancel); });
  if (!result.ok()) return result.status();
  return *std::move(result);
}

}  // namespace tpdiff::core
