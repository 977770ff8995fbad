#include <gtest/gtest.h>
#include <torch/script.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <future>
#include <thread>
#include <vector>

#include "remove_tree.h"
#include "tpdiff/model/model_package.h"
#include "tpdiff/model/network.h"
#include "tpdiff/model/safetensors.h"
#include "tpdiff/core/sampler.h"
#include "tpdiff/core/stage_plan.h"

namespace tpdiff::model {
namespace {

namespace fs = std::filesystem;

NetworkConfig Tiny() { return *NetworkPreset("tiny"); }

class PackageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) /
           ("tpdiff_pkg_" +
            std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    tpdiff::testing::RemoveTree(dir_.string());
  }
  void TearDown() override { tpdiff::testing::RemoveTree(dir_.string()); }

  void WriteFile(const std::string& name, const std::string& text) {
    fs::create_directories(dir_);
    std::ofstream(dir_ / name) << text;
  }

  fs::path dir_;
};

core::DenoiserInput SomeInput(const spec::Tokenizer& tok) {
  core::DenoiserInput in;
  in.x = torch::randn({2, 3, 8, 32, 32});
  in.t = torch::tensor({0.6f, 0.4f});
  in.stage = torch::full({2}, int64_t{2});
  in.tokens = torch::stack(
      {torch::tensor(*tok.Encode("a red circle moving left")), torch::zeros({32}, torch::kLong)});
  return in;
}

TEST_F(PackageTest, BuiltinSaveLoadGivesIdenticalOutputs) {
  NetworkConfig config = Tiny();
  TpdiffNet net(config);
  {
    torch::NoGradGuard no_grad;
    for (auto& p : net->parameters()) p.normal_(0, 0.2);
  }
  spec::Tokenizer tok = *spec::Tokenizer::FromWords(spec::ShapesVocabulary());
  ASSERT_TRUE(WriteModelPackage(dir_.string(), DefaultBuiltinManifest("tiny"), tok, *net).ok());
  EXPECT_TRUE(fs::exists(dir_ / "model.json"));
  EXPECT_TRUE(fs::exists(dir_ / "weights.safetensors"));
  EXPECT_TRUE(fs::exists(dir_ / "vocab.txt"));

  auto model = LoadModelPackage(dir_.string(), torch::kCPU);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ((*model)->manifest().name, "tiny");
  EXPECT_EQ((*model)->tokenizer().words(), spec::ShapesVocabulary());
  const core::DenoiserInput in = SomeInput(tok);
  NetworkDenoiser original(net);
  auto want = original.Predict(in);
  auto got = (*model)->NewDenoiser()->Predict(in);
  ASSERT_TRUE(want.ok() && got.ok()) << got.status();
  EXPECT_GT(want->abs().max().item<float>(), 0.0f);
  EXPECT_TRUE(torch::equal(*want, *got));
}

TEST_F(PackageTest, RandomPackageSamplesWithThePyramidSampler) {
  ASSERT_TRUE(CreateRandomBuiltinPackage(dir_.string(), "dev", Tiny(), 7).ok());
  auto model = LoadModelPackage(dir_.string(), torch::kCPU);
  ASSERT_TRUE(model.ok()) << model.status();
  const spec::ModelManifest& m = (*model)->manifest();
  core::StagePlanOptions opts;
  opts.num_frames = m.frames;
  opts.num_stages = m.stages;
  opts.steps_per_stage = {2, 2, 2};
  auto plan = core::StagePlan::Create(core::NoiseSchedule(m.parameterization), opts);
  ASSERT_TRUE(plan.ok());
  core::SampleRequest req;
  req.tokens = torch::tensor(*(*model)->tokenizer().Encode("a blue square moving up")).unsqueeze(0);
  req.guidance_scale = 3.0;
  req.seed = 5;
  auto a = core::PyramidSampler::Sample(*(*model)->NewDenoiser(), *plan, req);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->sizes(), (std::vector<int64_t>{1, 3, 16, 32, 32}));
  EXPECT_TRUE(torch::isfinite(*a).all().item<bool>());
  // Same seed, same package: same video (and a second random package with the same seed too).
  const fs::path other = dir_ / "again";
  ASSERT_TRUE(CreateRandomBuiltinPackage(other.string(), "dev", Tiny(), 7).ok());
  auto model2 = LoadModelPackage(other.string(), torch::kCPU);
  ASSERT_TRUE(model2.ok());
  auto b = core::PyramidSampler::Sample(*(*model2)->NewDenoiser(), *plan, req);
  ASSERT_TRUE(b.ok());
  EXPECT_TRUE(torch::equal(*a, *b));
}

