#include "tpdiff/spec/schedule.h"

#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"

namespace tpdiff::spec {
namespace {

constexpr double kBetaMin = 0.1;
constexpr double kBetaMax = 20.0;

double VpLogAlphaBar(double t) { return -(kBetaMin * t + 0.5 * (kBetaMax - kBetaMin) * t * t); }

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

double NoiseSchedule::a(double t) const {
  if (p_ == Parameterization::kFlowMatching) return 1.0 - t;
  return std::exp(0.5 * VpLogAlphaBar(t));
}

double NoiseSchedule::b(double t) const {
  if (p_ == Parameterization::kFlowMatching) return t;
  return std::sqrt(-std::expm1(VpLogAlphaBar(t)));
}

double NoiseSchedule::lambda(double t) const {
  const double at = a(t);
  if (at <= 0) return std::numeric_limits<double>::infinity();
  return b(t) / at;
}

double NoiseSchedule::JumpStart(double end) const {
  if (p_ == Parameterization::kFlowMatching) {
    // s / (1 - s) = sqrt(2) e / (1 - e)
    const double r = std::sqrt(2.0) * end;
    return r / ((1.0 - end) + r);
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
