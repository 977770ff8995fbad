#include "tpdiff/model/network.h"

#include <gtest/gtest.h>

namespace tpdiff::model {
namespace {

NetworkConfig Tiny() { return *NetworkPreset("tiny"); }

// Gives every parameter a non-trivial value (the fresh network's zero-initialised output
// layers would make every output 0 and hide bugs).
void Randomize(TpdiffNetImpl& net, uint64_t seed) {
  torch::NoGradGuard no_grad;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  for (auto& p : net.parameters()) p.normal_(0.0, 0.2, gen);
}

core::DenoiserInput Input(int64_t batch, int frames, int stage, torch::Tensor tokens = {}) {
  core::DenoiserInput in;
  in.x = torch::randn({batch, 3, frames, 32, 32});
  in.t = torch::full({batch}, 0.5f);
  in.stage = torch::full({batch}, static_cast<int64_t>(stage), torch::kLong);
  in.tokens = tokens.defined() ? tokens : torch::zeros({batch, 32}, torch::kLong);
  return in;
}

// A guided batch's captions: a four-word caption for clip 0, the empty one for clip 1.
torch::Tensor GuidedTokens() {
  torch::Tensor tokens = torch::zeros({2, 6}, torch::kLong);
  tokens[0].slice(0, 0, 4) = torch::tensor({3, 7, 14, 5}, torch::kLong);
  return tokens;
}

TEST(NetworkTest, StageConsistentTemporalPositions) {
  EXPECT_TRUE(torch::equal(TemporalPositions(1, 4), torch::tensor({0, 1, 2, 3}, torch::kLong)));
  EXPECT_TRUE(torch::equal(TemporalPositions(2, 4), torch::tensor({0, 2, 4, 6}, torch::kLong)));
  // Stage 3, frame 1 stands for full-rate frame 4.
  EXPECT_EQ(TemporalPositions(3, 4)[1].item<int64_t>(),
            TemporalPositions(1, 16)[4].item<int64_t>());
  EXPECT_EQ(TemporalPositions(3, 4)[3].item<int64_t>(), 12);
}

TEST(NetworkTest, OutputShapeForEveryStageAndFrameCount) {
  TpdiffNet net(Tiny());
  Randomize(*net, 1);
  NetworkDenoiser denoiser(net);
  for (int stage = 1; stage <= 3; ++stage) {
    for (int frames : {1, 2, 4, 8, 16}) {
      const core::DenoiserInput in = Input(2, frames, stage);
      auto y = denoiser.Predict(in);
      ASSERT_TRUE(y.ok()) << y.status();
      EXPECT_EQ(y->sizes(), in.x.sizes()) << "stage " << stage << " frames " << frames;
      EXPECT_TRUE(torch::isfinite(*y).all().item<bool>());
    }
  }
}

TEST(NetworkTest, FreshNetworkPredictsZero) {
  TpdiffNet net(Tiny());
  NetworkDenoiser denoiser(net);
  auto y = denoiser.Predict(Input(1, 4, 3));
  ASSERT_TRUE(y.ok());
  EXPECT_EQ(y->abs().max().item<float>(), 0.0f);
}

TEST(NetworkTest, OutputDependsOnTimeStageAndCaption) {
  TpdiffNet net(Tiny());
  Randomize(*net, 2);
  NetworkDenoiser d(net);
  torch::manual_seed(0);
  core::DenoiserInput in = Input(1, 4, 1);
  const torch::Tensor base = *d.Predict(in);
  core::DenoiserInput other_t = in;
  other_t.t = torch::full({1}, 0.9f);
  EXPECT_FALSE(torch::allclose(*d.Predict(other_t), base));
  core::DenoiserInput other_stage = in;
  other_stage.stage = torch::full({1}, int64_t{2});
  EXPECT_FALSE(torch::allclose(*d.Predict(other_stage), base));
  core::DenoiserInput captioned = in;
  captioned.tokens = torch::zeros({1, 32}, torch::kLong);
  captioned.tokens[0][0] = 4;
  EXPECT_FALSE(torch::allclose(*d.Predict(captioned), base));
  // Padding is masked: trailing zeros do not change a caption's meaning.
  core::DenoiserInput shorter = captioned;
  shorter.tokens = captioned.tokens.slice(1, 0, 3);
  EXPECT_TRUE(torch::allclose(*d.Predict(shorter), *d.Predict(captioned), 1e-5, 1e-5));
}

TEST(NetworkTest, FramesAreProcessedTogether) {
  // Temporal attention mixes frames: changing frame 0 changes the output of frame 3.
  TpdiffNet net(Tiny());
  Randomize(*net, 3);
  NetworkDenoiser d(net);
  core::DenoiserInput in = Input(1, 4, 2);
  const torch::Tensor a = *d.Predict(in);
  in.x = in.x.clone();
  in.x.select(2, 0).add_(1.0);
  const torch::Tensor b = *d.Predict(in);
  EXPECT_FALSE(torch::allclose(a.select(2, 3), b.select(2, 3)));
}

TEST(NetworkTest, BatchEntriesAreIndependent) {
  TpdiffNet net(Tiny());
  Randomize(*net, 4);
  NetworkDenoiser d(net);
  core::DenoiserInput in = Input(2, 4, 1);
  in.tokens[1][0] = 5;
  const torch::Tensor both = *d.Predict(in);
  core::DenoiserInput first = in;
  first.x = in.x.slice(0, 0, 1);
  first.t = in.t.slice(0, 0, 1);
  first.stage = in.stage.slice(0, 0, 1);
  first.tokens = in.tokens.slice(0, 0, 1);
  EXPECT_TRUE(torch::allclose(*d.Predict(first), both.slice(0, 0, 1), 1e-5, 1e-5));
}

TEST(NetworkTest, DenoiserRejectsBadInputsNamingThem) {
  TpdiffNet net(Tiny());
  NetworkDenoiser d(net);
  core::DenoiserInput in = Input(1, 4, 1);
  in.tokens = torch::zeros({1, 33}, torch::kLong);
  auto r = d.Predict(in);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status().message(), "tokens: 33 exceeds the model's maximum of 32");
  in = Input(1, 4, 1);
  in.tokens[0][0] = 26;
  EXPECT_EQ(d.Predict(in).status().message(), "tokens: ids must be in [0, 26)");
  in = Input(1, 4, 6);
  EXPECT_EQ(d.Predict(in).status().code(), absl::StatusCode::kInvalidArgument);
  in = Input(1, 4, 1);
  in.x = torch::zeros({1, 3, 4, 30, 32});
  EXPECT_EQ(d.Predict(in).status().message().rfind("height: 30", 0), 0u);
  in.x = torch::zeros({1, 1, 4, 32, 32});
  EXPECT_EQ(d.Predict(in).status().message().rfind("x: 1 channels", 0), 0u);
}

TEST(NetworkTest, ConfigJsonRoundTripAndErrors) {
  NetworkConfig c = Tiny();
  c.patch = 4;
  auto back = NetworkConfig::FromJson(c.ToJson());
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->ToJson(), c.ToJson());
  EXPECT_EQ(NetworkConfig::FromJson(R"({"depth": 0})").status().message(),
            "network.depth: 0 outside [1, 64]");
  EXPECT_EQ(NetworkConfig::FromJson(R"({"depth": 1.5})").status().message(),
            "network.depth: must be an integer");
  EXPECT_EQ(NetworkPreset("huge").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(NetworkConfig::FromJson(R"({"patch": 5})").status().message(),
            "network.max_height: 32 not divisible by patch 5");
}

TEST(NetworkTest, PixelRefinementStartsNeutralAndLearns) {
  NetworkConfig c = Tiny();
  c.refine_channels = 8;
  // Manifests written before the field existed mean "no refinement"; new ones carry it.
  NetworkConfig legacy = Tiny();
  EXPECT_EQ(legacy.ToJson().find("refine_channels"), std::string::npos);
  auto back = NetworkConfig::FromJson(c.ToJson());
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->refine_channels, 8);
  EXPECT_EQ(NetworkConfig::FromJson(R"({"refine_channels": 300})").status().message(),
            "network.refine_channels: 300 outside [0, 256]");
  EXPECT_EQ(NetworkPreset("cpu")->refine_channels, 32);

