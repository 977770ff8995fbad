#include "tpdiff/worker/backoff.h"

#include <gtest/gtest.h>

namespace tpdiff::worker {
namespace {

TEST(BackoffTest, GrowsExponentiallyWithinTheJitterBandUpToTheCap) {
  BackoffOptions o;
  o.initial = absl::Seconds(1);
  o.max = absl::Seconds(10);
  o.multiplier = 2;
  o.jitter = 0.5;
  Backoff b(o, /*seed=*/1);
  const double nominal[] = {1, 2, 4, 8, 10, 10, 10};
  for (double n : nominal) {
    const double d = absl::ToDoubleSeconds(b.Next());
    EXPECT_GE(d, 0.5 * n);
    EXPECT_LE(d, n);
  }
  b.Reset();
  EXPECT_LE(absl::ToDoubleSeconds(b.Next()), 1.0);
  EXPECT_EQ(b.attempt(), 1);
}

TEST(BackoffTest, JitterSpreadsWorkersApart) {
  BackoffOptions o;
  o.initial = absl::Seconds(1);
  Backoff a(o, 1), b(o, 2);
  bool differ = false;
  for (int i = 0; i < 5; ++i) differ |= a.Next() != b.Next();
  EXPECT_TRUE(differ);
}

TEST(BackoffTest, NoJitterIsExact) {
  BackoffOptions o;
  o.initial = absl::Milliseconds(100);
  o.max = absl::Seconds(1);
  o.jitter = 0;
  Backoff b(o);
  EXPECT_EQ(b.Next(), absl::Milliseconds(100));
  EXPECT_EQ(b.Next(), absl::Milliseconds(200));
  EXPECT_EQ(b.Next(), absl::Milliseconds(400));
  EXPECT_EQ(b.Next(), absl::Milliseconds(800));
  EXPECT_EQ(b.Next(), absl::Seconds(1));
}

}  // namespace
}  // namespace tpdiff::worker
