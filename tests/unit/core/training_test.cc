#include "tpdiff/core/training.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <gtest/gtest.h>

#include <map>
#include <set>

#include "tpdiff/core/stage_math.h"
#include "tpdiff/core/temporal_ops.h"

namespace tpdiff::core {
namespace {

StagePlan MakePlan(Parameterization p) {
  StagePlanOptions o;
  o.num_frames = 16;
  o.num_stages = 3;
  o.steps_per_stage = {10, 10, 10};
  return *StagePlan::Create(NoiseSchedule(p), o);
}

class TrainingTargetTest : public ::testing::TestWithParam<Parameterization> {};

// x_t at the window ends equals the method note's end and start points.
TEST_P(TrainingTargetTest, WindowEndsAreTheStageEndAndStartPoints) {
  const StagePlan plan = MakePlan(GetParam());
  const NoiseSchedule& s = plan.schedule();
  const torch::Tensor x0 = torch::rand({3, 2, 16, 4, 4}, torch::kDouble) * 2 - 1;
  for (int k = 1; k <= 3; ++k) {
    const Stage& st = plan.stage(k);
    const torch::Tensor eps = torch::randn({3, 2, st.frames, 4, 4}, torch::kDouble);
    const torch::Tensor d = TemporalDownTimes(x0, k - 1);
    const torch::Tensor x_e = d * s.a(st.end) + eps * s.b(st.end);
    const torch::Tensor x_s = k == 3 ? eps
                                     : TemporalUp(TemporalDownTimes(x0, k)) * s.a(st.start) +
                                           eps * s.b(st.start);
    const TrainingBatch at_end =
        BuildTrainingBatch(plan, k, x0, torch::full({3}, st.end, torch::kDouble), eps);
    const TrainingBatch at_start =
        BuildTrainingBatch(plan, k, x0, torch::full({3}, st.start, torch::kDouble), eps);
    EXPECT_LT((at_end.x_t - x_e).abs().max().item<double>(), 1e-5) << "stage " << k;
    EXPECT_LT((at_start.x_t - x_s).abs().max().item<double>(), 1e-5) << "stage " << k;
    EXPECT_EQ(at_end.stage_ids[0].item<int64_t>(), k);
    if (GetParam() == Parameterization::kFlowMatching) {
      EXPECT_LT((at_end.target - (x_s - x_e)).abs().max().item<double>(), 1e-5);
    } else {
      // eps_k carries x_s to x_e: x_e / a_e = x_s / a_s + eps_k (lambda_e - lambda_s).
      const torch::Tensor rebuilt =
          (x_s / s.a(st.start) + at_end.target * (s.lambda(st.end) - s.lambda(st.start))) *
          s.a(st.end);
      EXPECT_LT((rebuilt - x_e).abs().max().item<double>(), 1e-4) << "stage " << k;
    }
  }
}

TEST_P(TrainingTargetTest, DrawnBatchesStayInsideTheirWindows) {
  const StagePlan plan = MakePlan(GetParam());
  at::Generator gen = at::detail::createCPUGenerator(5);
  const torch::Tensor x0 = torch::rand({8, 1, 16, 4, 4}) * 2 - 1;
  std::set<int> seen;
  for (int i = 0; i < 40; ++i) {
    const TrainingBatch b = DrawTrainingBatch(plan, x0, gen);
    const Stage& st = plan.stage(b.stage);
    seen.insert(b.stage);
    EXPECT_EQ(b.x_t.size(2), st.frames);
    EXPECT_EQ(b.target.sizes(), b.x_t.sizes());
    EXPECT_GE(b.t.min().item<double>(), st.end - 1e-6);
    EXPECT_LE(b.t.max().item<double>(), st.start + 1e-6);
  }
  EXPECT_EQ(seen.size(), 3u);
}

TEST(StageWeightsTest, StagesAreDrawnInProportionToTheirWeights) {
  const StagePlan plan = MakePlan(Parameterization::kFlowMatching);
  at::Generator gen = at::detail::createCPUGenerator(7);
  const torch::Tensor x0 = torch::rand({2, 1, 16, 4, 4}) * 2 - 1;
  TrainingDrawOptions options;
  options.align_noise = false;
  options.stage_weights = {1, 0, 3};
  std::map<int, int> count;
  const int draws = 2000;
  for (int i = 0; i < draws; ++i) {
    const TrainingBatch b = DrawTrainingBatch(plan, x0, gen, options);
    ++count[b.stage];
    EXPECT_EQ(b.x_t.size(2), plan.stage(b.stage).frames);
  }
  EXPECT_EQ(count[2], 0);  // a zero weight never trains its stage
  // Binomial(2000, 0.75): sd ~19, so +-80 is over 4 sd.
  EXPECT_NEAR(count[3], 1500, 80);
  EXPECT_EQ(count[1] + count[3], draws);

  options.stage = 2;  // a forced stage wins over the weights
  EXPECT_EQ(DrawTrainingBatch(plan, x0, gen, options).stage, 2);
  options.stage = 0;
  options.stage_weights = {1, 1};
  EXPECT_THROW(DrawTrainingBatch(plan, x0, gen, options), c10::Error);
  EXPECT_EQ(StageWeightsError({1, 1}, 3), "2 weights for 3 stages (give one per stage)");
  EXPECT_EQ(StageWeightsError({1, -1, 1}, 3), "-1 is not a finite weight >= 0");
  EXPECT_EQ(StageWeightsError({0, 0, 0}, 3), "at least one weight must be positive");
  EXPECT_EQ(StageWeightsError({1, 0, 3}, 3), "");
}

INSTANTIATE_TEST_SUITE_P(Both, TrainingTargetTest,
                         ::testing::Values(Parameterization::kFlowMatching,
                                           Parameterization::kVpEps),
                         [](const auto& info) { return std::string(ParameterizationName(info.param)); });

}  // namespace
}  // namespace tpdiff::core
