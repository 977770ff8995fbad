#include "tpdiff/spec/stage_plan.h"

#include <gtest/gtest.h>

namespace tpdiff::spec {
namespace {

const NoiseSchedule kFm(Parameterization::kFlowMatching);

absl::Status CreateStatus(int frames, int stages, std::vector<int> steps,
                          std::vector<double> boundaries = {}) {
  StagePlanOptions o;
  o.num_frames = frames;
  o.num_stages = stages;
  o.steps_per_stage = std::move(steps);
  o.boundaries = std::move(boundaries);
  return StagePlan::Create(kFm, o).status();
}

void ExpectInvalid(const absl::Status& s, const std::string& field) {
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_NE(s.message().find(field), std::string::npos) << s;
}

TEST(StagePlanTest, FramesAndStridesPerStage) {
  StagePlanOptions o;
  o.num_frames = 16;
  o.num_stages = 3;
  o.steps_per_stage = {4, 5, 6};
  auto plan = StagePlan::Create(kFm, o);
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_EQ(plan->stages().size(), 3u);
  EXPECT_EQ(plan->stages()[0].k, 3);
  EXPECT_EQ(plan->stages()[0].frames, 4);
  EXPECT_EQ(plan->stages()[0].frame_stride, 4);
  EXPECT_EQ(plan->stages()[0].steps, 4);
  EXPECT_EQ(plan->stages()[1].frames, 8);
  EXPECT_EQ(plan->stages()[2].frames, 16);
  EXPECT_EQ(plan->stages()[2].steps, 6);
  EXPECT_EQ(plan->total_steps(), 15);
}

TEST(StagePlanTest, VanillaIsOneFullRateStageWithTheSameSteps) {
  auto plan = StagePlan::Vanilla(kFm, 16, 30);
  ASSERT_TRUE(plan.ok());
  ASSERT_EQ(plan->num_stages(), 1);
  EXPECT_EQ(plan->stage(1).frames, 16);
  EXPECT_EQ(plan->stage(1).start, 1.0);
  EXPECT_EQ(plan->stage(1).end, 0.0);
  EXPECT_EQ(plan->total_steps(), 30);
}

TEST(StagePlanTest, GivenBoundariesAreUsedAsNominalEnds) {
  StagePlanOptions o;
  o.num_frames = 8;
  o.num_stages = 2;
  o.steps_per_stage = {3, 3};
  o.boundaries = {0.5};
  auto plan = StagePlan::Create(kFm, o);
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->stage(2).end, 0.5);
  EXPECT_NEAR(plan->stage(1).start, std::sqrt(2.0) * 0.5 / (0.5 + std::sqrt(2.0) * 0.5), 1e-12);
}

TEST(StagePlanTest, RejectsInvalidPlansNamingTheProblem) {
  ExpectInvalid(CreateStatus(10, 3, {1, 1, 1}), "num_frames");
  ExpectInvalid(CreateStatus(2, 3, {1, 1, 1}), "num_frames");
  ExpectInvalid(CreateStatus(16, 0, {}), "stages");
  ExpectInvalid(CreateStatus(64, 6, {1, 1, 1, 1, 1, 1}), "stages");
  ExpectInvalid(CreateStatus(16, 3, {1, 0, 1}), "stage_steps[1]");
  ExpectInvalid(CreateStatus(16, 3, {1, 1}), "stage_steps");
  ExpectInvalid(CreateStatus(16, 3, {1, 1, 1}, {0.3, 0.6}), "boundaries");
  ExpectInvalid(CreateStatus(16, 3, {1, 1, 1}, {0.6}), "boundaries");
  ExpectInvalid(CreateStatus(16, 2, {1, 1}, {1.5}), "boundaries");
}

}  // namespace
}  // namespace tpdiff::spec
