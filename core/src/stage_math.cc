#include "tpdiff/core/stage_math.h"

#include <cmath>

#include "tpdiff/core/temporal_ops.h"

namespace tpdiff::core {

StageGeometry::StageGeometry(const NoiseSchedule& schedule, const Stage& stage,
                             bool starts_from_noise)
    : schedule_(schedule), stage_(stage), starts_from_noise_(starts_from_noise) {}

torch::Tensor StageGeometry::ApplyQ(const torch::Tensor& x) const {
  return starts_from_noise_ ? torch::zeros_like(x)
                            : TemporalProject(x, stage_.causal_first_frame);
}

// Start point x_s = a_s Q D + beta eps with beta = b(s) after a jump, 1 from pure noise;
// end point x_e = a_e D + b_e eps.
MixCoefficients StageGeometry::State(double t) const {
  if (schedule_.parameterization() == Parameterization::kFlowMatching) {
    // Each stage is a straight flow from x_s to x_e in the noise level: x = (1-u) x_e + u x_s.
    const double s = schedule_.sigma(stage_.start), e = schedule_.sigma(stage_.end);
    const double u = (schedule_.sigma(t) - e) / (s - e);
    const double q_weight = starts_from_noise_ ? 0.0 : (1.0 - s);
    const double beta = starts_from_noise_ ? 1.0 : s;
    return {(1.0 - u) * (1.0 - e), u * q_weight, (1.0 - u) * e + u * beta};
  }
  // VP: x_t / a_t moves linearly in lambda from x_s / a_s to x_e / a_e (DPM-Solver form).
  const double s = stage_.start, e = stage_.end;
  const double as = schedule_.a(s), ae = schedule_.a(e), at = schedule_.a(t);
  const double ls = schedule_.lambda(s), le = schedule_.lambda(e), lt = schedule_.lambda(t);
  const double beta = starts_from_noise_ ? 1.0 : schedule_.b(s);
  const double w = (lt - ls) / (le - ls);
  const double q_weight = starts_from_noise_ ? 0.0 : 1.0;
  return {at * w, at * (1.0 - w) * q_weight, at * ((1.0 - w) * beta / as + w * le)};
}

MixCoefficients StageGeometry::Target() const {
  if (schedule_.parameterization() == Parameterization::kFlowMatching) {
    const double s = schedule_.sigma(stage_.start), e = schedule_.sigma(stage_.end);
    const double q_weight = starts_from_noise_ ? 0.0 : (1.0 - s);
    const double beta = starts_from_noise_ ? 1.0 : s;
    return {-(1.0 - e), q_weight, beta - e};
  }
  const double s = stage_.start, e = stage_.end;
  const double as = schedule_.a(s);
  const double ls = schedule_.lambda(s), le = schedule_.lambda(e);
  const double beta = starts_from_noise_ ? 1.0 : schedule_.b(s);
  const double inv = 1.0 / (le - ls);
  const double q_weight = starts_from_noise_ ? 0.0 : 1.0;
  return {inv, -inv * q_weight, (le - beta / as) * inv};
}

torch::Tensor StageGeometry::Compose(const MixCoefficients& m, const torch::Tensor& d,
                                     const torch::Tensor& eps) const {
  torch::Tensor out = d * m.alpha + eps * m.sigma;
  if (m.gamma != 0.0) out = out + ApplyQ(d) * m.gamma;
  return out;
}

torch::Tensor StageGeometry::StartPoint(const torch::Tensor& d, const torch::Tensor& eps) const {
  return Compose(State(stage_.start), d, eps);
}

torch::Tensor StageGeometry::EndPoint(const torch::Tensor& d, const torch::Tensor& eps) const {
  return Compose(State(stage_.end), d, eps);
}

torch::Tensor StageGeometry::Step(const torch::Tensor& x, double t, double t_next,
                                  const torch::Tensor& pred) const {
  if (schedule_.parameterization() == Parameterization::kFlowMatching) {
    const double s = schedule_.sigma(stage_.start), e = schedule_.sigma(stage_.end);
    return x + pred * ((schedule_.sigma(t_next) - schedule_.sigma(t)) / (s - e));
  }
  const double ratio = schedule_.a(t_next) / schedule_.a(t);
  return x * ratio + pred * (schedule_.a(t_next) * (schedule_.lambda(t_next) - schedule_.lambda(t)));
}

// pred' x - sigma_t pred eliminates the noise, leaving (a I + b Q) D; for a projection Q,
// (a I + b Q)^-1 = (I - b / (a + b) Q) / a.
torch::Tensor StageGeometry::Preview(const torch::Tensor& x, double t,
                                     const torch::Tensor& pred) const {
  const MixCoefficients st = State(t), tg = Target();
  const torch::Tensor y = x * tg.sigma - pred * st.sigma;
  const double a = tg.sigma * st.alpha - st.sigma * tg.alpha;
  const double b = tg.sigma * st.gamma - st.sigma * tg.gamma;
  if (starts_from_noise_ || b == 0.0) return y / a;
  return (y - TemporalProject(y, stage_.causal_first_frame) * (b / (a + b))) / a;
}

torch::Tensor StageGeometry::TargetFromModel(const torch::Tensor& x, double t,
                                             const torch::Tensor& pred) const {
  switch (schedule_.prediction()) {
    case Prediction::kStageTarget:
    case Prediction::kEpsilon:
      return pred;
    case Prediction::kFlowVelocity:
      return pred * (schedule_.sigma(stage_.start) - schedule_.sigma(stage_.end));
    case Prediction::kV:
      return pred * schedule_.a(t) + x * schedule_.b(t);
  }
  return pred;
}

torch::Tensor StageGeometry::ModelFromTarget(const torch::Tensor& x, double t,
                                             const torch::Tensor& target) const {
  switch (schedule_.prediction()) {
    case Prediction::kStageTarget:
    case Prediction::kEpsilon:
      return target;
    case Prediction::kFlowVelocity:
      return target / (schedule_.sigma(stage_.start) - schedule_.sigma(stage_.end));
    case Prediction::kV:
      return (target - x * schedule_.b(t)) / schedule_.a(t);
  }
  return target;
}

torch::Tensor StageGeometry::OraclePrediction(const torch::Tensor& x, double t,
                                              const torch::Tensor& d) const {
  const MixCoefficients st = State(t);
  const torch::Tensor eps = (x - d * st.alpha - ApplyQ(d) * st.gamma) / st.sigma;
  return Compose(Target(), d, eps);
}

JumpCoefficients ComputeJump(const NoiseSchedule& schedule, const Stage& from, const Stage& to) {
  return {schedule.a(to.start) / schedule.a(from.end), schedule.b(to.start) / std::sqrt(2.0)};
}

torch::Tensor ApplyJump(const torch::Tensor& x_end, const JumpCoefficients& jump,
                        const torch::Tensor& pair_noise_source,
                        const torch::Tensor& first_frame_noise) {
  const bool causal = first_frame_noise.defined();
  const torch::Tensor pooled = causal ? x_end.narrow(2, 1, x_end.size(2) - 1) : x_end;
  TORCH_CHECK(pair_noise_source.sizes() == pooled.sizes(), "ApplyJump: pair noise ",
              pair_noise_source.sizes(), " for pooled frames ", pooled.sizes());
  // Interleave (+z, -z) along time: stack on a new axis after T, then merge.
  const torch::Tensor pair = torch::stack({pair_noise_source, -pair_noise_source}, 3);
  const auto s = pooled.sizes();
  const torch::Tensor antithetic = pair.reshape({s[0], s[1], s[2] * 2, s[3], s[4]});
  const torch::Tensor pairs = TemporalUp(pooled) * jump.c + antithetic * jump.alpha;
  if (!causal) return pairs;
  return torch::cat({x_end.narrow(2, 0, 1) * jump.c + first_frame_noise * jump.alpha, pairs}, 2);
}

}  // namespace tpdiff::core
