#ifndef TPDIFF_COMMON_CLOCK_H_
#define TPDIFF_COMMON_CLOCK_H_

#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace tpdiff::common {

// Time source for queue deadlines, leases, heartbeats, TTLs and reconnect backoff, so that
// unit tests drive time explicitly instead of sleeping.
//
// Thread safety: implementations are thread-safe. Ownership: callers keep a reference; the
// clock must outlive every object that uses it.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;

  // absl::Mutex::AwaitWithDeadline against this clock: with `mu` held, waits until `cond`
  // holds or Now() reaches `deadline`; returns with `mu` held and the value of `cond`.
  // `mu` may be released and re-acquired even when `cond` already holds on entry.
  virtual bool AwaitWithDeadline(absl::Mutex& mu, const absl::Condition& cond,
                                 absl::Time deadline) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) = 0;
};

// Wall-clock time.
class RealClock final : public Clock {
 public:
  absl::Time Now() const override { return absl::Now(); }
  bool AwaitWithDeadline(absl::Mutex& mu, const absl::Condition& cond,
                         absl::Time deadline) const override ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    return mu.AwaitWithDeadline(cond, deadline);
  }
};

// Manually advanced time for tests. Starts at a fixed, arbitrary instant so that logs and
// timestamps are reproducible. A waiter in AwaitWithDeadline wakes when its condition holds
// or when Advance carries Now() past its deadline; it never waits on wall-clock time.
//
// Locks: Advance takes each waiting mutex briefly (so absl re-evaluates the waiter's
// condition); call it without holding any mutex a waiter may wait on.
class FakeClock final : public Clock {
 public:
  FakeClock() : now_(absl::FromUnixSeconds(1700000000)) {}
  absl::Time Now() const override;
  bool AwaitWithDeadline(absl::Mutex& mu, const absl::Condition& cond,
                         absl::Time deadline) const override ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  void Advance(absl::Duration d);
  // Number of threads inside AwaitWithDeadline; tests wait for a waiter before advancing.
  int waiters() const;
  // Blocks (in wall-clock time, for at most `timeout`, a bound for bugs) until a thread waits
  // in AwaitWithDeadline with a deadline at or before `deadline_by`; false on timeout. Tests
  // call it before an Advance that must find that waiter already waiting.
  bool AwaitWaiter(absl::Time deadline_by, absl::Duration timeout) const;

 private:
  mutable absl::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_);
  struct Waiter {
    absl::Mutex* mu;
    absl::Time deadline;
  };
  // The threads in AwaitWithDeadline. waiters_mu_ is never taken while a waiter's mutex is
  // held, so Advance may lock those mutexes under it.
  mutable absl::Mutex waiters_mu_;
  mutable std::vector<Waiter> waiting_ ABSL_GUARDED_BY(waiters_mu_);
};

}  // namespace tpdiff::common

#endif  // TPDIFF_COMMON_CLOCK_H_
