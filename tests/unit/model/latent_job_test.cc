#include "tpdiff/model/latent_job.h"

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tiny_latent_package.h"
#include "tpdiff/model/model_package.h"

namespace tpdiff::model {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Passes calls on, recording each call's batch.
class RecordingDenoiser : public core::Denoiser {
 public:
  explicit RecordingDenoiser(std::unique_ptr<core::Denoiser> inner) : inner_(std::move(inner)) {}
  absl::StatusOr<torch::Tensor> Predict(const core::DenoiserInput& in) override {
    batches.push_back(in.x.size(0));
    return inner_->Predict(in);
  }
  std::vector<int64_t> batches;

 private:
  std::unique_ptr<core::Denoiser> inner_;
};

class LatentJobTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto dir = testing::WriteTinyLatentPackage("tiny-latent");
    ASSERT_TRUE(dir.ok()) << dir.status();
    models_dir_ = *dir;
    auto model = LoadModelPackage(models_dir_ + "/tiny-latent", torch::kCPU);
    ASSERT_TRUE(model.ok()) << model.status();
    model_ = *std::move(model);
  }
  void TearDown() override { fs::remove_all(models_dir_); }

  LatentJobRequest Request() const {
    LatentJobRequest r;
    r.prompt = "a red ball rolling right";
    r.guidance_scale = 2.0;
    r.seed = 5;
    r.stage_steps = {2, 2, 2};
    r.num_frames = 9;
    r.height = 8;
    r.width = 8;
    return r;
  }
  absl::StatusOr<LatentJobResult> Sample(const LatentJobRequest& r, core::Denoiser* denoiser) {
    return SampleLatentJob(model_->manifest(), model_->tokenizer(), *model_->latent_modules(),
                           *denoiser, r);
  }

  std::string models_dir_;
  std::unique_ptr<LoadedModel> model_;
};

TEST_F(LatentJobTest, SamplesEveryStageAtItsLatentFrameCount) {
  ASSERT_NE(model_->latent_modules(), nullptr);
  RecordingDenoiser denoiser(model_->NewDenoiser());
  auto result = Sample(Request(), &denoiser);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->latents.sizes(), (std::vector<int64_t>{1, 4, 5, 4, 4}));
  ASSERT_EQ(result->stage_latents.size(), 3u);
  EXPECT_EQ(result->stage_latents[0].size(2), 2);  // 1 + 4 / 4
  EXPECT_EQ(result->stage_latents[1].size(2), 3);
  EXPECT_TRUE(torch::equal(result->stage_latents[2], result->latents));
  EXPECT_TRUE(torch::isfinite(result->latents).all().item<bool>());
  // Guidance: one batch-2 call [cond, uncond] per step.
  EXPECT_THAT(denoiser.batches, ElementsAre(2, 2, 2, 2, 2, 2));

  auto frames = model_->latent_modules()->Decode(result->latents);
  ASSERT_TRUE(frames.ok()) << frames.status();
  EXPECT_EQ(frames->sizes(), (std::vector<int64_t>{1, 3, 9, 8, 8}));

  // The seed fixes every draw; another seed gives other latents.
  auto again = Sample(Request(), &denoiser);
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(torch::equal(again->latents, result->latents));
  LatentJobRequest other = Request();
  other.seed = 6;
  auto different = Sample(other, &denoiser);
  ASSERT_TRUE(different.ok());
  EXPECT_FALSE(torch::allclose(different->latents, result->latents));
}

TEST_F(LatentJobTest, GuidanceOneCallsTheDenoiserWithTheConditionalRowOnly) {
  RecordingDenoiser denoiser(model_->NewDenoiser());
  LatentJobRequest r = Request();
  r.guidance_scale = 1.0;
  r.vanilla = true;
  auto result = Sample(r, &denoiser);
  ASSERT_TRUE(result.ok()) << result.status();
  // Vanilla: one full-rate stage with the 6 steps.
  EXPECT_THAT(denoiser.batches, ElementsAre(1, 1, 1, 1, 1, 1));
  ASSERT_EQ(result->stage_latents.size(), 1u);
  EXPECT_EQ(result->latents.size(2), 5);
}

TEST_F(LatentJobTest, SizesOutsideTheLatentGridNameTheField) {
  auto denoiser = model_->NewDenoiser();
  LatentJobRequest r = Request();
  r.num_frames = 8;
  EXPECT_THAT(Sample(r, denoiser.get()).status().message(),
              HasSubstr("num_frames: 8 must be 1 + vae.temporal_factor (2) * N"));
  r = Request();
  r.width = 7;
  EXPECT_THAT(Sample(r, denoiser.get()).status().message(),
              HasSubstr("width: 7 is not a multiple of vae.spatial_factor 2"));
}

TEST_F(LatentJobTest, PackageFailingTheChecksDoesNotLoad) {
  testing::SaveTinyModule(models_dir_ + "/tiny-latent/vae_decoder.pt", R"(
def forward(self, latents):
    return latents[:, :3] * self.w
)");
  auto r = LoadModelPackage(models_dir_ + "/tiny-latent", torch::kCPU);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(),
              HasSubstr("tiny-latent: vae: output [1, 3, 2, 4, 4] Float for latents "
                        "[1, 4, 2, 4, 4]; expected [1, 3, 3, 8, 8]"));
}

}  // namespace
}  // namespace tpdiff::model