  TpdiffNet net(c);
  NetworkDenoiser d(net);
  auto fresh = d.Predict(Input(2, 4, 1));
  ASSERT_TRUE(fresh.ok()) << fresh.status();
  EXPECT_EQ(fresh->abs().max().item<float>(), 0.0f);

  // Both convolutions get gradient once the rest of the network is non-trivial, and the
  // output then depends on them.
  Randomize(*net, 5);
  const core::DenoiserInput in = Input(2, 4, 2);
  const torch::Tensor y = net->forward(in.x, in.t, in.stage, in.tokens);
  y.pow(2).mean().backward();
  for (const auto& p : net->named_parameters()) {
    if (p.key().rfind("refine_", 0) != 0) continue;
    ASSERT_TRUE(p.value().grad().defined()) << p.key();
    EXPECT_GT(p.value().grad().abs().sum().item<float>(), 0.0f) << p.key();
  }
  {
    torch::NoGradGuard no_grad;
    for (const auto& p : net->named_parameters()) {
      if (p.key().rfind("refine_out", 0) == 0) p.value().zero_();
    }
  }
  EXPECT_FALSE(torch::allclose(net->forward(in.x, in.t, in.stage, in.tokens), y));
}

TEST(NetworkTest, WordConditioningStartsNeutralAndIgnoresPadding) {
  NetworkConfig c = Tiny();
  c.word_conditioning = 1;
  auto back = NetworkConfig::FromJson(c.ToJson());
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->word_conditioning, 1);
  EXPECT_EQ(Tiny().ToJson().find("word_conditioning"), std::string::npos);
  EXPECT_EQ(NetworkConfig::FromJson(R"({"word_conditioning": 2})").status().message(),
            "network.word_conditioning: 2 outside [0, 1]");

  TpdiffNet net(c);
  NetworkDenoiser d(net);
  EXPECT_EQ(d.Predict(Input(1, 4, 1))->abs().max().item<float>(), 0.0f);

  Randomize(*net, 6);
  core::DenoiserInput in = Input(1, 4, 1);
  in.tokens[0][0] = 4;
  in.tokens[0][1] = 14;
  const torch::Tensor y = *d.Predict(in);
  core::DenoiserInput shorter = in;
  shorter.tokens = in.tokens.slice(1, 0, 2);
  EXPECT_TRUE(torch::allclose(*d.Predict(shorter), y, 1e-5, 1e-5));
  {
    torch::NoGradGuard no_grad;
    for (const auto& p : net->named_parameters()) {
      if (p.key() == "word_cond.weight") p.value()[14].zero_();
    }
  }
  EXPECT_FALSE(torch::allclose(*d.Predict(in), y));  // word 14's own vector reaches the output
}

