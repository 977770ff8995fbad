#include "tpdiff/core/training.h"

#include <cmath>

#include <ATen/ATen.h>

#include "absl/strings/str_cat.h"

#include "tpdiff/core/alignment.h"
#include "tpdiff/core/stage_math.h"
#include "tpdiff/core/temporal_ops.h"

namespace tpdiff::core {

TrainingBatch BuildTrainingBatch(const StagePlan& plan, int stage, const torch::Tensor& x0,
                                 const torch::Tensor& t, const torch::Tensor& eps) {
  TORCH_CHECK(stage >= 1 && stage <= plan.num_stages(), "stage ", stage, " outside 1..",
              plan.num_stages());
  const Stage& st = plan.stage(stage);
  const StageGeometry geometry(plan.schedule(), st, /*starts_from_noise=*/stage == plan.num_stages());
  const torch::Tensor d = TemporalDownTimes(x0, stage - 1, st.causal_first_frame);
  TORCH_CHECK(eps.sizes() == d.sizes(), "noise shape ", eps.sizes(), " != stage video shape ",
              d.sizes());
  const int64_t batch = x0.size(0);
  const torch::Tensor t_cpu = t.to(torch::kCPU, torch::kDouble).contiguous();
  std::vector<float> alpha(batch), gamma(batch), sigma(batch);
  for (int64_t i = 0; i < batch; ++i) {
    const MixCoefficients m = geometry.State(t_cpu.data_ptr<double>()[i]);
    alpha[i] = static_cast<float>(m.alpha);
    gamma[i] = static_cast<float>(m.gamma);
    sigma[i] = static_cast<float>(m.sigma);
  }
  auto column = [&](const std::vector<float>& v) {
    return torch::from_blob(const_cast<float*>(v.data()), {batch, 1, 1, 1, 1}, torch::kFloat)
        .clone()
        .to(x0.device(), x0.scalar_type());
  };
  const torch::Tensor qd = geometry.starts_from_noise() ? torch::zeros_like(d)
                                                        : TemporalProject(d, st.causal_first_frame);
  TrainingBatch out;
  out.stage = stage;
  out.x_t = column(alpha) * d + column(gamma) * qd + column(sigma) * eps;
  out.t = t.to(x0.device(), torch::kFloat);
  out.stage_ids = torch::full({batch}, static_cast<int64_t>(stage),
                              torch::TensorOptions(x0.device()).dtype(torch::kLong));
  out.target = geometry.Compose(geometry.Target(), d, eps);
  return out;
}

std::string StageWeightsError(const std::vector<double>& weights, int num_stages) {
  if (static_cast<int>(weights.size()) != num_stages) {
    return absl::StrCat(weights.size(), " weights for ", num_stages,
                        " stages (give one per stage)");
  }
  double total = 0;
  for (double w : weights) {
    if (!(std::isfinite(w) && w >= 0)) return absl::StrCat(w, " is not a finite weight >= 0");
    total += w;
  }
  if (total <= 0) return "at least one weight must be positive";
  return "";
}

TrainingBatch DrawTrainingBatch(const StagePlan& plan, const torch::Tensor& x0,
                                torch::Generator& generator, const TrainingDrawOptions& options) {
  const int K = plan.num_stages();
  int stage = options.stage;
  if (stage <= 0 && options.stage_weights.empty()) {
    stage = 1 + static_cast<int>(at::randint(K, {1}, generator, torch::kLong).item<int64_t>());
  } else if (stage <= 0) {
    const std::string error = StageWeightsError(options.stage_weights, K);
    TORCH_CHECK(error.empty(), "stage_weights: ", error);
    double total = 0;
    for (double w : options.stage_weights) total += w;
    const double u = total * at::rand({1}, generator, torch::kDouble).item<double>();
    stage = K;  // u can round up to the total; the last positive weight then takes it
    while (stage > 1 && options.stage_weights[stage - 1] == 0) --stage;
    double cumulative = 0;
    for (int k = 1; k <= K; ++k) {
      cumulative += options.stage_weights[k - 1];
      if (u < cumulative) {
        stage = k;
        break;
      }
    }
  }
  const Stage& st = plan.stage(stage);
  const int64_t batch = x0.size(0);
  const torch::Tensor u = at::rand({batch}, generator, torch::kDouble);
  const torch::Tensor t = st.end + (st.start - st.end) * u;
  std::vector<int64_t> shape(x0.sizes().begin(), x0.sizes().end());
  shape[2] = st.frames;
  torch::Tensor eps =
      options.noise_generator != nullptr
          ? at::randn(shape, *options.noise_generator,
                      torch::TensorOptions().device(x0.device()).dtype(x0.scalar_type()))
          : at::randn(shape, generator, torch::kFloat).to(x0.device(), x0.scalar_type());
  if (options.align_noise && batch > 1) {
    eps = AlignNoise(TemporalDownTimes(x0, stage - 1, st.causal_first_frame), eps);
  }
  return BuildTrainingBatch(plan, stage, x0, t, eps);
}

}  // namespace tpdiff::core
