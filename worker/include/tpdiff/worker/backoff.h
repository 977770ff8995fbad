#ifndef TPDIFF_WORKER_BACKOFF_H_
#define TPDIFF_WORKER_BACKOFF_H_

#include <cstdint>
#include <random>

#include "absl/random/random.h"
#include "absl/time/time.h"

namespace tpdiff::worker {

struct BackoffOptions {
  absl::Duration initial = absl::Milliseconds(250);
  absl::Duration max = absl::Seconds(30);
  double multiplier = 2.0;
  // Each delay is drawn uniformly from [(1 - jitter) d, d], so workers that lost the same
  // front at the same moment do not all dial back in lockstep.
  double jitter = 0.5;
};

// Exponential reconnect delays with jitter. Not thread-safe; one per connection loop.
class Backoff {
 public:
  explicit Backoff(BackoffOptions options = {}, uint64_t seed = absl::Uniform<uint64_t>(
                                                    absl::BitGen()))
      : options_(options), rng_(seed) {}

  // The delay before the next attempt; grows until options.max.
  absl::Duration Next();
  // After a successful connection: start again from options.initial.
  void Reset() { attempt_ = 0; }
  int attempt() const { return attempt_; }

 private:
  BackoffOptions options_;
  std::mt19937_64 rng_;
  int attempt_ = 0;
};

}  // namespace tpdiff::worker

#endif  // TPDIFF_WORKER_BACKOFF_H_
