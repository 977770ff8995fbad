#include "tpdiff/core/sampler.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/ATen.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "tpdiff/core/device_timer.h"
#include "tpdiff/core/stage_math.h"
#include "tpdiff/core/torch_status.h"

namespace tpdiff::core {
namespace {

// Evaluates the network with classifier-free guidance folded into one batched call.
class GuidedPredictor {
 public:
  GuidedPredictor(Denoiser& denoiser, const SampleRequest& request) : denoiser_(denoiser) {
    guided_ = request.tokens.defined() && request.tokens.numel() > 0 &&
              request.guidance_scale != 1.0;
    scale_ = request.guidance_scale;
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

  absl::StatusOr<torch::Tensor> operator()(const torch::Tensor& x, double t, int stage) {
    DenoiserInput in;
    const int64_t rows = guided_ ? 2 * x.size(0) : x.size(0);
    in.x = guided_ ? torch::cat({x, x}, 0) : x;
    in.t = torch::full({rows}, t, x.options());
    in.stage = torch::full({rows}, static_cast<int64_t>(stage),
                           torch::TensorOptions(x.device()).dtype(torch::kLong));
    in.tokens = tokens_;
    absl::StatusOr<torch::Tensor> out = denoiser_.Predict(in);
    if (!out.ok()) return out.status();
    if (!out->defined() || out->sizes() != in.x.sizes()) {
      return absl::InternalError(absl::StrCat(
          "denoiser returned shape ", out->defined() ? c10::str(out->sizes()) : "undefined",
          " for input shape ", c10::str(in.x.sizes())));
    }
    if (!guided_) return *out;
    auto halves = out->chunk(2, 0);
    return halves[1] + (halves[0] - halves[1]) * scale_;
  }

 private:
  Denoiser& denoiser_;
  bool guided_ = false;
  double scale_ = 1.0;
  torch::Tensor tokens_;
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

  GuidedPredictor predict(denoiser, request);
  const bool multistep = request.solver == FlowSolver::kAdamsBashforth2 &&
                         schedule.parameterization() == Parameterization::kFlowMatching;
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < stages.size(); ++i) {
    const Stage& stage = stages[i];
    DeviceTimer stage_timer(request.device);
    const StageGeometry geometry(schedule, stage, /*starts_from_noise=*/i == 0);
    if (i > 0) {
      x = ApplyJump(x, ComputeJump(schedule, stages[i - 1], stage), noise(stages[i - 1].frames));
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
      if (request.solver == FlowSolver::kHeun &&
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
      end.preview =
          (i + 1 == stages.size() ? x : geometry.Preview(x, t, last_velocity)).clamp(-1, 1);
      end.latent = x;
      end.seconds = stage_timer.Seconds();
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