// Samples `kThreads` videos (different seeds, two captions) from `model` twice: one after
// another through one denoiser, then all at once from threads with a denoiser each over the
// same weights. Sharing is correct when every concurrent video equals its sequential one.
void ExpectConcurrentSamplingMatchesSequential(const LoadedModel& model,
                                               const std::vector<std::string>& captions) {
  constexpr int kThreads = 4;
  const spec::ModelManifest& m = model.manifest();
  core::StagePlanOptions opts;
  opts.num_frames = m.frames;
  opts.num_stages = m.stages;
  opts.steps_per_stage = {2, 2, 2};
  auto plan = core::StagePlan::Create(core::NoiseSchedule(m.parameterization), opts);
  ASSERT_TRUE(plan.ok()) << plan.status();
  std::vector<core::SampleRequest> requests(kThreads);
  for (int i = 0; i < kThreads; ++i) {
    auto ids = model.tokenizer().Encode(captions[i % captions.size()]);
    ASSERT_TRUE(ids.ok()) << ids.status();
    requests[i].tokens = torch::tensor(*ids).unsqueeze(0);
    requests[i].guidance_scale = 2.0;
    requests[i].seed = 100 + i;
  }
  std::vector<torch::Tensor> sequential;
  const std::unique_ptr<core::Denoiser> one = model.NewDenoiser();
  for (const core::SampleRequest& r : requests) {
    auto video = core::PyramidSampler::Sample(*one, *plan, r);
    ASSERT_TRUE(video.ok()) << video.status();
    sequential.push_back(*video);
  }

  std::vector<std::unique_ptr<core::Denoiser>> denoisers;
  for (int i = 0; i < kThreads; ++i) denoisers.push_back(model.NewDenoiser());
  std::vector<absl::StatusOr<torch::Tensor>> concurrent(kThreads, absl::UnknownError("not run"));
  std::promise<void> start;
  const std::shared_future<void> started = start.get_future().share();
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      started.wait();  // all threads enter the network together
      concurrent[i] = core::PyramidSampler::Sample(*denoisers[i], *plan, requests[i]);
    });
  }
  start.set_value();
  for (std::thread& t : threads) t.join();
  for (int i = 0; i < kThreads; ++i) {
    ASSERT_TRUE(concurrent[i].ok()) << concurrent[i].status();
    EXPECT_TRUE(torch::equal(*concurrent[i], sequential[i])) << "thread " << i;
  }
  // The captions and seeds differ, so equal videos cannot come from shared state mixing them.
  EXPECT_FALSE(torch::equal(sequential[0], sequential[1]));
}

TEST_F(PackageTest, DenoisersShareTheNetworkAndSampleConcurrently) {
  ASSERT_TRUE(CreateRandomBuiltinPackage(dir_.string(), "dev", Tiny(), 3).ok());
  auto model = LoadModelPackage(dir_.string(), torch::kCPU);
  ASSERT_TRUE(model.ok()) << model.status();
  const std::unique_ptr<core::Denoiser> a = (*model)->NewDenoiser();
  const std::unique_ptr<core::Denoiser> b = (*model)->NewDenoiser();
  auto* na = dynamic_cast<NetworkDenoiser*>(a.get());
  auto* nb = dynamic_cast<NetworkDenoiser*>(b.get());
  ASSERT_NE(na, nullptr);
  ASSERT_NE(nb, nullptr);
  EXPECT_NE(na, nb);
  EXPECT_EQ(na->net().get(), nb->net().get());  // one network, not a copy per denoiser
  ExpectConcurrentSamplingMatchesSequential(**model, {"a red circle moving left", "a blue square"});
}

TEST_F(PackageTest, MissingFolderAndFilesAreNotFound) {
  EXPECT_EQ(LoadModelPackage((dir_ / "nope").string(), torch::kCPU).status().code(),
            absl::StatusCode::kNotFound);
  fs::create_directories(dir_);
  EXPECT_EQ(LoadModelPackage(dir_.string(), torch::kCPU).status().code(),
            absl::StatusCode::kNotFound);

  ASSERT_TRUE(CreateRandomBuiltinPackage(dir_.string(), "dev", Tiny(), 1).ok());
  std::remove((dir_ / "weights.safetensors").c_str());
  auto r = LoadModelPackage(dir_.string(), torch::kCPU);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find("weights_file: "), std::string::npos) << r.status();
  EXPECT_NE(r.status().message().find("weights.safetensors"), std::string::npos) << r.status();

  ASSERT_TRUE(CreateRandomBuiltinPackage(dir_.string(), "dev", Tiny(), 1).ok());
  std::remove((dir_ / "vocab.txt").c_str());
  r = LoadModelPackage(dir_.string(), torch::kCPU);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find("vocabulary_file: "), std::string::npos) << r.status();
}

TEST_F(PackageTest, CorruptOrMismatchedWeightsAreRejected) {
  ASSERT_TRUE(CreateRandomBuiltinPackage(dir_.string(), "dev", Tiny(), 1).ok());
  WriteFile("weights.safetensors", "garbage!garbage!");
  EXPECT_EQ(LoadModelPackage(dir_.string(), torch::kCPU).status().code(),
            absl::StatusCode::kDataLoss);

  // Weights of a wider network do not fit the manifest's config.
  NetworkConfig wide = Tiny();
  wide.width = 64;
  TpdiffNet net(wide);
  ASSERT_TRUE(WriteSafetensors((dir_ / "weights.safetensors").string(), NetworkState(*net)).ok());
  auto r = LoadModelPackage(dir_.string(), torch::kCPU);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("the network expects"), std::string::npos) << r.status();
}

