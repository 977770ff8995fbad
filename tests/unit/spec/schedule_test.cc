#include "tpdiff/spec/schedule.h"

#include <cmath>

#include <gtest/gtest.h>

#include "tpdiff/spec/stage_plan.h"

namespace tpdiff::spec {
namespace {

StagePlan MakePlan(Parameterization p, int stages, int frames = 16) {
  StagePlanOptions o;
  o.num_frames = frames;
  o.num_stages = stages;
  o.steps_per_stage.assign(stages, 10);
  return *StagePlan::Create(NoiseSchedule(p), o);
}

TEST(ScheduleTest, FlowMatchingCoefficients) {
  NoiseSchedule s(Parameterization::kFlowMatching);
  EXPECT_DOUBLE_EQ(s.a(0.25), 0.75);
  EXPECT_DOUBLE_EQ(s.b(0.25), 0.25);
  EXPECT_TRUE(std::isinf(s.lambda(1.0)));
}

TEST(ScheduleTest, VpIsVariancePreservingAndMonotone) {
  NoiseSchedule s(Parameterization::kVpEps);
  double prev = -1;
  for (int i = 0; i <= 100; ++i) {
    const double t = i / 100.0;
    EXPECT_NEAR(s.a(t) * s.a(t) + s.b(t) * s.b(t), 1.0, 1e-12);
    EXPECT_GT(s.lambda(t), prev);
    prev = s.lambda(t);
  }
  EXPECT_NEAR(s.a(0), 1.0, 1e-12);
  EXPECT_GT(s.a(1), 0.0);
  EXPECT_LT(s.a(1), 0.01);
}

TEST(ScheduleTest, ThreeStageFlowMatchingWindowsMatchTheMethodNote) {
  const StagePlan plan = MakePlan(Parameterization::kFlowMatching, 3);
  ASSERT_EQ(plan.num_stages(), 3);
  EXPECT_NEAR(plan.stage(3).start, 1.0, 1e-4);
  EXPECT_NEAR(plan.stage(3).end, 2.0 / 3, 1e-12);
  EXPECT_NEAR(plan.stage(2).start, 0.7388, 1e-4);
  EXPECT_NEAR(plan.stage(2).end, 1.0 / 3, 1e-12);
  EXPECT_NEAR(plan.stage(1).start, 0.4142, 1e-4);
  EXPECT_NEAR(plan.stage(1).end, 0.0, 1e-12);
}

TEST(ScheduleTest, WindowsSatisfyTheRatioEquationForBothParameterizations) {
  for (Parameterization p : {Parameterization::kFlowMatching, Parameterization::kVpEps}) {
    for (int K = 2; K <= 5; ++K) {
      const StagePlan plan = MakePlan(p, K);
      const NoiseSchedule& s = plan.schedule();
      for (int k = K - 1; k >= 1; --k) {
        const double e = plan.stage(k + 1).end, st = plan.stage(k).start;
        EXPECT_GT(st, e);
        // b(e)/a(e) = b(s) / (sqrt(2) a(s))
        EXPECT_NEAR(s.b(e) / s.a(e), s.b(st) / (std::sqrt(2.0) * s.a(st)), 1e-9 * s.lambda(st))
            << ParameterizationName(p) << " K=" << K << " k=" << k;
      }
    }
  }
}

TEST(ScheduleTest, ParsesNames) {
  EXPECT_EQ(*ParseParameterization("vp_eps"), Parameterization::kVpEps);
  EXPECT_EQ(*ParseParameterization("flow_matching"), Parameterization::kFlowMatching);
  auto bad = ParseParameterization("ddpm");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("parameterization"), std::string::npos);
}

}  // namespace
}  // namespace tpdiff::spec
