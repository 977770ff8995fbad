#include "tpdiff/spec/schedule.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"

namespace tpdiff::spec {
namespace {

constexpr double kBetaMin = 0.1;
constexpr double kBetaMax = 20.0;

double VpLogAlphaBar(double t) { return -(kBetaMin * t + 0.5 * (kBetaMax - kBetaMin) * t * t); }

absl::Status Invalid(absl::string_view field, absl::string_view problem) {
  return absl::InvalidArgumentError(absl::StrCat("schedule.", field, ": ", problem));
}

}  // namespace

absl::string_view ParameterizationName(Parameterization p) {
  return p == Parameterization::kFlowMatching ? "flow_matching" : "vp_eps";
}

absl::StatusOr<Parameterization> ParseParameterization(absl::string_view name) {
  if (name == "flow_matching") return Parameterization::kFlowMatching;
  if (name == "vp_eps") return Parameterization::kVpEps;
  return absl::InvalidArgumentError(
      absl::StrCat("parameterization: '", name, "' is not one of flow_matching, vp_eps"));
}

absl::string_view PredictionName(Prediction p) {
  switch (p) {
    case Prediction::kStageTarget:
      return "stage_target";
    case Prediction::kFlowVelocity:
      return "flow_velocity";
    case Prediction::kEpsilon:
      return "epsilon";
    case Prediction::kV:
      return "v";
  }
  return "unknown";
}

absl::string_view BetaScheduleName(BetaSchedule b) {
  return b == BetaSchedule::kScaledLinear ? "scaled_linear" : "linear";
}

absl::Status ValidateScheduleConfig(const ScheduleConfig& c) {
  if (c.type == Parameterization::kFlowMatching) {
    if (!(c.shift >= 1.0 && c.shift <= kMaxShift)) {
      return Invalid("shift", absl::StrCat(c.shift, " outside [1, ", kMaxShift, "]"));
    }
    if (!(c.timestep_scale > 0.0 && std::isfinite(c.timestep_scale))) {
      return Invalid("timestep_scale", absl::StrCat(c.timestep_scale, " must be positive"));
    }
    if (c.prediction != Prediction::kFlowVelocity) {
      return Invalid("prediction", absl::StrCat("\"", PredictionName(c.prediction),
                                                "\" is not \"flow_velocity\" (type flow_matching)"));
    }
    return absl::OkStatus();
  }
  if (c.prediction != Prediction::kEpsilon && c.prediction != Prediction::kV) {
    return Invalid("prediction", absl::StrCat("\"", PredictionName(c.prediction),
                                              "\" is not \"epsilon\" or \"v\" (type vp)"));
  }
  if (c.num_train_timesteps < 2 || c.num_train_timesteps > kMaxTrainTimesteps) {
    return Invalid("num_train_timesteps", absl::StrCat(c.num_train_timesteps, " outside [2, ",
                                                       kMaxTrainTimesteps, "]"));
  }
  if (!(c.beta_start > 0.0 && c.beta_start < 1.0)) {
    return Invalid("beta_start", absl::StrCat(c.beta_start, " outside (0, 1)"));
  }
  if (!(c.beta_end > c.beta_start && c.beta_end < 1.0)) {
    return Invalid("beta_end",
                   absl::StrCat(c.beta_end, " outside (beta_start ", c.beta_start, ", 1)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<NoiseSchedule> NoiseSchedule::FromConfig(const ScheduleConfig& config) {
  if (absl::Status s = ValidateScheduleConfig(config); !s.ok()) return s;
  std::shared_ptr<const std::vector<double>> table;
  if (config.type == Parameterization::kVpEps) {
    const int n = config.num_train_timesteps;
    auto log_ab = std::make_shared<std::vector<double>>(n);
    double acc = 0.0;
    for (int i = 0; i < n; ++i) {
      const double f = static_cast<double>(i) / (n - 1);
      double beta;
      if (config.beta_schedule == BetaSchedule::kScaledLinear) {
        const double r = std::sqrt(config.beta_start) +
                         f * (std::sqrt(config.beta_end) - std::sqrt(config.beta_start));
        beta = r * r;
      } else {
        beta = config.beta_start + f * (config.beta_end - config.beta_start);
      }
      acc += std::log1p(-beta);
      (*log_ab)[i] = acc;
    }
    table = std::move(log_ab);
  }
  return NoiseSchedule(config, std::move(table));
}

double NoiseSchedule::LogAlphaBar(double t) const {
  if (!log_alphabar_) return VpLogAlphaBar(t);
  const std::vector<double>& table = *log_alphabar_;
  const double pos = std::clamp(t, 0.0, 1.0) * static_cast<double>(table.size() - 1);
  const size_t i = static_cast<size_t>(std::floor(pos));
  if (i + 1 >= table.size()) return table.back();
  const double f = pos - static_cast<double>(i);
  return table[i] + f * (table[i + 1] - table[i]);
}

double NoiseSchedule::DiscreteAlphaBar(int index) const {
  if (!log_alphabar_ || index < 0 || index >= static_cast<int>(log_alphabar_->size())) {
    return std::numeric_limits<double>::quiet_NaN();
  }
  return std::exp((*log_alphabar_)[index]);
}

double NoiseSchedule::a(double t) const {
  if (p_ == Parameterization::kFlowMatching) return 1.0 - b(t);
  return std::exp(0.5 * LogAlphaBar(t));
}

double NoiseSchedule::b(double t) const {
  if (p_ == Parameterization::kFlowMatching) {
    // shift 1 (every v1 schedule) is the identity, kept exact.
    if (shift_ == 1.0) return t;
    return shift_ * t / (1.0 + (shift_ - 1.0) * t);
  }
  return std::sqrt(-std::expm1(LogAlphaBar(t)));
}

double NoiseSchedule::lambda(double t) const {
  const double at = a(t);
  if (at <= 0) return std::numeric_limits<double>::infinity();
  return b(t) / at;
}

double NoiseSchedule::FlowTimeOf(double noise_level) const {
  if (shift_ == 1.0) return noise_level;
  return noise_level / (shift_ - (shift_ - 1.0) * noise_level);
}

double NoiseSchedule::ModelTimestep(double t) const {
  if (!latent()) return t;
  if (p_ == Parameterization::kFlowMatching) return sigma(t) * timestep_scale_;
  return t * static_cast<double>(log_alphabar_->size() - 1);
}

double NoiseSchedule::JumpStart(double end) const {
  if (p_ == Parameterization::kFlowMatching) {
    // In the noise level: sigma_s / (1 - sigma_s) = sqrt(2) sigma_e / (1 - sigma_e); the
    // shift maps t to sigma monotonically, so solve there and map back.
    const double e = sigma(end);
    const double r = std::sqrt(2.0) * e;
    return FlowTimeOf(r / ((1.0 - e) + r));
  }
  // lambda is strictly increasing: bisect lambda(s) = sqrt(2) lambda(e).
  const double want = std::sqrt(2.0) * lambda(end);
  if (want >= lambda(1.0)) return 1.0;
  double lo = end, hi = 1.0;
  for (int i = 0; i < 200 && hi - lo > 1e-15; ++i) {
    const double mid = 0.5 * (lo + hi);
    (lambda(mid) < want ? lo : hi) = mid;
  }
  return 0.5 * (lo + hi);
}

}  // namespace tpdiff::spec