TEST(NetworkTest, WordLayoutPriorIsPerWordFrameAndPosition) {
  NetworkConfig c = Tiny();
  c.word_layout_frames = 16;
  auto back = NetworkConfig::FromJson(c.ToJson());
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->word_layout_frames, 16);
  EXPECT_EQ(Tiny().ToJson().find("word_layout_frames"), std::string::npos);

  TpdiffNet net(c);
  NetworkDenoiser d(net);
  EXPECT_EQ(d.Predict(Input(1, 4, 3))->abs().max().item<float>(), 0.0f);  // starts at zero

  Randomize(*net, 7);
  torch::Tensor layout;
  for (const auto& p : net->named_parameters()) {
    if (p.key() == "word_layout") layout = p.value();
  }
  ASSERT_TRUE(layout.defined());
  EXPECT_EQ(layout.sizes(), (std::vector<int64_t>{c.vocab_size, 16, 16, c.width}));
  core::DenoiserInput in = Input(1, 4, 3);  // stage 3: full-rate frames 0, 4, 8, 12
  in.tokens[0][0] = 4;
  in.tokens[0][1] = 14;
  const torch::Tensor y = *d.Predict(in);
  auto zeroed = [&](int64_t word, int64_t frame) {
    torch::NoGradGuard no_grad;
    const torch::Tensor saved = layout[word][frame].clone();
    layout[word][frame].zero_();
    const torch::Tensor out = *d.Predict(in);
    layout[word][frame].copy_(saved);
    return out;
  };
  EXPECT_FALSE(torch::allclose(zeroed(14, 4), y));   // a word of the caption, a frame it uses
  EXPECT_TRUE(torch::equal(zeroed(14, 5), y));       // a full-rate frame stage 3 skips
  EXPECT_TRUE(torch::equal(zeroed(9, 4), y));        // a word not in the caption
  core::DenoiserInput shorter = in;                        // padding adds nothing
  shorter.tokens = in.tokens.slice(1, 0, 2);
  EXPECT_TRUE(torch::allclose(*d.Predict(shorter), y, 1e-5, 1e-5));

  // Frames beyond the table are an error, not a silent wrap.
  c.word_layout_frames = 8;
  TpdiffNet small(c);
  NetworkDenoiser ds(small);
  EXPECT_EQ(ds.Predict(Input(1, 16, 1)).status().message(),
            "x: 16 frames at stage 1 reach full-rate frame 15; the model covers 8 frames");
}

