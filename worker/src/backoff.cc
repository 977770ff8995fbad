#include "tpdiff/worker/backoff.h"

#include <algorithm>
#include <cmath>

namespace tpdiff::worker {

absl::Duration Backoff::Next() {
  const double base = absl::ToDoubleSeconds(options_.initial) *
                      std::pow(options_.multiplier, std::min(attempt_, 60));
  const double capped = std::min(base, absl::ToDoubleSeconds(options_.max));
  ++attempt_;
  const double jitter = std::clamp(options_.jitter, 0.0, 1.0);
  const double factor = jitter > 0 ? absl::Uniform(rng_, 1.0 - jitter, 1.0) : 1.0;
  return absl::Seconds(capped * factor);
}

}  // namespace tpdiff::worker
