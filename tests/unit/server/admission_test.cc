#include "tpdiff/server/admission.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace tpdiff::server {
namespace {

using ::testing::HasSubstr;

TEST(EstimateQueueWaitTest, NothingToEstimateFromWithoutSlotsOrFinishedJobs) {
  EXPECT_FALSE(EstimateQueueWaitSeconds({/*ahead=*/3, /*running=*/1, /*slots=*/0, 10.0}));
  EXPECT_FALSE(EstimateQueueWaitSeconds({3, 1, 2, std::nullopt}));
}

TEST(EstimateQueueWaitTest, JobsAheadAndBusySlotsSpreadOverTheSlots) {
  // A free slot: starts at once.
  EXPECT_DOUBLE_EQ(*EstimateQueueWaitSeconds({0, 1, 2, 20.0}), 0.0);
  // One slot, busy: waits one mean job time.
  EXPECT_DOUBLE_EQ(*EstimateQueueWaitSeconds({0, 1, 1, 20.0}), 20.0);
  // Two slots, both busy, three ahead: (3 + 2 - 2 + 1) jobs over 2 slots of 10 s.
  EXPECT_DOUBLE_EQ(*EstimateQueueWaitSeconds({3, 2, 2, 10.0}), 20.0);
}

TEST(CheckEstimatedWaitTest, RejectsAnEstimateBeyondTheLimitNamingItsInputs) {
  const WaitInputs busy{/*ahead=*/0, /*running=*/1, /*slots=*/1, 20.0};
  EXPECT_TRUE(CheckEstimatedWait(busy, absl::Seconds(20), "max_queue_wait").ok());
  absl::Status rejected = CheckEstimatedWait(busy, absl::Seconds(5), "max_queue_wait");
  EXPECT_EQ(rejected.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(rejected.message(), HasSubstr("estimated queue wait 20.0s exceeds the "
                                            "max_queue_wait of 5.0s"));
  EXPECT_THAT(rejected.message(), HasSubstr("1 running, 1 ready slots"));
  EXPECT_THAT(CheckEstimatedWait(busy, absl::Seconds(5), "call deadline").message(),
              HasSubstr("call deadline"));
  EXPECT_TRUE(CheckEstimatedWait({0, 1, 0, 20.0}, absl::Seconds(5), "max_queue_wait").ok());
}

TEST(CheckTenantQueuedJobsTest, LimitNamesTheTenantAndZeroIsUnlimited) {
  EXPECT_TRUE(CheckTenantQueuedJobs("acme", 0, 1).ok());
  absl::Status full = CheckTenantQueuedJobs("acme", 1, 1);
  EXPECT_EQ(full.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(full.message(), HasSubstr("tenant \"acme\" already has max_queued_jobs 1"));
  EXPECT_TRUE(CheckTenantQueuedJobs("acme", 1000, 0).ok());
}

TEST(RecentDurationsTest, MeanOfTheLastJobsOnly) {
  RecentDurations recent(2);
  EXPECT_FALSE(recent.Mean().has_value());
  recent.Add(10);
  EXPECT_DOUBLE_EQ(*recent.Mean(), 10);
  recent.Add(20);
  recent.Add(40);  // 10 drops out
  EXPECT_DOUBLE_EQ(*recent.Mean(), 30);
}

}  // namespace
}  // namespace tpdiff::server
