#ifndef TPDIFF_SPEC_SCHEDULE_H_
#define TPDIFF_SPEC_SCHEDULE_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace tpdiff::spec {

// How x_t mixes data and noise: x_t = a(t) x0 + b(t) eps, t in [0, 1], t = 1 is noise.
enum class Parameterization {
  kFlowMatching,  // a = 1 - sigma(t), b = sigma(t); straight paths in the noise level sigma.
  kVpEps,         // a = sqrt(alphabar), b = sqrt(1 - alphabar); DDIM steps.
};

absl::string_view ParameterizationName(Parameterization p);  // "flow_matching" | "vp_eps"
absl::StatusOr<Parameterization> ParseParameterization(absl::string_view name);

// What a denoiser's output means.
enum class Prediction {
  kStageTarget,   // v1 packages: the stage-wise target itself (stage velocity / eps_k)
  kFlowVelocity,  // latent flow: dx/dsigma (eps - x0 for a stock model)
  kEpsilon,       // latent VP: the noise
  kV,             // latent VP: v = a eps - b x0
};
absl::string_view PredictionName(Prediction p);  // "stage_target" | "flow_velocity" | ...

enum class BetaSchedule { kScaledLinear, kLinear };
absl::string_view BetaScheduleName(BetaSchedule b);  // "scaled_linear" | "linear"

// The "schedule" object of a latent package's model.json.
struct ScheduleConfig {
  Parameterization type = Parameterization::kFlowMatching;  // "flow_matching" | "vp"
  // Flow matching: sigma(t) = shift t / (1 + (shift - 1) t); 1 = no shift.
  double shift = 1.0;
  // Flow matching: the denoiser's timestep input is sigma(t) * timestep_scale.
  double timestep_scale = 1000.0;
  Prediction prediction = Prediction::kFlowVelocity;
  // VP (discrete, DDPM-style): betas over num_train_timesteps indices.
  BetaSchedule beta_schedule = BetaSchedule::kScaledLinear;
  double beta_start = 0.00085;
  double beta_end = 0.012;
  int num_train_timesteps = 1000;
};

inline constexpr double kMaxShift = 100.0;
inline constexpr int kMaxTrainTimesteps = 100000;

// INVALID_ARGUMENT "schedule.<field>: ..." naming the limit.
absl::Status ValidateScheduleConfig(const ScheduleConfig& config);

// The noise schedule of a package. Immutable and cheap to copy (a discrete VP table is shared).
//
// Time t in [0, 1] is the sampler's time; stage windows and steps are placed in it.
//  - v1 flow matching: a = 1 - t, b = t; the denoiser gets t.
//  - v1 VP: the continuous-time linear-beta schedule of Song et al. (beta from 0.1 to 20):
//    alphabar(t) = exp(-(0.1 t + 9.95 t^2)), so a(1) = 0.0066 stays positive and the
//    noise-to-signal ratio lambda(t) = b/a is finite and strictly increasing on [0, 1].
//  - latent flow matching: t is the UNSHIFTED time, the noise level is the shifted
//    sigma(t); the denoiser gets sigma(t) * timestep_scale.
//  - latent VP: discrete betas; tau = t maps to the index i = tau (N - 1) with log(alphabar)
//    interpolated linearly between integer indices; the denoiser gets i.
class NoiseSchedule {
 public:
  // A v1 schedule (prediction kStageTarget).
  explicit NoiseSchedule(Parameterization p) : p_(p) {}
  // A latent schedule; INVALID_ARGUMENT as ValidateScheduleConfig.
  static absl::StatusOr<NoiseSchedule> FromConfig(const ScheduleConfig& config);

  Parameterization parameterization() const { return p_; }
  Prediction prediction() const { return prediction_; }
  // True for a latent package's schedule (the denoiser predicts a model-native quantity).
  bool latent() const { return prediction_ != Prediction::kStageTarget; }

  double a(double t) const;
  double b(double t) const;
  // Noise-to-signal ratio b(t)/a(t); +infinity for flow matching at t = 1.
  double lambda(double t) const;
  // Flow matching: the noise level sigma(t) = b(t) (shifted for latent packages); VP: b(t).
  double sigma(double t) const { return b(t); }
  // The inverse of sigma for flow matching: the t with sigma(t) = noise_level.
  double FlowTimeOf(double noise_level) const;
  // The denoiser's timestep input at time t (class comment).
  double ModelTimestep(double t) const;

  // The corrected start of the next (denser) stage for a stage ending at `end`
  // (method note, section 3): the s > end with lambda(s) = sqrt(2) lambda(end), as a time
  // t. Returns 1 when that s would lie past pure noise.
  double JumpStart(double end) const;

  // Discrete VP only: alphabar at integer index i in [0, N-1] (prod_{j<=i} (1 - beta_j)).
  double DiscreteAlphaBar(int index) const;

 private:
  NoiseSchedule(const ScheduleConfig& config, std::shared_ptr<const std::vector<double>> table)
      : p_(config.type),
        prediction_(config.prediction),
        shift_(config.shift),
        timestep_scale_(config.timestep_scale),
        log_alphabar_(std::move(table)) {}
  double LogAlphaBar(double t) const;  // VP

  Parameterization p_;
  Prediction prediction_ = Prediction::kStageTarget;
  double shift_ = 1.0;
  double timestep_scale_ = 1.0;
  // Discrete VP: log(alphabar_i), i = 0..N-1; null for the continuous schedules.
  std::shared_ptr<const std::vector<double>> log_alphabar_;
};

}  // namespace tpdiff::spec

#endif  // TPDIFF_SPEC_SCHEDULE_H_
