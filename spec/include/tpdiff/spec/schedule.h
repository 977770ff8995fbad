#ifndef TPDIFF_SPEC_SCHEDULE_H_
#define TPDIFF_SPEC_SCHEDULE_H_

#include <string>
#include "absl/strings/string_view.h"

#include "absl/status/statusor.h"

namespace tpdiff::spec {

// How x_t mixes data and noise: x_t = a(t) x0 + b(t) eps, t in [0, 1], t = 1 is noise.
enum class Parameterization {
  kFlowMatching,  // a = 1 - t, b = t; the network predicts the stage-wise velocity.
  kVpEps,         // a = sqrt(alphabar), b = sqrt(1 - alphabar); the network predicts eps_k.
};

absl::string_view ParameterizationName(Parameterization p);  // "flow_matching" | "vp_eps"
absl::StatusOr<Parameterization> ParseParameterization(absl::string_view name);

// The noise schedule of one parameterization. Immutable and cheap to copy.
//
// VP uses the continuous-time linear-beta schedule of Song et al. (beta from 0.1 to 20):
// alphabar(t) = exp(-(0.1 t + 9.95 t^2)), so a(1) = 0.0066 stays positive and the
// noise-to-signal ratio lambda(t) = b/a is finite and strictly increasing on [0, 1].
class NoiseSchedule {
 public:
  explicit NoiseSchedule(Parameterization p) : p_(p) {}

  Parameterization parameterization() const { return p_; }
  double a(double t) const;
  double b(double t) const;
  // Noise-to-signal ratio b(t)/a(t); +infinity for flow matching at t = 1.
  double lambda(double t) const;

  // The corrected start of the next (denser) stage for a stage ending at `end`
  // (method note, section 3): the s > end with lambda(s) = sqrt(2) lambda(end).
  // Returns 1 when that s would lie past pure noise.
  double JumpStart(double end) const;

 private:
  Parameterization p_;
};

}  // namespace tpdiff::spec

#endif  // TPDIFF_SPEC_SCHEDULE_H_
