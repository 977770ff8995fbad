#include "tpdiff/common/clock.h"

#include <gtest/gtest.h>

#include <thread>

namespace tpdiff::common {
namespace {

constexpr absl::Duration kBound = absl::Seconds(60);  // a bound for bugs, not a sleep

TEST(FakeClockTest, StartsAtAFixedInstantAndMovesOnlyWhenAdvanced) {
  FakeClock clock;
  EXPECT_EQ(clock.Now(), absl::FromUnixSeconds(1700000000));
  clock.Advance(absl::Seconds(3));
  EXPECT_EQ(clock.Now(), absl::FromUnixSeconds(1700000003));
}

TEST(FakeClockTest, AwaitReturnsAtOnceWhenTheConditionHoldsOrTheDeadlinePassed) {
  FakeClock clock;
  absl::Mutex mu;
  bool flag = true;
  absl::MutexLock lock(&mu);
  EXPECT_TRUE(clock.AwaitWithDeadline(mu, absl::Condition(&flag), clock.Now() + absl::Hours(1)));
  flag = false;
  EXPECT_FALSE(clock.AwaitWithDeadline(mu, absl::Condition(&flag), clock.Now()));
  EXPECT_EQ(clock.waiters(), 0);
}

TEST(FakeClockTest, AWaiterWakesWhenAdvancePassesItsDeadlineAndNotBefore) {
  FakeClock clock;
  absl::Mutex mu;
  bool flag = false;
  bool returned = false;
  bool result = true;
  const absl::Time deadline = clock.Now() + absl::Seconds(10);
  std::thread waiter([&] {
    absl::MutexLock lock(&mu);
    result = clock.AwaitWithDeadline(mu, absl::Condition(&flag), deadline);
    returned = true;
  });
  ASSERT_TRUE(clock.AwaitWaiter(deadline, kBound));
  EXPECT_FALSE(clock.AwaitWaiter(deadline - absl::Seconds(1), absl::ZeroDuration()));
  clock.Advance(absl::Seconds(9));
  {
    absl::MutexLock lock(&mu);
    EXPECT_FALSE(returned);  // Advance re-evaluated the wait synchronously: still before
  }
  EXPECT_EQ(clock.waiters(), 1);
  clock.Advance(absl::Seconds(1));
  waiter.join();
  EXPECT_TRUE(returned);
  EXPECT_FALSE(result);
  EXPECT_EQ(clock.waiters(), 0);
}

TEST(FakeClockTest, AWaiterWakesWhenItsConditionTurnsTrue) {
  FakeClock clock;
  absl::Mutex mu;
  bool flag = false;
  bool result = false;
  std::thread waiter([&] {
    absl::MutexLock lock(&mu);
    result = clock.AwaitWithDeadline(mu, absl::Condition(&flag), absl::InfiniteFuture());
  });
  ASSERT_TRUE(clock.AwaitWaiter(absl::InfiniteFuture(), kBound));
  {
    absl::MutexLock lock(&mu);
    flag = true;
  }
  waiter.join();
  EXPECT_TRUE(result);
  EXPECT_EQ(clock.Now(), absl::FromUnixSeconds(1700000000));
}

TEST(RealClockTest, AwaitHonoursAPastDeadline) {
  RealClock clock;
  absl::Mutex mu;
  bool flag = false;
  absl::MutexLock lock(&mu);
  EXPECT_FALSE(clock.AwaitWithDeadline(mu, absl::Condition(&flag), absl::InfinitePast()));
  flag = true;
  EXPECT_TRUE(clock.AwaitWithDeadline(mu, absl::Condition(&flag), absl::InfinitePast()));
}

}  // namespace
}  // namespace tpdiff::common