// The denoiser reuses the caption's encoding within a stage; every call must still equal a
// fresh forward pass, whatever changed since the last one: t, stage, frame count, caption
// (also a caller rewriting its token tensor in place) or the weights.
TEST(NetworkTest, ReusedCaptionStateMatchesAFreshForward) {
  NetworkConfig c = Tiny();
  c.word_layout_frames = 16;
  c.word_conditioning = 1;
  TpdiffNet net(c);
  Randomize(*net, 11);
  NetworkDenoiser d(net);
  torch::Tensor tokens = GuidedTokens();
  auto check = [&](core::DenoiserInput in, const char* what) {
    const auto y = d.Predict(in);
    ASSERT_TRUE(y.ok()) << what << ": " << y.status();
    torch::NoGradGuard no_grad;
    const torch::Tensor fresh = net->forward(in.x, in.t, in.stage, in.tokens);
    EXPECT_TRUE(torch::equal(*y, fresh)) << what << ": max difference "
                                         << (*y - fresh).abs().max().item<float>();
  };
  core::DenoiserInput in = Input(2, 4, 3, tokens);
  check(in, "first call");
  in.t = torch::full({2}, 0.3f);
  in.x = torch::randn_like(in.x);
  check(in, "next step of the stage");
  check(Input(2, 8, 2, tokens), "next stage");
  check(Input(2, 8, 1, tokens), "same frame count, other stage");
  tokens[0][2] = 9;  // the caller's tensor rewritten in place
  check(Input(2, 8, 1, tokens), "caption changed in place");
  check(Input(2, 8, 1, tokens.slice(1, 0, 5)), "shorter padding");
  {
    torch::NoGradGuard no_grad;
    for (auto& p : net->parameters()) p.mul_(0.9);
  }
  check(Input(2, 8, 1, tokens), "weights scaled in place");
  net->to(torch::kDouble);  // replaces every parameter's storage
  net->to(torch::kFloat);
  check(Input(2, 8, 1, tokens), "weights moved");

  // Reuse never skips validation of a call that differs: same shapes, bad values.
  torch::Tensor bad_tokens = tokens.clone();
  bad_tokens[1][0] = c.vocab_size;
  EXPECT_EQ(d.Predict(Input(2, 8, 1, bad_tokens)).status().code(),
            absl::StatusCode::kInvalidArgument);
  core::DenoiserInput mixed = Input(2, 8, 1, tokens);
  mixed.stage[1] = 2;
  EXPECT_EQ(d.Predict(mixed).status().code(), absl::StatusCode::kInvalidArgument);
  check(Input(2, 8, 1, tokens), "after rejected calls");
}

// Inference takes the fused CPU kernels (attention, norm + modulation, gated residuals);
// training records autograd and takes tensor ops. Both must compute the same network.
TEST(NetworkTest, InferenceKernelsMatchTheTrainingPath) {
  NetworkConfig c = Tiny();
  c.word_layout_frames = 16;
  c.refine_channels = 8;
  TpdiffNet net(c);
  Randomize(*net, 12);
  for (const auto& [frames, stage] : {std::pair{4, 3}, std::pair{8, 2}, std::pair{16, 1}}) {
    const core::DenoiserInput in = Input(2, frames, stage, GuidedTokens());
    const torch::Tensor recorded = net->forward(in.x, in.t, in.stage, in.tokens);
    ASSERT_TRUE(recorded.requires_grad());  // the tensor-op path ran
    torch::NoGradGuard no_grad;
    const torch::Tensor inferred = net->forward(in.x, in.t, in.stage, in.tokens);
    EXPECT_TRUE(torch::allclose(inferred, recorded.detach(), 1e-4, 1e-4))
        << frames << " frames: max difference "
        << (inferred - recorded.detach()).abs().max().item<float>();
  }
}

TEST(NetworkTest, RecommendedConfigsStayWellUnderTenMillionParameters) {
  for (const char* preset : {"cpu", "gpu"}) {
    const NetworkConfig c = *NetworkPreset(preset);
    TpdiffNet net(c);
    EXPECT_LT(net->ParameterCount(), 10'000'000) << c.ToJson();
    EXPECT_GT(EstimateForwardFlops(c, 16, 32, 32), 0);
  }
}

}  // namespace
}  // namespace tpdiff::model
