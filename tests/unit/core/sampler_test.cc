#include "tpdiff/core/sampler.h"

#include <ATen/ATen.h>

#include <cmath>
#include <vector>

#include <torch/cuda.h>

#include <gtest/gtest.h>

#include "oracle.h"
#include "tpdiff/core/stage_math.h"
#include "tpdiff/core/temporal_ops.h"

namespace tpdiff::core {
namespace {

using testing::OracleDenoiser;

StagePlan MakePlan(Parameterization p, int stages, int frames, int steps) {
  StagePlanOptions o;
  o.num_frames = frames;
  o.num_stages = stages;
  o.steps_per_stage.assign(stages, steps);
  return *StagePlan::Create(NoiseSchedule(p), o);
}

class RecordingObserver : public SamplerObserver {
 public:
  void OnStep(const StepEvent& e) override { steps.push_back(e); }
  void OnStageEnd(const StageEndEvent& e) override { ends.push_back(e); }
  std::vector<StepEvent> steps;
  std::vector<StageEndEvent> ends;
};

struct OracleCase {
  Parameterization p;
  int stages;
};

class OracleSamplingTest : public ::testing::TestWithParam<OracleCase> {};

// With exact predictions the solver is exact: every stage ends on D_k(x0) (read through the
// stage-end preview) and sampling ends on x0.
TEST_P(OracleSamplingTest, ReachesTheCleanVideoAtEveryStageEnd) {
  const auto [p, K] = GetParam();
  const StagePlan plan = MakePlan(p, K, 16, 4);
  torch::manual_seed(3);
  const torch::Tensor x0 = torch::rand({1, 3, 16, 6, 6}) * 1.6 - 0.8;
  OracleDenoiser oracle(plan, x0);
  RecordingObserver observer;
  SampleRequest request;
  request.channels = 3;
  request.height = 6;
  request.width = 6;
  request.seed = 11;
  auto out = PyramidSampler::Sample(oracle, plan, request, &observer);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_LT((*out - x0).abs().max().item<double>(), 1e-4);
  ASSERT_EQ(static_cast<int>(observer.ends.size()), K);
  for (const StageEndEvent& end : observer.ends) {
    const torch::Tensor d = TemporalDownTimes(x0, end.stage - 1);
    EXPECT_LT((end.preview - d).abs().max().item<double>(), 1e-4) << "stage " << end.stage;
  }
  EXPECT_EQ(oracle.calls, plan.total_steps());
}

INSTANTIATE_TEST_SUITE_P(
    AllStageCounts, OracleSamplingTest,
    ::testing::Values(OracleCase{Parameterization::kFlowMatching, 1},
                      OracleCase{Parameterization::kFlowMatching, 2},
                      OracleCase{Parameterization::kFlowMatching, 3},
                      OracleCase{Parameterization::kFlowMatching, 4},
                      OracleCase{Parameterization::kVpEps, 1}, OracleCase{Parameterization::kVpEps, 2},
                      OracleCase{Parameterization::kVpEps, 3}, OracleCase{Parameterization::kVpEps, 4}),
    [](const auto& info) {
      return std::string(ParameterizationName(info.param.p)) + "_K" +
             std::to_string(info.param.stages);
    });

class OracleSolverTest : public ::testing::TestWithParam<FlowSolver> {};

// Every flow-matching solver is exact on exact predictions: the stage flows are straight.
TEST_P(OracleSolverTest, EndsOnTheCleanVideo) {
  const StagePlan plan = MakePlan(Parameterization::kFlowMatching, 3, 8, 3);
  const torch::Tensor x0 = torch::rand({1, 1, 8, 4, 4}) - 0.5;
  OracleDenoiser oracle(plan, x0);
  SampleRequest request;
  request.channels = 1;
  request.height = request.width = 4;
  request.solver = GetParam();
  auto out = PyramidSampler::Sample(oracle, plan, request);
  ASSERT_TRUE(out.ok());
  EXPECT_LT((*out - x0).abs().max().item<double>(), 1e-4);
  // Heun evaluates twice per step except the final one, which ends on clean data.
  EXPECT_EQ(oracle.calls, GetParam() == FlowSolver::kHeun ? 2 * plan.total_steps() - 1
                                                          : plan.total_steps());
}

INSTANTIATE_TEST_SUITE_P(AllFlowSolvers, OracleSolverTest,
                         ::testing::Values(FlowSolver::kEuler, FlowSolver::kAdamsBashforth2,
                                           FlowSolver::kHeun),
                         [](const auto& info) { return std::string(FlowSolverName(info.param)); });

TEST(SamplerTest, SolverNamesRoundTrip) {
  for (FlowSolver s : {FlowSolver::kEuler, FlowSolver::kAdamsBashforth2, FlowSolver::kHeun}) {
    auto parsed = ParseFlowSolver(FlowSolverName(s));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, s);
  }
  auto bad = ParseFlowSolver("rk4");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("'rk4' is not euler, ab2 or heun"), std::string::npos);
}

