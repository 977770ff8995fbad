// The job runner on a latent package (tiny_latent_package.h): previews and the video are the
// VAE's decode, at each stage's latent frame count.

#include <algorithm>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "recording_sink.h"
#include "tiny_latent_package.h"
#include "tpdiff/media/decoder.h"
#include "tpdiff/worker/job_runner.h"
#include "tpdiff/worker/models.h"

namespace tpdiff::worker {
namespace {

namespace api = ::tpdiff::v1;
namespace wv1 = ::tpdiff::worker::v1;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

class LatentJobRunnerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto dir = model::testing::WriteTinyLatentPackage("tiny-latent");
    ASSERT_TRUE(dir.ok()) << dir.status();
    models_dir_ = *dir;
    auto models = LoadModels(models_dir_, {"tiny-latent"}, torch::kCPU, nullptr);
    ASSERT_TRUE(models.ok()) << models.status();
    info_ = ToModelInfo(*models->at("tiny-latent"));
    JobRunnerOptions options;
    options.worker_id = "w1";
    runner_ = std::make_unique<JobRunner>(*std::move(models), 1, sink_, options);
  }
  void TearDown() override {
    runner_->Shutdown();
    std::filesystem::remove_all(models_dir_);
  }

  static wv1::Assign MakeAssign(const std::string& id) {
    wv1::Assign a;
    a.set_job_id(id);
    a.set_attempt(1);
    api::GenerateRequest* r = a.mutable_request();
    r->set_model("tiny-latent");
    r->set_prompt("a red ball rolling right");
    r->set_seed(3);
    r->mutable_preview()->set_enabled(true);
    r->mutable_preview()->set_format(api::VIDEO_FORMAT_PNG_FRAMES);
    r->mutable_output()->set_format(api::VIDEO_FORMAT_PNG_FRAMES);
    r->mutable_output()->set_scale(1);
    return a;
  }

  std::string models_dir_;
  api::ModelInfo info_;
  testing::RecordingSink sink_;
  std::unique_ptr<JobRunner> runner_;
};

TEST_F(LatentJobRunnerTest, PreviewsAndTheVideoAreDecodedAtEachStagesFrameRate) {
  EXPECT_EQ(info_.kind(), "latent");
  EXPECT_EQ(info_.tokenizer_kind(), "words");
  EXPECT_EQ(info_.max_tokens(), 8u);
  runner_->Assign(MakeAssign("job-1"));
  const std::vector<api::JobEvent> events = sink_.WaitForEnd("job-1");
  ASSERT_FALSE(events.empty());
  ASSERT_TRUE(events.back().has_completed()) << events.back().DebugString();

  // 9 pixel frames = 5 latent frames; stages of 2, 3 and 5 latent frames decode to 3, 5, 9.
  std::vector<std::string> order;
  for (const api::JobEvent& e : events) {
    if (e.has_progress()) order.push_back(absl::StrCat("p@", e.progress().frames()));
    if (!e.has_stage_preview()) continue;
    const api::StagePreview& p = e.stage_preview();
    absl::StatusOr<media::Video> video = media::DecodePngFrames(p.media().data());
    ASSERT_TRUE(video.ok()) << video.status();
    EXPECT_EQ(video->frames, static_cast<int>(p.frames()));
    EXPECT_EQ(video->width, static_cast<int>(p.width()));
    order.push_back(absl::StrCat("preview", p.stage(), "@", p.frames(), "/", p.fps()));
  }
  EXPECT_THAT(order, ElementsAre("p@3", "p@3", "preview1@3/2", "p@5", "p@5", "preview2@5/4",
                                 "p@9", "p@9", "preview3@9/8"));
  std::string bytes;
  for (const api::JobEvent& e : events) {
    if (e.has_result_chunk()) bytes += e.result_chunk().data();
  }
  absl::StatusOr<media::Video> video = media::DecodePngFrames(bytes);
  ASSERT_TRUE(video.ok()) << video.status();
  EXPECT_EQ(video->frames, 9);
  EXPECT_EQ(video->height, 8);
  // The last stage's preview is the video itself (upscaled for display).
  absl::StatusOr<media::Video> last = media::DecodePngFrames(
      std::find_if(events.rbegin(), events.rend(), [](const api::JobEvent& e) {
        return e.has_stage_preview();
      })->stage_preview().media().data());
  ASSERT_TRUE(last.ok());
  ASSERT_EQ(last->frames, 9);
  const int scale = last->width / 8;
  for (int f = 0; f < 9; ++f) {
    for (int y = 0; y < 8; ++y) {
      for (int x = 0; x < 8; ++x) {
        for (int c = 0; c < 3; ++c) {
          ASSERT_EQ(last->pixel(f, y * scale, x * scale)[c], video->pixel(f, y, x)[c]);
        }
      }
    }
  }
}

TEST_F(LatentJobRunnerTest, PixelSizesOffTheLatentGridFailWithTheSpecMessage) {
  wv1::Assign a = MakeAssign("job-2");
  a.mutable_request()->set_num_frames(8);
  runner_->Assign(a);
  const std::vector<api::JobEvent> events = sink_.WaitForEnd("job-2");
  ASSERT_TRUE(events.back().has_failed()) << events.back().DebugString();
  EXPECT_EQ(events.back().failed().code(), static_cast<int>(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(events.back().failed().message(),
              HasSubstr("num_frames: 8 must be 1 + vae.temporal_factor (2) * N"));
  EXPECT_FALSE(events.back().failed().retryable());
}

}  // namespace
}  // namespace tpdiff::worker
