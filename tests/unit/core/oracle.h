#ifndef TPDIFF_TESTS_UNIT_CORE_ORACLE_H_
#define TPDIFF_TESTS_UNIT_CORE_ORACLE_H_

#include "tpdiff/core/denoiser.h"
#include "tpdiff/core/stage_math.h"
#include "tpdiff/core/stage_plan.h"
#include "tpdiff/core/temporal_ops.h"

namespace tpdiff::core::testing {

// A denoiser that knows the clean video x0 [1, C, T, H, W] and returns the exact prediction
// for any state on a stage path: the stage-wise target for v1 schedules, the schedule's
// model-native Prediction for latent ones.
class OracleDenoiser : public Denoiser {
 public:
  OracleDenoiser(const StagePlan& plan, torch::Tensor x0) : plan_(plan), x0_(std::move(x0)) {}

  absl::StatusOr<torch::Tensor> Predict(const DenoiserInput& in) override {
    ++calls;
    last_input = in;
    const int k = static_cast<int>(in.stage[0].item<int64_t>());
    const double t = in.t[0].item<double>();
    const StageGeometry g(plan_.schedule(), plan_.stage(k), k == plan_.num_stages());
    const torch::Tensor d = TemporalDownTimes(x0_, k - 1, plan_.causal_first_frame())
                                .to(in.x.scalar_type())
                                .expand_as(in.x);
    return g.ModelFromTarget(in.x, t, g.OraclePrediction(in.x, t, d));
  }

  int calls = 0;
  DenoiserInput last_input;

 private:
  const StagePlan& plan_;
  torch::Tensor x0_;
};

}  // namespace tpdiff::core::testing

#endif  // TPDIFF_TESTS_UNIT_CORE_ORACLE_H_