// A velocity that depends on time only: v(t) = cos(3t). One full-rate stage runs from t = 1 to
// 0 with dx/dt = v, so sampling must end on x(1) - sin(3) / 3.
class CosineVelocity : public Denoiser {
 public:
  absl::StatusOr<torch::Tensor> Predict(const DenoiserInput& in) override {
    ++calls;
    return torch::ones_like(in.x) * torch::cos(3 * in.t).view({-1, 1, 1, 1, 1});
  }
  int calls = 0;
};

double FinalError(FlowSolver solver, int steps, int* calls) {
  const StagePlan plan = MakePlan(Parameterization::kFlowMatching, 1, 4, steps);
  CosineVelocity net;
  SampleRequest request;
  request.channels = 1;
  request.height = request.width = 2;
  request.solver = solver;
  request.initial_noise = torch::zeros({1, 1, 4, 2, 2}, torch::kDouble);
  auto out = PyramidSampler::Sample(net, plan, request);
  EXPECT_TRUE(out.ok()) << out.status();
  *calls = net.calls;
  return out.ok() ? (*out + std::sin(3.0) / 3.0).abs().max().item<double>() : 1e9;
}

// The default solver is second order at one network call per step: halving the step size
// cuts its error about four times, Euler's about twice, and at the same calls it is far
// closer than Euler.
TEST(SamplerTest, AdamsBashforth2IsSecondOrderAtOneCallPerStep) {
  EXPECT_EQ(SampleRequest().solver, FlowSolver::kAdamsBashforth2);
  int calls = 0;
  const double euler10 = FinalError(FlowSolver::kEuler, 10, &calls);
  const double euler20 = FinalError(FlowSolver::kEuler, 20, &calls);
  const double ab10 = FinalError(FlowSolver::kAdamsBashforth2, 10, &calls);
  EXPECT_EQ(calls, 10);
  const double ab20 = FinalError(FlowSolver::kAdamsBashforth2, 20, &calls);
  EXPECT_EQ(calls, 20);
  EXPECT_NEAR(euler10 / euler20, 2.0, 0.3);
  EXPECT_GT(ab10 / ab20, 3.5);
  EXPECT_LT(ab10, euler10 / 5);
}

// The previous stage's predictions have another frame count and lie on another path: every
// stage's first step is Euler, so a jump neither mixes shapes nor carries a stale velocity.
TEST(SamplerTest, AdamsBashforth2StartsEveryStageAfresh) {
  const StagePlan plan = MakePlan(Parameterization::kFlowMatching, 3, 8, 1);
  CosineVelocity net;
  SampleRequest request;
  request.channels = 1;
  request.height = request.width = 2;
  request.solver = FlowSolver::kAdamsBashforth2;
  auto multistep = PyramidSampler::Sample(net, plan, request);
  request.solver = FlowSolver::kEuler;
  auto euler = PyramidSampler::Sample(net, plan, request);
  ASSERT_TRUE(multistep.ok()) << multistep.status();
  ASSERT_TRUE(euler.ok());
  // One step per stage: nothing to extrapolate from, so both solvers take the same steps.
  EXPECT_TRUE(torch::equal(*multistep, *euler));
}

class PreviewTest : public ::testing::TestWithParam<Parameterization> {};

