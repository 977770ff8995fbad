#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <cmath>

#include <gtest/gtest.h>

#include "tpdiff/core/stage_math.h"
#include "tpdiff/core/temporal_ops.h"

namespace tpdiff::core {
namespace {

TEST(TemporalOpsTest, DownUpAndProjection) {
  const torch::Tensor x = torch::arange(8, torch::kFloat).reshape({1, 1, 8, 1, 1});
  const torch::Tensor down = TemporalDown(x);
  EXPECT_TRUE(torch::allclose(down.flatten(), torch::tensor({0.5f, 2.5f, 4.5f, 6.5f})));
  EXPECT_TRUE(torch::equal(TemporalUp(down).flatten(),
                           torch::tensor({0.5f, 0.5f, 2.5f, 2.5f, 4.5f, 4.5f, 6.5f, 6.5f})));
  const torch::Tensor r = torch::randn({2, 3, 8, 4, 4});
  const torch::Tensor p = TemporalProject(r);
  EXPECT_TRUE(torch::allclose(TemporalProject(p), p, 1e-6, 1e-6));  // idempotent
  // Orthogonal: <P r, r - P r> = 0.
  EXPECT_NEAR((p * (r - p)).sum().item<double>(), 0.0, 1e-3);
  EXPECT_EQ(TemporalDownTimes(r, 2).size(2), 2);
}

// Section 3: after the jump the signal part is a(s) Up(D) and the noise is white with
// variance b(s)^2, with no correlation between the two copies of a duplicated frame.
class JumpStatisticsTest : public ::testing::TestWithParam<Parameterization> {};

TEST_P(JumpStatisticsTest, NoiseIsWhiteWithTheStageVarianceAndSignalIsContinuous) {
  StagePlanOptions o;
  o.num_frames = 8;
  o.num_stages = 3;
  o.steps_per_stage = {1, 1, 1};
  const StagePlan plan = *StagePlan::Create(NoiseSchedule(GetParam()), o);
  const NoiseSchedule& sched = plan.schedule();
  const Stage& from = plan.stage(3);  // 2 frames
  const Stage& to = plan.stage(2);    // 4 frames
  const JumpCoefficients jump = ComputeJump(sched, from, to);

  constexpr int64_t kDraws = 20000;
  at::Generator gen = at::detail::createCPUGenerator(7);
  const torch::Tensor x0 = at::rand({1, 1, 8, 2, 2}, gen, torch::kDouble) * 1.6 - 0.8;
  const torch::Tensor d_from = TemporalDownTimes(x0, 2).expand({kDraws, 1, 2, 2, 2});
  const torch::Tensor eps = at::randn({kDraws, 1, 2, 2, 2}, gen, torch::kDouble);
  const torch::Tensor x_end = d_from * sched.a(from.end) + eps * sched.b(from.end);
  const torch::Tensor x_start =
      ApplyJump(x_end, jump, at::randn({kDraws, 1, 2, 2, 2}, gen, torch::kDouble));

  const double as = sched.a(to.start), bs = sched.b(to.start);
  // Without noise the jump is exactly a(s) Up(D).
  const torch::Tensor clean = ApplyJump(d_from.narrow(0, 0, 1) * sched.a(from.end), jump,
                                        torch::zeros({1, 1, 2, 2, 2}, torch::kDouble));
  EXPECT_TRUE(torch::allclose(clean, TemporalUp(TemporalDownTimes(x0, 2)) * as, 1e-12, 1e-12));

  const torch::Tensor noise = (x_start - TemporalUp(d_from) * as).reshape({kDraws, -1});
  const double n = kDraws;
  // 5-sigma bounds: sd(mean) = b/sqrt(n); sd(sample variance) = b^2 sqrt(2/n) for normals;
  // sd(sample correlation) = 1/sqrt(n) at zero correlation.
  const torch::Tensor mean = noise.mean(0);
  EXPECT_LT(mean.abs().max().item<double>(), 5 * bs / std::sqrt(n));
  const torch::Tensor var = noise.var(0);
  EXPECT_LT((var - bs * bs).abs().max().item<double>(), 5 * bs * bs * std::sqrt(2 / n));
  const torch::Tensor frames = (x_start - TemporalUp(d_from) * as);  // [n, 1, 4, 2, 2]
  for (int pair = 0; pair < 2; ++pair) {
    const torch::Tensor first = frames.select(2, 2 * pair).reshape({kDraws, -1});
    const torch::Tensor second = frames.select(2, 2 * pair + 1).reshape({kDraws, -1});
    const torch::Tensor cov = ((first - first.mean(0)) * (second - second.mean(0))).mean(0);
    const torch::Tensor corr = cov / (first.std(0) * second.std(0));
    EXPECT_LT(corr.abs().max().item<double>(), 5 / std::sqrt(n)) << "pair " << pair;
  }
  // Without the antithetic noise the copies would be perfectly correlated: the test can fail.
  const torch::Tensor no_fix = TemporalUp(x_end) * jump.c - TemporalUp(d_from) * as;
  const torch::Tensor f0 = no_fix.select(2, 0).reshape({kDraws, -1});
  const torch::Tensor f1 = no_fix.select(2, 1).reshape({kDraws, -1});
  EXPECT_TRUE(torch::allclose(f0, f1));
}

INSTANTIATE_TEST_SUITE_P(Both, JumpStatisticsTest,
                         ::testing::Values(Parameterization::kFlowMatching,
                                           Parameterization::kVpEps),
                         [](const auto& info) { return std::string(ParameterizationName(info.param)); });

TEST(JumpTest, FlowMatchingCoefficientsMatchTheMethodNote) {
  StagePlanOptions o;
  o.num_frames = 16;
  o.num_stages = 3;
  o.steps_per_stage = {1, 1, 1};
  const StagePlan plan = *StagePlan::Create(NoiseSchedule(Parameterization::kFlowMatching), o);
  const JumpCoefficients j32 = ComputeJump(plan.schedule(), plan.stage(3), plan.stage(2));
  EXPECT_NEAR(j32.c, 0.7836, 1e-4);
  EXPECT_NEAR(j32.alpha, 0.5224, 1e-4);
  const JumpCoefficients j21 = ComputeJump(plan.schedule(), plan.stage(2), plan.stage(1));
  EXPECT_NEAR(j21.c, 0.8787, 1e-4);
  EXPECT_NEAR(j21.alpha, 0.2929, 1e-4);
}

}  // namespace
}  // namespace tpdiff::core
