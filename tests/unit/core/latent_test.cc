// The method on latents: causal first frame, shifted flow matching and discrete VP schedules
// with model-native predictions (docs/method.md, "Latent space and the causal first latent
// frame").

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "oracle.h"
#include "tpdiff/core/sampler.h"
#include "tpdiff/core/stage_math.h"
#include "tpdiff/core/temporal_ops.h"

namespace tpdiff::core {
namespace {

using testing::OracleDenoiser;

NoiseSchedule Latent(Parameterization type, Prediction prediction, double shift = 1.0) {
  spec::ScheduleConfig c;
  c.type = type;
  c.prediction = prediction;
  c.shift = shift;
  return *NoiseSchedule::FromConfig(c);
}

NoiseSchedule FlowShift3() { return Latent(Parameterization::kFlowMatching, Prediction::kFlowVelocity, 3.0); }

StagePlan CausalPlan(const NoiseSchedule& schedule, int latent_frames, int stages, int steps) {
  StagePlanOptions o;
  o.num_frames = latent_frames;
  o.causal_first_frame = true;
  o.num_stages = stages;
  o.steps_per_stage.assign(stages, steps);
  absl::StatusOr<StagePlan> plan = StagePlan::Create(schedule, o);
  EXPECT_TRUE(plan.ok()) << plan.status();
  return *plan;
}

// A request for [1, channels, T, size, size] latents with a random text encoding of
// `tokens` x `dim`, all tokens real.
SampleRequest LatentRequest(int channels, int size, uint64_t seed, int tokens = 4, int dim = 6) {
  SampleRequest r;
  r.channels = channels;
  r.height = size;
  r.width = size;
  r.seed = seed;
  r.context = torch::randn({1, tokens, dim});
  r.context_mask = torch::ones({1, tokens}, torch::kLong);
  return r;
}

TEST(CausalTemporalOpsTest, FrameZeroIsKeptAndTheRestPooledInPairs) {
  const torch::Tensor x = torch::arange(9, torch::kFloat).reshape({1, 1, 9, 1, 1});
  const torch::Tensor down = TemporalDown(x, true);
  EXPECT_TRUE(torch::equal(down.flatten(), torch::tensor({0.0f, 1.5f, 3.5f, 5.5f, 7.5f})));
  EXPECT_TRUE(torch::equal(TemporalUp(down, true).flatten(),
                           torch::tensor({0.0f, 1.5f, 1.5f, 3.5f, 3.5f, 5.5f, 5.5f, 7.5f, 7.5f})));
  EXPECT_EQ(TemporalDownTimes(torch::zeros({1, 1, 21, 1, 1}), 2, true).size(2), 6);

  const torch::Tensor r = torch::randn({2, 3, 21, 4, 4}, torch::kDouble);
  const torch::Tensor p = TemporalProject(r, true);
  EXPECT_TRUE(torch::allclose(TemporalProject(p, true), p, 1e-12, 1e-12));  // idempotent
  EXPECT_NEAR((p * (r - p)).sum().item<double>(), 0.0, 1e-9);             // orthogonal
  EXPECT_TRUE(torch::equal(p.select(2, 0), r.select(2, 0)));               // identity on frame 0
  // The non-causal projection would pair frame 0 with frame 1.
  EXPECT_THROW(TemporalDown(r), c10::Error);  // 21 frames: odd
}

// The jump at a boundary with a causal first frame keeps the marginal of every frame:
// frame j of x_s is a(s) (Up D_from(x0))_j plus noise of variance b(s)^2, with the duplicated
// frames' noise uncorrelated and frame 0's noise independent of the pairs'.
class CausalJumpTest : public ::testing::TestWithParam<int> {};

TEST_P(CausalJumpTest, KeepsThePerFrameMarginal) {
  const NoiseSchedule sched = GetParam() == 0 ? FlowShift3()
                            : GetParam() == 1 ? Latent(Parameterization::kVpEps, Prediction::kEpsilon)
                                              : NoiseSchedule(Parameterization::kFlowMatching);
  const StagePlan plan = CausalPlan(sched, 9, 3, 1);  // stages of 3, 5, 9 latent frames
  const Stage& from = plan.stage(2);
  const Stage& to = plan.stage(1);
  ASSERT_EQ(from.frames, 5);
  ASSERT_EQ(to.frames, 9);
  const JumpCoefficients jump = ComputeJump(sched, from, to);
  const double as = sched.a(to.start), bs = sched.b(to.start);
  const double ae = sched.a(from.end), be = sched.b(from.end);
  EXPECT_NEAR(jump.c * jump.c * be * be + jump.alpha * jump.alpha, bs * bs, 1e-12);

  // Clean latents drawn independently per frame (sd s0 = 2): paired frames differ, so
  // pooling halves the variance of frames 1.., and frame 0 keeps all of it.
  constexpr int64_t kDraws = 20000;
  constexpr double kS0 = 2.0;
  at::Generator gen = at::detail::createCPUGenerator(5);
  const torch::Tensor x0 = at::randn({kDraws, 1, 9, 2, 2}, gen, torch::kDouble) * kS0;
  const torch::Tensor d_from = TemporalDownTimes(x0, 1, true);  // [n, 1, 5, 2, 2]
  const torch::Tensor x_end = d_from * ae + at::randn(d_from.sizes(), gen, torch::kDouble) * be;
  const torch::Tensor x_start =
      ApplyJump(x_end, jump, at::randn({kDraws, 1, 4, 2, 2}, gen, torch::kDouble),
                at::randn({kDraws, 1, 1, 2, 2}, gen, torch::kDouble));
  ASSERT_EQ(x_start.size(2), 9);

  const double n = kDraws;
  const torch::Tensor var = x_start.var(0).mean({0, 2, 3});  // per frame, averaged over pixels
  // 5-sigma bound for the mean of 4 sample variances.
  auto tolerance = [&](double v) { return 5 * v * std::sqrt(2 / n) / 2; };
  // a^2 Var(Up(Down(x0))) + b^2: all of s0^2 on frame 0, half of it on the pooled frames.
  const double frame0 = as * as * kS0 * kS0 + bs * bs;
  const double pooled = as * as * kS0 * kS0 / 2 + bs * bs;
  const double naive = as * as * kS0 * kS0 + bs * bs;  // a^2 Var(x0) + b^2
  EXPECT_NEAR(var[0].item<double>(), frame0, tolerance(frame0));
  for (int j = 1; j < 9; ++j) {
    EXPECT_NEAR(var[j].item<double>(), pooled, tolerance(pooled)) << "frame " << j;
    // The test tells the right marginal from the naive one.
    EXPECT_GT(std::abs(var[j].item<double>() - naive), 3 * tolerance(naive)) << "frame " << j;
  }

  // Noise after the jump: white, variance b(s)^2, no correlation between any two frames.
  const torch::Tensor noise = x_start - TemporalUp(d_from, true) * as;  // [n, 1, 9, 2, 2]
  auto corr = [&](int i, int j) {
    const torch::Tensor a = noise.select(2, i).reshape({kDraws, -1});
    const torch::Tensor b = noise.select(2, j).reshape({kDraws, -1});
    const torch::Tensor cov = ((a - a.mean(0)) * (b - b.mean(0))).mean(0);
    return (cov / (a.std(0) * b.std(0))).abs().max().item<double>();
  };
  EXPECT_LT((noise.var(0) - bs * bs).abs().max().item<double>(), 5 * bs * bs * std::sqrt(2 / n));
  for (int i = 0; i < 9; ++i) {
    for (int j = i + 1; j < 9; ++j) EXPECT_LT(corr(i, j), 5 / std::sqrt(n)) << i << "," << j;
  }
  // Without the antithetic pair noise the duplicated frames are perfectly correlated, and
  // reusing a pair's z for frame 0 correlates frame 0 with that pair: both checks can fail.
  const torch::Tensor z = at::randn({kDraws, 1, 4, 2, 2}, gen, torch::kDouble);
  const torch::Tensor reused = ApplyJump(x_end, jump, z, z.narrow(2, 0, 1));
  const torch::Tensor reused_noise = reused - TemporalUp(d_from, true) * as;
  const torch::Tensor f0 = reused_noise.select(2, 0).reshape({kDraws, -1});
  const torch::Tensor f1 = reused_noise.select(2, 1).reshape({kDraws, -1});
  const double reused_corr =
      (((f0 - f0.mean(0)) * (f1 - f1.mean(0))).mean(0) / (f0.std(0) * f1.std(0)))
          .abs()
          .min()
          .item<double>();
  EXPECT_GT(reused_corr, 20 / std::sqrt(n));
}

INSTANTIATE_TEST_SUITE_P(Schedules, CausalJumpTest, ::testing::Values(0, 1, 2),
                         [](const auto& info) {
                           return std::string(info.param == 0   ? "flow_shift3"
                                              : info.param == 1 ? "vp_discrete"
                                                                : "flow_v1");
                         });

struct LatentCase {
  const char* name;
  std::function<NoiseSchedule()> schedule;
  int stages;
};

class LatentOracleTest : public ::testing::TestWithParam<LatentCase> {};

// 81 pixel frames = 21 latent frames with a causal first frame. With exact model-native
// predictions every stage-end preview is D_k(x0) with the causal layout, not clamped, and
// sampling ends on the schedule's t = 0 point: x0 for flow matching; a(0) x0 + b(0) eps for
// discrete VP, whose index 0 keeps alphabar_0 = 1 - beta_0 (b(0) = 0.029).
TEST_P(LatentOracleTest, PreviewsRecoverTheCausalStageVideos) {
  const LatentCase& c = GetParam();
  const StagePlan plan = CausalPlan(c.schedule(), 21, c.stages, 3);
  torch::manual_seed(4);
  const torch::Tensor x0 = torch::randn({1, 4, 21, 3, 3}) * 1.5;  // latents exceed [-1, 1]
  OracleDenoiser oracle(plan, x0);
  struct Ends : SamplerObserver {
    void OnStageEnd(const StageEndEvent& e) override { events.push_back(e); }
    std::vector<StageEndEvent> events;
  } ends;
  const SampleRequest request = LatentRequest(4, 3, 9, 5, 8);
  auto out = PyramidSampler::Sample(oracle, plan, request, &ends);
  ASSERT_TRUE(out.ok()) << out.status();
  const NoiseSchedule& s = plan.schedule();
  if (s.b(0.0) == 0.0) {
    EXPECT_LT((*out - x0).abs().max().item<double>(), 2e-4);
  } else {
    const torch::Tensor residual = (*out - x0 * s.a(0.0)) / s.b(0.0);
    EXPECT_NEAR(residual.std().item<double>(), 1.0, 0.15);  // the path's own noise
    EXPECT_LT(residual.mean().abs().item<double>(), 0.2);
  }
  ASSERT_EQ(static_cast<int>(ends.events.size()), c.stages);
  const std::vector<int> frames = {21, 11, 6};
  for (const StageEndEvent& e : ends.events) {
    EXPECT_EQ(e.frames, frames[e.stage - 1]);
    if (e.stage == 1) continue;  // the last stage's preview is its end point, checked above
    const torch::Tensor d = TemporalDownTimes(x0, e.stage - 1, true);
    EXPECT_EQ(e.preview.size(2), frames[e.stage - 1]);
    EXPECT_LT((e.preview - d).abs().max().item<double>(), 2e-4) << "stage " << e.stage;
  }
  EXPECT_GT(ends.events.front().preview.abs().max().item<double>(), 1.5);  // not clamped
  EXPECT_EQ(oracle.calls, plan.total_steps());
  // The denoiser got the text encoding and its own timestep units.
  EXPECT_TRUE(torch::equal(oracle.last_input.context, request.context));
  EXPECT_TRUE(torch::equal(oracle.last_input.mask, request.context_mask));
  const double t = oracle.last_input.t[0].item<double>();
  EXPECT_NEAR(oracle.last_input.timestep[0].item<double>(), plan.schedule().ModelTimestep(t),
              1e-3);
}

INSTANTIATE_TEST_SUITE_P(
    Schedules, LatentOracleTest,
    ::testing::Values(
        LatentCase{"flow_shift3_K1", FlowShift3, 1}, LatentCase{"flow_shift3_K2", FlowShift3, 2},
        LatentCase{"flow_shift3_K3", FlowShift3, 3},
        LatentCase{"vp_eps_K3", [] { return Latent(Parameterization::kVpEps, Prediction::kEpsilon); }, 3},
        LatentCase{"vp_v_K1", [] { return Latent(Parameterization::kVpEps, Prediction::kV); }, 1},
        LatentCase{"vp_v_K3", [] { return Latent(Parameterization::kVpEps, Prediction::kV); }, 3}),
    [](const auto& info) { return std::string(info.param.name); });

// v -> eps is exact on an oracle: for x_t = a x0 + b eps and v = a eps - b x0,
// a v + b x_t = eps.
TEST(PredictionConversionTest, VToEpsIsExact) {
  const NoiseSchedule s = Latent(Parameterization::kVpEps, Prediction::kV);
  const StagePlan plan = CausalPlan(s, 5, 1, 1);
  const StageGeometry g(s, plan.stage(1), true);
  const torch::Tensor x0 = torch::randn({1, 2, 5, 2, 2}, torch::kDouble);
  const torch::Tensor eps = torch::randn({1, 2, 5, 2, 2}, torch::kDouble);
  for (double t : {0.1, 0.5, 0.93}) {
    const torch::Tensor x = x0 * s.a(t) + eps * s.b(t);
    const torch::Tensor v = eps * s.a(t) - x0 * s.b(t);
    EXPECT_LT((g.TargetFromModel(x, t, v) - eps).abs().max().item<double>(), 1e-12);
    EXPECT_LT((g.ModelFromTarget(x, t, eps) - v).abs().max().item<double>(), 1e-12);
  }
  // Flow velocity dx/dsigma times the stage's sigma span is the stage velocity x_s - x_e.
  const NoiseSchedule f = FlowShift3();
  const StagePlan fp = CausalPlan(f, 9, 3, 1);
  const StageGeometry fg(f, fp.stage(2), false);
  const torch::Tensor v = torch::randn({1, 2, 5, 2, 2}, torch::kDouble);
  const double span = f.sigma(fp.stage(2).start) - f.sigma(fp.stage(2).end);
  EXPECT_TRUE(torch::allclose(fg.TargetFromModel(v, 0.5, v), v * span, 1e-15, 1e-15));
}

// A deterministic stand-in network (not an oracle): the sampler must drive it exactly as the
// model's own vanilla sampler does when the plan has one stage.
class TestNetwork : public Denoiser {
 public:
  absl::StatusOr<torch::Tensor> Predict(const DenoiserInput& in) override {
    inputs.push_back(in);
    return Respond(in.x, in.timestep, in.context);
  }
  static torch::Tensor Respond(const torch::Tensor& x, const torch::Tensor& timestep,
                               const torch::Tensor& context) {
    const torch::Tensor ts = timestep.reshape({-1, 1, 1, 1, 1}) / 1000.0;
    const torch::Tensor c = context.mean({1, 2}).reshape({-1, 1, 1, 1, 1});
    return torch::tanh(x) * 0.7 + x * ts * 0.3 + c - 0.1;
  }
  std::vector<DenoiserInput> inputs;
};

TEST(VanillaTest, OneStageIsShiftedEulerExactly) {
  const NoiseSchedule s = FlowShift3();
  const int steps = 7;
  const StagePlan plan = *StagePlan::Vanilla(s, 9, steps, /*causal_first_frame=*/true);
  SampleRequest request = LatentRequest(2, 3, 21);
  request.guidance_scale = 4.0;
  request.negative_context = torch::randn({1, 4, 6});
  request.negative_context_mask = torch::zeros({1, 4}, torch::kLong);
  TestNetwork net;
  auto out = PyramidSampler::Sample(net, plan, request);
  ASSERT_TRUE(out.ok()) << out.status();

  // Wan's sampler: sigmas shifted from a uniform grid in t, Euler in sigma, CFG on [cond, uncond].
  at::Generator gen = at::detail::createCPUGenerator(21);
  torch::Tensor x = at::randn({1, 2, 9, 3, 3}, gen, torch::kFloat);
  const torch::Tensor ctx = torch::cat({request.context, request.negative_context}, 0);
  for (int i = 0; i < steps; ++i) {
    const double t = 1.0 - static_cast<double>(i) / steps;
    const double t_next = 1.0 - static_cast<double>(i + 1) / steps;
    const double sigma = 3 * t / (1 + 2 * t), sigma_next = 3 * t_next / (1 + 2 * t_next);
    const torch::Tensor both = TestNetwork::Respond(torch::cat({x, x}, 0),
                                                    torch::full({2}, sigma * 1000.0), ctx);
    const auto halves = both.chunk(2, 0);
    const torch::Tensor v = halves[1] + (halves[0] - halves[1]) * 4.0;
    x = x + v * (sigma_next - sigma);
  }
  EXPECT_LT((*out - x).abs().max().item<double>(), 1e-6);
  ASSERT_EQ(static_cast<int>(net.inputs.size()), steps);  // one call per step, batch 2
  EXPECT_EQ(net.inputs[0].x.size(0), 2);
  EXPECT_TRUE(torch::equal(net.inputs[0].context, ctx));
  EXPECT_NEAR(net.inputs[0].timestep[0].item<double>(), 1000.0, 1e-3);
  EXPECT_NEAR(net.inputs[1].timestep[0].item<double>(), 1000.0 * 3 * (6.0 / 7) / (1 + 2 * 6.0 / 7),
              1e-3);
}

class VanillaDdimTest : public ::testing::TestWithParam<Prediction> {};

TEST_P(VanillaDdimTest, OneStageIsDdim) {
  const NoiseSchedule s = Latent(Parameterization::kVpEps, GetParam());
  const int steps = 6;
  const StagePlan plan = *StagePlan::Vanilla(s, 5, steps, true);
  const SampleRequest request = LatentRequest(2, 2, 8, 3, 4);
  TestNetwork net;
  auto out = PyramidSampler::Sample(net, plan, request);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(net.inputs[0].x.size(0), 1);  // w = 1: one row

  // DDIM (eta 0) on the discrete schedule, timesteps tau (N - 1) uniform in tau.
  at::Generator gen = at::detail::createCPUGenerator(8);
  torch::Tensor x = at::randn({1, 2, 5, 2, 2}, gen, torch::kFloat).to(torch::kDouble);
  for (int i = 0; i < steps; ++i) {
    const double tau = 1.0 - static_cast<double>(i) / steps;
    const double tau_next = 1.0 - static_cast<double>(i + 1) / steps;
    const torch::Tensor pred = TestNetwork::Respond(
        x.to(torch::kFloat), torch::full({1}, tau * 999.0), request.context).to(torch::kDouble);
    const double a = s.a(tau), b = s.b(tau), a2 = s.a(tau_next), b2 = s.b(tau_next);
    const torch::Tensor eps = GetParam() == Prediction::kV ? pred * a + x * b : pred;
    const torch::Tensor x0 = (x - eps * b) / a;
    x = x0 * a2 + eps * b2;
  }
  EXPECT_LT((*out - x.to(torch::kFloat)).abs().max().item<double>(), 1e-4 * (1 + x.abs().max().item<double>()));
}

INSTANTIATE_TEST_SUITE_P(Predictions, VanillaDdimTest,
                         ::testing::Values(Prediction::kEpsilon, Prediction::kV),
                         [](const auto& info) { return std::string(spec::PredictionName(info.param)); });

// The contract's draw order: initial noise, then per jump the pair noise over the pooled
// frames of the stage jumped from, then frame 0's. A network predicting zero leaves x still
// inside each stage, so the result is the jumps applied to the draws.
TEST(NoiseOrderTest, DrawsFollowTheContract) {
  struct Zero : Denoiser {
    absl::StatusOr<torch::Tensor> Predict(const DenoiserInput& in) override {
      return torch::zeros_like(in.x);
    }
  } zero;
  const NoiseSchedule s = FlowShift3();
  const StagePlan plan = CausalPlan(s, 9, 2, 2);  // 5 then 9 latent frames
  const SampleRequest request = LatentRequest(2, 2, 77);
  auto out = PyramidSampler::Sample(zero, plan, request);
  ASSERT_TRUE(out.ok()) << out.status();

  at::Generator gen = at::detail::createCPUGenerator(77);
  const torch::Tensor init = at::randn({1, 2, 5, 2, 2}, gen, torch::kFloat);
  const torch::Tensor z = at::randn({1, 2, 4, 2, 2}, gen, torch::kFloat);
  const torch::Tensor z0 = at::randn({1, 2, 1, 2, 2}, gen, torch::kFloat);
  const JumpCoefficients j = ComputeJump(s, plan.stage(2), plan.stage(1));
  std::vector<torch::Tensor> frames = {init.narrow(2, 0, 1) * j.c + z0 * j.alpha};
  for (int i = 0; i < 4; ++i) {
    frames.push_back(init.narrow(2, 1 + i, 1) * j.c + z.narrow(2, i, 1) * j.alpha);
    frames.push_back(init.narrow(2, 1 + i, 1) * j.c - z.narrow(2, i, 1) * j.alpha);
  }
  EXPECT_LT((*out - torch::cat(frames, 2)).abs().max().item<double>(), 1e-6);
}

TEST(LatentRequestTest, GuidanceNeedsTheUnconditionalEncoding) {
  const StagePlan plan = CausalPlan(FlowShift3(), 5, 1, 1);
  TestNetwork net;
  SampleRequest request = LatentRequest(1, 1, 1);
  request.guidance_scale = 2.0;
  absl::StatusOr<torch::Tensor> out = PyramidSampler::Sample(net, plan, request);
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(out.status().message()).find("negative_context: "), std::string::npos);
  request.context = torch::Tensor();
  EXPECT_NE(std::string(PyramidSampler::Sample(net, plan, request).status().message())
                .find("context: "),
            std::string::npos);
}

}  // namespace
}  // namespace tpdiff::core