// Section 6: from x_t and the exact prediction anywhere in a stage, the preview is D_k(x0).
TEST_P(PreviewTest, RecoversTheStageVideoAnywhereInTheStage) {
  const StagePlan plan = MakePlan(GetParam(), 3, 16, 10);
  const torch::Tensor x0 = torch::rand({2, 3, 16, 5, 5}, torch::kDouble) * 2 - 1;
  for (const Stage& stage : plan.stages()) {
    const StageGeometry g(plan.schedule(), stage, stage.k == plan.num_stages());
    const torch::Tensor d = TemporalDownTimes(x0, stage.k - 1);
    const torch::Tensor eps = torch::randn_like(d);
    for (double u : {0.0, 0.13, 0.5, 0.9, 1.0}) {
      const double t = stage.end + u * (stage.start - stage.end);
      const torch::Tensor x = g.Compose(g.State(t), d, eps);
      const torch::Tensor pred = g.Compose(g.Target(), d, eps);
      EXPECT_LT((g.Preview(x, t, pred) - d).abs().max().item<double>(), 1e-9)
          << "stage " << stage.k << " u " << u;
      if (g.State(t).sigma > 0) {  // at the clean end the noise is not recoverable
        EXPECT_LT((g.OraclePrediction(x, t, d) - pred).abs().max().item<double>(), 1e-7);
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Both, PreviewTest,
                         ::testing::Values(Parameterization::kFlowMatching,
                                           Parameterization::kVpEps),
                         [](const auto& info) { return std::string(ParameterizationName(info.param)); });

class CountingDenoiser : public Denoiser {
 public:
  absl::StatusOr<torch::Tensor> Predict(const DenoiserInput& in) override {
    ++calls;
    if (calls == cancel_at && token != nullptr) token->Cancel();
    last_tokens = in.tokens;
    return torch::zeros_like(in.x);
  }
  int calls = 0;
  int cancel_at = -1;
  CancellationToken* token = nullptr;
  torch::Tensor last_tokens;
};

TEST(SamplerTest, ObserverSeesStagesInOrderWithDoublingFrameRate) {
  const StagePlan plan = MakePlan(Parameterization::kFlowMatching, 3, 16, 2);
  CountingDenoiser net;
  RecordingObserver observer;
  SampleRequest request;
  request.height = request.width = 4;
  ASSERT_TRUE(PyramidSampler::Sample(net, plan, request, &observer).ok());
  ASSERT_EQ(observer.ends.size(), 3u);
  const int frames[] = {4, 8, 16}, strides[] = {4, 2, 1}, ks[] = {3, 2, 1};
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(observer.ends[i].stage, ks[i]);
    EXPECT_EQ(observer.ends[i].stage_ordinal, i + 1);
    EXPECT_EQ(observer.ends[i].frames, frames[i]);
    EXPECT_EQ(observer.ends[i].frame_stride, strides[i]);
    EXPECT_EQ(observer.ends[i].preview.size(2), frames[i]);
  }
  ASSERT_EQ(observer.steps.size(), 6u);
  EXPECT_EQ(observer.steps[0].stage, 3);
  EXPECT_EQ(observer.steps[5].stage, 1);
  EXPECT_EQ(observer.steps[5].step, 2);
  EXPECT_NEAR(observer.steps[5].t, 0.0, 1e-12);
}

TEST(SamplerTest, CancellationStopsWithinOneStep) {
  const StagePlan plan = MakePlan(Parameterization::kFlowMatching, 3, 16, 10);
  CancellationToken token;
  CountingDenoiser net;
  net.cancel_at = 5;
  net.token = &token;
  SampleRequest request;
  request.height = request.width = 4;
  auto out = PyramidSampler::Sample(net, plan, request, nullptr, &token);
  EXPECT_EQ(out.status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(net.calls, 5);
}

TEST(SamplerTest, DeterministicForASeed) {
  const StagePlan plan = MakePlan(Parameterization::kFlowMatching, 3, 8, 2);
  CountingDenoiser net;
  SampleRequest request;
  request.height = request.width = 4;
  request.seed = 42;
  auto a = PyramidSampler::Sample(net, plan, request);
  auto b = PyramidSampler::Sample(net, plan, request);
  request.seed = 43;
  auto c = PyramidSampler::Sample(net, plan, request);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_TRUE(torch::equal(*a, *b));
  EXPECT_FALSE(torch::equal(*a, *c));
}

// Returns +1 for conditional rows and -1 for unconditional (all-zero token) rows.
class ConditionEcho : public Denoiser {
 public:
  absl::StatusOr<torch::Tensor> Predict(const DenoiserInput& in) override {
    rows = in.x.size(0);
    const torch::Tensor cond = (in.tokens.abs().sum(1) > 0).to(torch::kFloat) * 2 - 1;
    return torch::ones_like(in.x) * cond.view({-1, 1, 1, 1, 1});
  }
  int64_t rows = 0;
};

TEST(SamplerTest, ClassifierFreeGuidanceCombinesBothPredictionsInOneCall) {
  const StagePlan plan = MakePlan(Parameterization::kFlowMatching, 1, 4, 1);
  ConditionEcho net;
  SampleRequest request;
  request.height = request.width = 2;
  request.tokens = torch::tensor({{5, 6, 0}}, torch::kLong);
  request.guidance_scale = 3.0;
  request.initial_noise = torch::zeros({1, 3, 4, 2, 2});
  auto out = PyramidSampler::Sample(net, plan, request);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(net.rows, 2);
  // One Euler step over the whole window: x = 0 - 1 * (u + w (c - u)) = -(-1 + 3 * 2) = -5.
  EXPECT_TRUE(torch::allclose(*out, torch::full_like(*out, -5.0)));
}

// Echoes the first token id of every row, so the test sees which caption each row carried.
class FirstTokenEcho : public Denoiser {
 public:
  absl::StatusOr<torch::Tensor> Predict(const DenoiserInput& in) override {
    tokens = in.tokens.clone();
    const torch::Tensor first = in.tokens.select(1, 0).to(torch::kFloat);
    return torch::ones_like(in.x) * first.view({-1, 1, 1, 1, 1});
  }
  torch::Tensor tokens;
};

TEST(SamplerTest, NegativePromptReplacesTheUnconditionalRow) {
  const StagePlan plan = MakePlan(Parameterization::kFlowMatching, 1, 4, 1);
  FirstTokenEcho net;
  SampleRequest request;
  request.height = request.width = 2;
  request.tokens = torch::tensor({{5, 6, 0}}, torch::kLong);
  request.negative_tokens = torch::tensor({{2, 9, 7, 1}}, torch::kLong);  // longer: padded
  request.guidance_scale = 3.0;
  request.initial_noise = torch::zeros({1, 3, 4, 2, 2});
  auto out = PyramidSampler::Sample(net, plan, request);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE(torch::equal(net.tokens, torch::tensor({{5, 6, 0, 0}, {2, 9, 7, 1}}, torch::kLong)));
  // x = 0 - (n + w (c - n)) with c = 5, n = 2: -(2 + 3 * 3) = -11.
  EXPECT_TRUE(torch::allclose(*out, torch::full_like(*out, -11.0)));
}

TEST(SamplerTest, NegativePromptIsUnusedWithoutGuidance) {
  const StagePlan plan = MakePlan(Parameterization::kFlowMatching, 1, 4, 1);
  FirstTokenEcho net;
  SampleRequest request;
  request.height = request.width = 2;
  request.tokens = torch::tensor({{5, 6}}, torch::kLong);
  request.negative_tokens = torch::tensor({{2, 9}}, torch::kLong);
  request.guidance_scale = 1.0;
  request.initial_noise = torch::zeros({1, 3, 4, 2, 2});
  auto out = PyramidSampler::Sample(net, plan, request);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(net.tokens.size(0), 1);
  EXPECT_TRUE(torch::allclose(*out, torch::full_like(*out, -5.0)));
}

TEST(SamplerTest, DenoiserErrorsPropagate) {
  class Failing : public Denoiser {
    absl::StatusOr<torch::Tensor> Predict(const DenoiserInput&) override {
      return absl::ResourceExhaustedError("out of memory");
    }
  } net;
  const StagePlan plan = MakePlan(Parameterization::kFlowMatching, 2, 4, 2);
  SampleRequest request;
  EXPECT_EQ(PyramidSampler::Sample(net, plan, request).status().code(),
            absl::StatusCode::kResourceExhausted);
}

TEST(SamplerTest, WrongOutputShapeIsAnError) {
  class Wrong : public Denoiser {
    absl::StatusOr<torch::Tensor> Predict(const DenoiserInput& in) override {
      return torch::zeros({1});
    }
  } net;
  const StagePlan plan = MakePlan(Parameterization::kFlowMatching, 1, 4, 1);
  SampleRequest request;
  auto out = PyramidSampler::Sample(net, plan, request);
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInternal);
  EXPECT_NE(out.status().message().find("shape"), std::string::npos);
}

}  // namespace
}  // namespace tpdiff::core

