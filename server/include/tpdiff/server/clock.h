#ifndef TPDIFF_SERVER_CLOCK_H_
#define TPDIFF_SERVER_CLOCK_H_

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace tpdiff::server {

// Time source for queue deadlines, leases, heartbeats and the job store's TTL, so that unit
// tests drive time explicitly instead of sleeping.
//
// Thread safety: implementations are thread-safe. Ownership: callers keep a reference; the
// clock must outlive every object that uses it.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;
};

// Wall-clock time.
class RealClock final : public Clock {
 public:
  absl::Time Now() const override { return absl::Now(); }
};

// Manually advanced time for tests. Starts at a fixed, arbitrary instant so that logs and
// timestamps are reproducible.
class FakeClock final : public Clock {
 public:
  FakeClock() : now_(absl::FromUnixSeconds(1700000000)) {}
  absl::Time Now() const override {
    absl::MutexLock lock(&mu_);
    return now_;
  }
  void Advance(absl::Duration d) {
    absl::MutexLock lock(&mu_);
    now_ += d;
  }

 private:
  mutable absl::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tpdiff::server

#endif  // TPDIFF_SERVER_CLOCK_H_
