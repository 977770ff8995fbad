#include <gtest/gtest.h>

#include <cmath>

#include "tpdiff/spec/schedule.h"
#include "tpdiff/spec/stage_plan.h"

namespace tpdiff::spec {
namespace {

NoiseSchedule Flow(double shift) {
  ScheduleConfig c;
  c.shift = shift;
  return *NoiseSchedule::FromConfig(c);
}

NoiseSchedule Vp(Prediction prediction, BetaSchedule betas = BetaSchedule::kScaledLinear) {
  ScheduleConfig c;
  c.type = Parameterization::kVpEps;
  c.prediction = prediction;
  c.beta_schedule = betas;
  return *NoiseSchedule::FromConfig(c);
}

TEST(LatentScheduleTest, ShiftOneIsPlainFlowMatching) {
  const NoiseSchedule plain(Parameterization::kFlowMatching);
  const NoiseSchedule s = Flow(1.0);
  EXPECT_TRUE(s.latent());
  for (int i = 0; i <= 20; ++i) {
    const double t = i / 20.0;
    EXPECT_EQ(s.a(t), plain.a(t));
    EXPECT_EQ(s.b(t), plain.b(t));
    EXPECT_EQ(s.ModelTimestep(t), 1000.0 * t);
  }
  for (double e : {0.1, 1.0 / 3, 2.0 / 3}) EXPECT_EQ(s.JumpStart(e), plain.JumpStart(e));
}

TEST(LatentScheduleTest, ShiftMapsTimeToTheShiftedNoiseLevel) {
  const NoiseSchedule s = Flow(3.0);
  for (int i = 0; i <= 20; ++i) {
    const double t = i / 20.0;
    const double sigma = 3.0 * t / (1.0 + 2.0 * t);
    EXPECT_DOUBLE_EQ(s.sigma(t), sigma);
    EXPECT_DOUBLE_EQ(s.a(t), 1.0 - sigma);
    EXPECT_DOUBLE_EQ(s.ModelTimestep(t), 1000.0 * sigma);
    EXPECT_NEAR(s.FlowTimeOf(sigma), t, 1e-15);
  }
  EXPECT_EQ(s.sigma(0.0), 0.0);
  EXPECT_EQ(s.sigma(1.0), 1.0);
}

TEST(LatentScheduleTest, JumpStartDoublesTheNoiseToSignalRatioOnEverySchedule) {
  for (const NoiseSchedule& s :
       {Flow(1.0), Flow(3.0), Flow(7.0), Vp(Prediction::kEpsilon), Vp(Prediction::kV),
        Vp(Prediction::kEpsilon, BetaSchedule::kLinear),
        NoiseSchedule(Parameterization::kVpEps)}) {
    for (double e : {0.05, 0.2, 1.0 / 3, 0.5, 2.0 / 3}) {
      const double start = s.JumpStart(e);
      ASSERT_GT(start, e);
      if (start < 1.0) {
        EXPECT_NEAR(s.lambda(start) / s.lambda(e), std::sqrt(2.0), 1e-9) << e;
      } else {
        EXPECT_GE(std::sqrt(2.0) * s.lambda(e), s.lambda(1.0) * (1 - 1e-12));
      }
    }
  }
}

TEST(LatentScheduleTest, DiscreteVpAlphaBarIsTheProductAtIntegers) {
  for (BetaSchedule betas : {BetaSchedule::kScaledLinear, BetaSchedule::kLinear}) {
    const NoiseSchedule s = Vp(Prediction::kEpsilon, betas);
    const int n = 1000;
    double product = 1.0;
    for (int i = 0; i < n; ++i) {
      const double f = static_cast<double>(i) / (n - 1);
      double beta;
      if (betas == BetaSchedule::kScaledLinear) {
        const double r = std::sqrt(0.00085) + f * (std::sqrt(0.012) - std::sqrt(0.00085));
        beta = r * r;
      } else {
        beta = 0.00085 + f * (0.012 - 0.00085);
      }
      product *= 1.0 - beta;
      ASSERT_NEAR(s.DiscreteAlphaBar(i) / product, 1.0, 1e-12) << i;
      // tau = i / (N - 1) lands on index i exactly.
      const double tau = static_cast<double>(i) / (n - 1);
      ASSERT_NEAR(s.a(tau) * s.a(tau) / product, 1.0, 1e-12) << i;
      ASSERT_NEAR(s.a(tau) * s.a(tau) + s.b(tau) * s.b(tau), 1.0, 1e-12);
      ASSERT_NEAR(s.ModelTimestep(tau), i, 1e-9);
    }
    // Between indices log(alphabar) is linear.
    const double tau = 10.25 / (n - 1);
    EXPECT_NEAR(std::log(s.a(tau) * s.a(tau)),
                0.75 * std::log(s.DiscreteAlphaBar(10)) + 0.25 * std::log(s.DiscreteAlphaBar(11)),
                1e-12);
    EXPECT_GT(s.a(1.0), 0.0);
    EXPECT_TRUE(std::isfinite(s.lambda(1.0)));
  }
  // Stable Diffusion's final alphabar for scaled_linear 0.00085..0.012 over 1000 steps.
  EXPECT_NEAR(Vp(Prediction::kEpsilon).DiscreteAlphaBar(999), 0.0046, 0.0001);
}

TEST(LatentScheduleTest, RejectsBadConfigsNamingTheField) {
  ScheduleConfig c;
  c.shift = 0.9;
  EXPECT_EQ(NoiseSchedule::FromConfig(c).status().message(), "schedule.shift: 0.9 outside [1, 100]");
  c = ScheduleConfig();
  c.type = Parameterization::kVpEps;
  c.prediction = Prediction::kFlowVelocity;
  EXPECT_EQ(NoiseSchedule::FromConfig(c).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(LatentScheduleTest, CausalPlanOf21LatentFramesHasThreeStages) {
  // 81 pixel frames = 21 latent frames = 1 + 20; stages keep frame 0 and pool the 20.
  StagePlanOptions o;
  o.num_frames = 21;
  o.causal_first_frame = true;
  o.num_stages = 3;
  o.steps_per_stage = {4, 4, 4};
  absl::StatusOr<StagePlan> plan = StagePlan::Create(Flow(3.0), o);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_TRUE(plan->causal_first_frame());
  EXPECT_EQ(plan->stage(3).frames, 6);
  EXPECT_EQ(plan->stage(2).frames, 11);
  EXPECT_EQ(plan->stage(1).frames, 21);
  EXPECT_EQ(plan->stage(3).pooled_frames(), 5);
  o.num_stages = 4;
  o.steps_per_stage = {4, 4, 4, 4};
  EXPECT_EQ(StagePlan::Create(Flow(3.0), o).status().message(),
            "num_frames: 21 must be 1 + N with N a positive multiple of 2^(stages-1) = 8 for 4 "
            "stages (causal first frame)");
}

}  // namespace
}  // namespace tpdiff::spec
