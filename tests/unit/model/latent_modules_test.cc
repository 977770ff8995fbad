#include "tpdiff/model/latent_modules.h"

#include <torch/script.h>

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "tiny_latent_package.h"

namespace tpdiff::model {
namespace {

namespace fs = std::filesystem;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

using testing::kTinyDecoder;
using testing::kTinyDenoiser;
using testing::kTinyEncoder;

// The tiny package's modules (tiny_latent_package.h) and variants of them.
class LatentModulesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("tpdiff-latent-modules-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
    config_.text_encoder_file = Save("text_encoder.pt", kTinyEncoder);
    config_.denoiser_file = Save("denoiser.pt", kTinyDenoiser);
    config_.vae_file = Save("vae.pt", kTinyDecoder);
    config_.max_tokens = 5;
    config_.context_dim = 6;
    config_.latent_channels = 4;
    config_.latent_height = 3;
    config_.latent_width = 4;
    config_.spatial_factor = 2;
    config_.temporal_factor = 2;
    config_.causal_first_frame = true;
    config_.stage_latent_frames = {5, 3, 2};  // 1 + 4, 1 + 2, 1 + 1
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string Save(const std::string& file, const std::string& source) {
    const std::string path = (dir_ / file).string();
    testing::SaveTinyModule(path, source);
    return path;
  }

  fs::path dir_;
  LatentModuleConfig config_;
};

TEST_F(LatentModulesTest, LoadsEncodesDenoisesAndDecodes) {
  config_.scale = {2.0};
  config_.shift = {0.5, -0.5, 0.0, 1.0};
  auto modules = LatentModules::Load(config_, torch::kCPU);
  ASSERT_TRUE(modules.ok()) << modules.status();
  torch::Tensor tokens = torch::tensor({{3, 4, 0, 0, 0}, {1, 0, 0, 0, 0}}, torch::kLong);
  torch::Tensor mask = (tokens != 0).to(torch::kLong);
  auto context = (*modules)->EncodeText(tokens, mask);
  ASSERT_TRUE(context.ok()) << context.status();
  EXPECT_EQ(context->sizes(), (std::vector<int64_t>{2, 5, 6}));
  EXPECT_EQ(context->scalar_type(), torch::kFloat);
  EXPECT_FLOAT_EQ((*context)[0][1][5].item<float>(), 2.0f);

  torch::Tensor z = torch::randn({2, 4, 3, 3, 4});
  auto v = (*modules)->Denoise(z, torch::full({2}, 250.0), torch::full({2}, int64_t{2}),
                               *context, mask);
  ASSERT_TRUE(v.ok()) << v.status();
  const torch::Tensor c = 0.25 + 2 + context->mean({1, 2}) + mask.sum(1).to(torch::kFloat);
  EXPECT_TRUE(torch::allclose(*v, z * 0.5 + c.view({-1, 1, 1, 1, 1})));

  // vae input = z / scale + shift, per channel.
  auto frames = (*modules)->Decode(torch::zeros({1, 4, 3, 3, 4}));
  ASSERT_TRUE(frames.ok()) << frames.status();
  EXPECT_EQ(frames->sizes(), (std::vector<int64_t>{1, 3, 5, 6, 8}));
  EXPECT_FLOAT_EQ((*frames)[0][0].mean().item<float>(), std::tanh(0.25f));
  EXPECT_FLOAT_EQ((*frames)[0][1].mean().item<float>(), std::tanh(-0.25f));
  EXPECT_FLOAT_EQ((*frames)[0][2].mean().item<float>(), 0.0f);
}

TEST_F(LatentModulesTest, DenoiserOutputOfTheWrongShapeNamesStageAndExpectedShape) {
  config_.denoiser_file = Save("denoiser.pt", R"(
def forward(self, latents, timestep, stage, context, mask):
    return latents[:, :, :2] * self.w
)");
  auto r = LatentModules::Load(config_, torch::kCPU);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(),
              HasSubstr("denoiser: output [2, 4, 2, 3, 4] Float for latents [2, 4, 5, 3, 4] at "
                        "stage 1; expected [2, 4, 5, 3, 4]"));
}

TEST_F(LatentModulesTest, DecoderWithoutTheCausalFirstFrameFailsTheCheck) {
  config_.vae_file = Save("vae.pt", R"(
def forward(self, latents):
    x = latents[:, :3].repeat_interleave(2, dim=2)
    return x.repeat_interleave(2, dim=3).repeat_interleave(2, dim=4) * self.w
)");
  auto r = LatentModules::Load(config_, torch::kCPU);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(),
              HasSubstr("vae: output [1, 3, 4, 6, 8] Float for latents [1, 4, 2, 3, 4]; "
                        "expected [1, 3, 3, 6, 8] floating point (temporal_factor 2 with a "
                        "causal first frame, spatial_factor 2)"));
}