namespace tpdiff::core {
namespace {

// The CUDA path (run on GPU machines; skipped where LibTorch has no CUDA device): the same
// seed gives the same video on both devices, and oracle sampling is exact there too.
TEST(CudaSamplerTest, SameSeedSameVideoOnCpuAndCuda) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  const StagePlan plan = MakePlan(Parameterization::kFlowMatching, 3, 16, 4);
  const torch::Tensor x0 = torch::rand({1, 3, 16, 8, 8}) * 1.6 - 0.8;
  SampleRequest request;
  request.height = request.width = 8;
  request.seed = 9;
  testing::OracleDenoiser cpu_oracle(plan, x0);
  auto on_cpu = PyramidSampler::Sample(cpu_oracle, plan, request);
  testing::OracleDenoiser cuda_oracle(plan, x0.to(torch::kCUDA));
  request.device = torch::kCUDA;
  auto on_cuda = PyramidSampler::Sample(cuda_oracle, plan, request);
  ASSERT_TRUE(on_cpu.ok() && on_cuda.ok()) << on_cuda.status();
  EXPECT_TRUE(on_cuda->is_cuda());
  EXPECT_LT((on_cuda->cpu() - *on_cpu).abs().max().item<double>(), 1e-4);
  EXPECT_LT((on_cuda->cpu() - x0).abs().max().item<double>(), 1e-4);
}

}  // namespace
}  // namespace tpdiff::core