TEST_F(PackageTest, BadManifestNamesTheFile) {
  ASSERT_TRUE(CreateRandomBuiltinPackage(dir_.string(), "dev", Tiny(), 1).ok());
  WriteFile("model.json", R"({"name": "x"})");
  auto r = LoadModelPackage(dir_.string(), torch::kCPU);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("model.json: kind: missing"), std::string::npos)
      << r.status();
}

// A user's TorchScript package: the module is defined in C++, saved, and served.
class TorchScriptPackageTest : public PackageTest {
 protected:
  void WritePackage(const std::string& forward_source) {
    torch::jit::Module module("UserNet");
    module.register_parameter("scale", torch::full({1}, 0.5f), /*is_buffer=*/false);
    module.define(forward_source);
    fs::create_directories(dir_);
    module.save((dir_ / "net.pt").string());
    spec::ModelManifest m = DefaultBuiltinManifest("user");
    m.kind = "torchscript";
    m.weights_file = "net.pt";
    m.default_stage_steps = {3, 3, 3};
    WriteFile("model.json", spec::ManifestToJson(m));
    WriteFile("vocab.txt", "red\nblue\ncircle\n");
  }
};

TEST_F(TorchScriptPackageTest, LoadsAndSamples) {
  // A "denoiser" whose velocity pulls every pixel towards 0 and ignores the caption.
  WritePackage(R"(
def forward(self, x, t, stage, tokens):
    return x * self.scale + 0.0 * t.view(-1, 1, 1, 1, 1) + 0.0 * stage.view(-1, 1, 1, 1, 1).float()
)");
  auto model = LoadModelPackage(dir_.string(), torch::kCPU);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ((*model)->tokenizer().words().size(), 3u);
  const spec::ModelManifest& m = (*model)->manifest();
  core::StagePlanOptions opts;
  opts.num_frames = m.frames;
  opts.num_stages = m.stages;
  opts.steps_per_stage = m.default_stage_steps;
  auto plan = core::StagePlan::Create(core::NoiseSchedule(m.parameterization), opts);
  ASSERT_TRUE(plan.ok());
  core::SampleRequest req;
  req.batch = 2;
  req.tokens = torch::tensor(*(*model)->tokenizer().Encode("red circle")).unsqueeze(0);
  req.guidance_scale = 2.0;
  int calls = 0;
  struct Counter : core::SamplerObserver {
    int* calls;
    void OnStep(const core::StepEvent&) override { ++*calls; }
  } observer;
  observer.calls = &calls;
  auto video = core::PyramidSampler::Sample(*(*model)->NewDenoiser(), *plan, req, &observer);
  ASSERT_TRUE(video.ok()) << video.status();
  EXPECT_EQ(video->sizes(), (std::vector<int64_t>{2, 3, 16, 32, 32}));
  EXPECT_EQ(calls, 9);
  EXPECT_TRUE(torch::isfinite(*video).all().item<bool>());
}

TEST_F(TorchScriptPackageTest, DenoisersShareTheModuleAndSampleConcurrently) {
  // Depends on every input, nonlinearly in x, so a mixed-up call would show.
  WritePackage(R"(
def forward(self, x, t, stage, tokens):
    c = (tokens.float().sum(1) * 0.01 + stage.float() * 0.1 + t).view(-1, 1, 1, 1, 1)
    return torch.tanh(x * self.scale + c) - x * c
)");
  auto model = LoadModelPackage(dir_.string(), torch::kCPU);
  ASSERT_TRUE(model.ok()) << model.status();
  ExpectConcurrentSamplingMatchesSequential(**model, {"red circle", "blue"});
}

TEST_F(TorchScriptPackageTest, WrongSignatureIsInvalidArgument) {
  WritePackage(R"(
def forward(self, x, t):
    return x * self.scale
)");
  auto r = LoadModelPackage(dir_.string(), torch::kCPU);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find(
                "forward(x, t) has 2 inputs; expected forward(x, t, stage, tokens)"),
            std::string::npos)
      << r.status();
}

TEST_F(TorchScriptPackageTest, NonTensorInputIsInvalidArgument) {
  WritePackage(R"(
def forward(self, x, t, stage: int, tokens):
    return x * self.scale
)");
  auto r = LoadModelPackage(dir_.string(), torch::kCPU);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("input \"stage\" has type int"), std::string::npos)
      << r.status();
}

TEST_F(TorchScriptPackageTest, WrongOutputShapeFailsTheProbe) {
  WritePackage(R"(
def forward(self, x, t, stage, tokens):
    return x[:, :, :1] * self.scale
)");
  auto r = LoadModelPackage(dir_.string(), torch::kCPU);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("probe forward"), std::string::npos) << r.status();
}

TEST_F(TorchScriptPackageTest, NotAModuleIsInvalidArgument) {
  WritePackage(R"(
def forward(self, x, t, stage, tokens):
    return x
)");
  WriteFile("net.pt", "not a zip file");
  auto r = LoadModelPackage(dir_.string(), torch::kCPU);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("not a TorchScript module"), std::string::npos) << r.status();
}

}  // namespace
}  // namespace tpdiff::model