TEST_F(LatentModulesTest, EncoderOfAnotherWidthFailsTheCheck) {
  config_.context_dim = 8;
  auto r = LatentModules::Load(config_, torch::kCPU);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(),
              HasSubstr("text_encoder: output [2, 5, 6] Float for tokens [2, 5]; expected "
                        "[2, 5, 8] floating point (text_encoder.dim 8)"));
}

TEST_F(LatentModulesTest, RaisingForwardIsFailedPreconditionWithoutTheTraceback) {
  // Works only at the full frame count: the checks at stage 2 raise inside TorchScript.
  config_.denoiser_file = Save("denoiser.pt", R"(
def forward(self, latents, timestep, stage, context, mask):
    return latents + torch.zeros([1, 1, 5, 1, 1]) * self.w
)");
  auto r = LatentModules::Load(config_, torch::kCPU);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(r.status().message(),
              AllOf(HasSubstr("denoiser: forward for latents [2, 4, 3, 3, 4] at stage 2 "
                              "failed: RuntimeError: The size of tensor a (3) must match"),
                    Not(HasSubstr("Traceback")), Not(HasSubstr("File \"")),
                    Not(HasSubstr("\n"))));
}

TEST_F(LatentModulesTest, FilesAndSignaturesAreChecked) {
  LatentModuleConfig missing = config_;
  missing.vae_file = (dir_ / "nope.pt").string();
  EXPECT_EQ(LatentModules::Load(missing, torch::kCPU).status().code(),
            absl::StatusCode::kNotFound);

  LatentModuleConfig garbage = config_;
  garbage.text_encoder_file = (dir_ / "garbage.pt").string();
  { std::ofstream(garbage.text_encoder_file) << "not a zip"; }
  auto r = LatentModules::Load(garbage, torch::kCPU);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("is not a TorchScript module"));

  config_.denoiser_file = Save("denoiser.pt", R"(
def forward(self, latents, timestep, stage):
    return latents
)");
  r = LatentModules::Load(config_, torch::kCPU);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(),
              HasSubstr("denoiser: forward(latents, timestep, stage) has 3 inputs; expected "
                        "forward(latents, timestep, stage, context, mask)"));

}

TEST(ScriptErrorForClientTest, KeepsTheCauseAndDropsTracebacksAndPaths) {
  const std::string what =
      "The following operation failed in the TorchScript interpreter.\n"
      "Traceback of TorchScript, serialized code (most recent call last):\n"
      "  File \"code/__torch__/model.py\", line 12, in forward\n"
      "    x = torch.cat([a, b])\n"
      "Traceback of TorchScript, original code (most recent call last):\n"
      "  File \"/home/author/secret/model.py\", line 40, in forward\n"
      "RuntimeError: Sizes of tensors must match except in dimension 0.\n"
      "Expected size 3 but got size 2\n";
  EXPECT_EQ(ScriptErrorForClient(what),
            "RuntimeError: Sizes of tensors must match except in dimension 0. Expected size 3 "
            "but got size 2");
  EXPECT_EQ(ScriptErrorForClient("shape mismatch\nException raised from foo at bar.cpp:1"),
            "shape mismatch");
}

}  // namespace
}  // namespace tpdiff::model
