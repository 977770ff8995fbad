#include "tpdiff/common/clock.h"

#include <algorithm>

namespace tpdiff::common {

absl::Time FakeClock::Now() const {
  absl::MutexLock lock(&mu_);
  return now_;
}

void FakeClock::Advance(absl::Duration d) {
  {
    absl::MutexLock lock(&mu_);
    now_ += d;
  }
  // Releasing a waiter's mutex makes absl re-evaluate its condition, which reads Now().
  absl::MutexLock lock(&waiters_mu_);
  for (const Waiter& waiter : waiting_) {
    waiter.mu->Lock();
    waiter.mu->Unlock();
  }
}

int FakeClock::waiters() const {
  absl::MutexLock lock(&waiters_mu_);
  return static_cast<int>(waiting_.size());
}

bool FakeClock::AwaitWaiter(absl::Time deadline_by, absl::Duration timeout) const {
  absl::MutexLock lock(&waiters_mu_);
  auto found = [this, deadline_by]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(waiters_mu_) {
    return std::any_of(waiting_.begin(), waiting_.end(),
                       [deadline_by](const Waiter& w) { return w.deadline <= deadline_by; });
  };
  return waiters_mu_.AwaitWithTimeout(absl::Condition(&found), timeout);
}

bool FakeClock::AwaitWithDeadline(absl::Mutex& mu, const absl::Condition& cond,
                                  absl::Time deadline) const {
  if (cond.Eval() || Now() >= deadline) return cond.Eval();
  // Registration takes waiters_mu_, which Advance holds while locking `mu`: never take it
  // with `mu` held.
  mu.Unlock();
  {
    absl::MutexLock lock(&waiters_mu_);
    waiting_.push_back({&mu, deadline});
  }
  mu.Lock();
  struct Wait {
    const absl::Condition* cond;
    const FakeClock* clock;
    absl::Time deadline;
    bool Done() const { return cond->Eval() || clock->Now() >= deadline; }
  } wait{&cond, this, deadline};
  mu.Await(absl::Condition(&wait, &Wait::Done));
  mu.Unlock();
  {
    absl::MutexLock lock(&waiters_mu_);
    waiting_.erase(std::find_if(waiting_.begin(), waiting_.end(), [&](const Waiter& w) {
      return w.mu == &mu && w.deadline == deadline;
    }));
  }
  mu.Lock();
  return cond.Eval();
}

}  // namespace tpdiff::common
