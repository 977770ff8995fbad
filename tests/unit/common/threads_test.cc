#include "tpdiff/common/threads.h"

#include <gtest/gtest.h>

namespace tpdiff::common {
namespace {

TEST(IntraOpThreadsTest, ZeroMeansOnePerCoreAndAtLeastOne) {
  EXPECT_EQ(*IntraOpThreads(0, 16), 16);
  EXPECT_EQ(*IntraOpThreads(0, 0), 1);  // hardware_concurrency() may not know
  EXPECT_GE(*IntraOpThreads(0), 1);
}

TEST(IntraOpThreadsTest, AnExplicitCountWinsAndANegativeOneIsRejected) {
  EXPECT_EQ(*IntraOpThreads(3, 16), 3);
  EXPECT_EQ(*IntraOpThreads(32, 2), 32);
  absl::StatusOr<int> negative = IntraOpThreads(-2, 16);
  ASSERT_EQ(negative.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(negative.status().message(), "threads: -2 is negative (0 = one per core)");
}

}  // namespace
}  // namespace tpdiff::common
