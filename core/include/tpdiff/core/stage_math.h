#ifndef TPDIFF_CORE_STAGE_MATH_H_
#define TPDIFF_CORE_STAGE_MATH_H_

// The closed-form algebra of one TPDiff stage, shared by the sampler, the training targets,
// the previews and the oracle used in tests (method note, sections 3, 4 and 6).
//
// Inside stage k every quantity is an affine mix of the stage-rate clean video D = D_k(x0),
// its pair projection Q D and one noise draw eps:  x = alpha D + gamma Q D + sigma eps.
// Q is the projection P = Up(Down(.)) for stages that start from a jump, and 0 for the
// noisiest stage (which starts from pure noise). The network's target (the stage velocity
// for flow matching, eps_k for VP) is such a mix too, constant along the stage.
//
// Flow matching is written in the noise level sigma(t) (= t for v1 schedules, the shifted
// level for latent ones), so stage paths are straight in sigma and steps stay uniform in t.
// With a causal first frame (Stage::causal_first_frame) P is the identity on frame 0, which
// therefore follows the plain diffusion path a(t) D_0 + b(t) eps_0 at every stage.

#include <torch/types.h>

#include "tpdiff/core/schedule.h"
#include "tpdiff/core/stage_plan.h"

namespace tpdiff::core {

struct MixCoefficients {
  double alpha = 0;  // weight of D
  double gamma = 0;  // weight of Q D
  double sigma = 0;  // weight of eps
};

class StageGeometry {
 public:
  // `starts_from_noise`: true for the noisiest stage of the plan (x_s = eps there).
  StageGeometry(const NoiseSchedule& schedule, const Stage& stage, bool starts_from_noise);

  const Stage& stage() const { return stage_; }
  bool starts_from_noise() const { return starts_from_noise_; }

  // x_t for t in [e_k, s_k].
  MixCoefficients State(double t) const;
  // The prediction target (velocity x_s - x_e for FM, eps_k for VP).
  MixCoefficients Target() const;

  // alpha D + gamma Q D + sigma eps on tensors of stage frame count.
  torch::Tensor Compose(const MixCoefficients& m, const torch::Tensor& d,
                        const torch::Tensor& eps) const;
  // Start and end points of the stage for clean stage-rate video d and noise eps.
  torch::Tensor StartPoint(const torch::Tensor& d, const torch::Tensor& eps) const;
  torch::Tensor EndPoint(const torch::Tensor& d, const torch::Tensor& eps) const;

  // One solver step from t to t_next (< t) with prediction `pred` made at (x, t):
  // Euler along the stage flow for FM, the DDIM update for VP. Exact when pred is exact.
  torch::Tensor Step(const torch::Tensor& x, double t, double t_next,
                     const torch::Tensor& pred) const;

  // Latent packages' denoisers predict model-native quantities (Prediction): the stage target
  // from such a prediction `pred` made at (x, t), and back. flow_velocity: target = pred *
  // (sigma(s) - sigma(e)); epsilon: target = pred; v: target = a(t) pred + b(t) x. v1
  // schedules (kStageTarget) return pred unchanged.
  torch::Tensor TargetFromModel(const torch::Tensor& x, double t, const torch::Tensor& pred) const;
  torch::Tensor ModelFromTarget(const torch::Tensor& x, double t,
                                const torch::Tensor& target) const;

  // Clean stage-rate video estimated in closed form from x_t and the prediction at t
  // (section 6, generalised to VP): exact for an exact prediction, no network call.
  torch::Tensor Preview(const torch::Tensor& x, double t, const torch::Tensor& pred) const;

  // The exact prediction for a state x_t known to lie on the stage path of clean video d
  // (solves for the noise, then applies Target()). Used by tests and diagnostics.
  torch::Tensor OraclePrediction(const torch::Tensor& x, double t, const torch::Tensor& d) const;

 private:
  torch::Tensor ApplyQ(const torch::Tensor& x) const;

  NoiseSchedule schedule_;
  Stage stage_;
  bool starts_from_noise_;
};

// Coefficients of the jump from the end of one stage to the start of the next, denser one:
// x_s = c Up(x_e) + alpha n', with antithetic pair noise n' (section 3).
struct JumpCoefficients {
  double c = 1;
  double alpha = 0;
};
JumpCoefficients ComputeJump(const NoiseSchedule& schedule, const Stage& from, const Stage& to);

// Applies the jump. `pair_noise_source` is standard normal noise with one z per frame pair,
// [B, C, pooled frames of x_end, H, W]; the pair noise is (+z, -z) across the duplicated
// frames. With a causal first frame, `first_frame_noise` [B, C, 1, H, W] is a fresh
// independent draw z0 for frame 0, which is not duplicated: x_s[0] = c x_e[0] + alpha z0
// (c^2 b(e)^2 + alpha^2 = b(s)^2, so frame 0 lands on the marginal at s like the pairs).
// Undefined `first_frame_noise` = no causal frame.
torch::Tensor ApplyJump(const torch::Tensor& x_end, const JumpCoefficients& jump,
                        const torch::Tensor& pair_noise_source,
                        const torch::Tensor& first_frame_noise = {});

}  // namespace tpdiff::core

#endif  // TPDIFF_CORE_STAGE_MATH_H_
