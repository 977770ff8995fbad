#include "tpdiff/train/eval_detector.h"

#include <algorithm>
#include <cstdio>
#include <map>

#include <gtest/gtest.h>

#include "tpdiff/train/synthetic_data.h"

namespace tpdiff::train {
namespace {

constexpr int kClips = 500;

// 500 random ground-truth clips, shared by the tests below (rendering is deterministic).
const ClipBatch& GroundTruth() {
  static const auto* batch = new ClipBatch(RenderClipBatch(ClipSpec{}, kClips, 1234));
  return *batch;
}

VideoScore MustScore(const torch::Tensor& video, const SceneDescription& scene) {
  absl::StatusOr<VideoScore> s = ScoreVideo(video, scene);
  EXPECT_TRUE(s.ok()) << s.status();
  return s.ok() ? *s : VideoScore{};
}

TEST(EvalDetectorTest, GroundTruthClipsAreAdherent) {
  const ClipBatch& gt = GroundTruth();
  int adherent = 0, background = 0, count = 0, color = 0, shape = 0, direction = 0, speed = 0;
  double max_jerk = 0;
  std::map<Shape, std::pair<double, double>> fill;  // min, max per shape
  for (int i = 0; i < kClips; ++i) {
    const VideoScore s = MustScore(gt.video[i], gt.scenes[i]);
    adherent += s.adherent;
    background += s.background_ok;
    count += s.count_ok;
    color += s.color_ok;
    shape += s.shape_ok;
    direction += s.direction_ok;
    speed += s.speed_ok;
    max_jerk = std::max(max_jerk, s.jerk);
    if (!s.adherent) ADD_FAILURE() << "not adherent: " << gt.captions[i];
    for (size_t j = 0; j < s.objects.size(); ++j) {
      auto [it, inserted] = fill.try_emplace(gt.scenes[i].objects[j].shape,
                                             s.objects[j].fill_ratio, s.objects[j].fill_ratio);
      it->second.first = std::min(it->second.first, s.objects[j].fill_ratio);
      it->second.second = std::max(it->second.second, s.objects[j].fill_ratio);
    }
  }
  // The measured margins behind DetectorThresholds, for the record.
  for (const auto& [sh, range] : fill) {
    std::printf("fill ratio %-8s [%.3f, %.3f]\n", std::string(ShapeName(sh)).c_str(),
                range.first, range.second);
  }
  std::printf("ground truth: adherent %d/%d, max jerk %.4f px/frame^2\n", adherent, kClips,
              max_jerk);
  EXPECT_GE(adherent, 0.98 * kClips);
  for (int attribute : {background, count, color, shape, direction, speed}) {
    EXPECT_GE(attribute, 0.98 * kClips);
  }
  EXPECT_LT(max_jerk, 0.1);
}

TEST(EvalDetectorTest, MeasuresTheRenderedMotion) {
  const ClipBatch& gt = GroundTruth();
  for (int i = 0; i < 100; ++i) {
    const VideoScore s = MustScore(gt.video[i], gt.scenes[i]);
    for (size_t j = 0; j < s.objects.size(); ++j) {
      EXPECT_NEAR(s.objects[j].vx, gt.layouts[i].objects[j].vx, 0.05) << gt.captions[i];
      EXPECT_NEAR(s.objects[j].vy, gt.layouts[i].objects[j].vy, 0.05) << gt.captions[i];
      EXPECT_EQ(s.objects[j].present_fraction, 1.0);
    }
    EXPECT_GT(s.frame_change, 0);
  }
}

// Each wrong caption differs from the truth in one attribute, which must be flagged.
TEST(EvalDetectorTest, WrongCaptionsAreFlagged) {
  const ClipBatch& gt = GroundTruth();
  int flagged[5] = {}, total = 0;
  for (int i = 0; i < kClips; ++i) {
    const SceneDescription& truth = gt.scenes[i];
    const int n = static_cast<int>(i % truth.objects.size());
    ++total;
    // Colour: one not used by the scene.
    SceneDescription wrong = truth;
    int c = (static_cast<int>(truth.objects[n].color) + 1 + i % 5) % kNumColors;
    while (std::any_of(truth.objects.begin(), truth.objects.end(),
                       [&](const ObjectDescription& o) { return static_cast<int>(o.color) == c; })) {
      c = (c + 1) % kNumColors;
    }
    wrong.objects[n].color = static_cast<Color>(c);
    VideoScore s = MustScore(gt.video[i], wrong);
    flagged[0] += !s.color_ok && !s.adherent;
    // Shape.
    wrong = truth;
    wrong.objects[n].shape = static_cast<Shape>((static_cast<int>(truth.objects[n].shape) + 1 + i % 2) % kNumShapes);
    s = MustScore(gt.video[i], wrong);
    flagged[1] += !s.shape_ok && !s.adherent;
    // Direction, including the neighbouring 45-degree sectors.
    wrong = truth;
    wrong.objects[n].direction = static_cast<Direction>(
        (static_cast<int>(truth.objects[n].direction) + 1 + i % 7) % kNumDirections);
    s = MustScore(gt.video[i], wrong);
    flagged[2] += !s.direction_ok && !s.adherent;
    // Speed.
    wrong = truth;
    wrong.objects[n].speed = truth.objects[n].speed == Speed::kFast ? Speed::kSlow : Speed::kFast;
    s = MustScore(gt.video[i], wrong);
    flagged[3] += !s.speed_ok && !s.adherent;
    // Background.
    wrong = truth;
    wrong.gray_background = !truth.gray_background;
    s = MustScore(gt.video[i], wrong);
    flagged[4] += !s.background_ok && !s.adherent;
  }
  const char* names[] = {"colour", "shape", "direction", "speed", "background"};
  for (int k = 0; k < 5; ++k) {
    EXPECT_GE(flagged[k], 0.98 * total) << names[k] << ": " << flagged[k] << "/" << total;
  }
}

TEST(EvalDetectorTest, ObjectCountMustMatch) {
  const ClipBatch& gt = GroundTruth();
  int checked = 0;
  for (int i = 0; i < kClips && checked < 50; ++i) {
    if (gt.scenes[i].objects.size() != 2) continue;
    ++checked;
    SceneDescription first_only = gt.scenes[i];
    first_only.objects.resize(1);
    const VideoScore s = MustScore(gt.video[i], first_only);
    EXPECT_FALSE(s.count_ok) << gt.captions[i];
    EXPECT_FALSE(s.adherent) << gt.captions[i];
    EXPECT_TRUE(s.color_ok && s.shape_ok && s.direction_ok) << gt.captions[i];
    EXPECT_EQ(s.detected_objects, 2);
  }
  EXPECT_EQ(checked, 50);
}

TEST(EvalDetectorTest, NoiseVideosScoreLow) {
  torch::manual_seed(5);
  const ClipBatch& gt = GroundTruth();
  int adherent = 0;
  for (int i = 0; i < 100; ++i) {
    const torch::Tensor noise =
        i % 2 == 0 ? torch::rand({3, 16, 32, 32}) * 2 - 1
                   : torch::randint(0, 256, {3, 16, 32, 32}, torch::kUInt8);
    const VideoScore s = MustScore(noise, gt.scenes[i]);
    adherent += s.adherent;
    EXPECT_FALSE(s.adherent) << gt.captions[i];
  }
  // Gaussian noise around a clean clip, the way an untrained model's output looks.
  for (int i = 0; i < 50; ++i) {
    const torch::Tensor noisy = gt.video[i] + torch::randn({3, 16, 32, 32});
    adherent += MustScore(noisy, gt.scenes[i]).adherent;
  }
  EXPECT_EQ(adherent, 0);
}

TEST(EvalDetectorTest, FrozenAndShuffledVideosFailMotion) {
  const ClipBatch& gt = GroundTruth();
  for (int i = 0; i < 40; ++i) {
    const torch::Tensor first = gt.video[i].narrow(1, 0, 1);
    const torch::Tensor frozen = first.expand({3, 16, 32, 32}).contiguous();
    const VideoScore still = MustScore(frozen, gt.scenes[i]);
    EXPECT_TRUE(still.color_ok && still.shape_ok)
        << gt.captions[i] << " fill " << still.objects[0].fill_ratio << " present "
        << still.objects[0].present_fraction;
    EXPECT_FALSE(still.direction_ok) << gt.captions[i];
    EXPECT_EQ(still.frame_change, 0);

    // Frames in a scrambled order: the track jumps about, so jerk is large.
    const torch::Tensor order = torch::tensor({0, 9, 3, 14, 6, 1, 12, 4, 15, 8, 2, 11, 5, 13, 7, 10});
    const VideoScore scrambled = MustScore(gt.video[i].index_select(1, order), gt.scenes[i]);
    EXPECT_GT(scrambled.jerk, 1.0) << gt.captions[i];
    EXPECT_GT(scrambled.jerk, 20 * MustScore(gt.video[i], gt.scenes[i]).jerk + 0.5);
  }
}

TEST(EvalDetectorTest, Uint8AndFloatFramesScoreTheSame) {
  const ClipBatch& gt = GroundTruth();
  for (int i = 0; i < 30; ++i) {
    const torch::Tensor u8 = ((gt.video[i] + 1) * 127.5).round().to(torch::kUInt8);
    const VideoScore a = MustScore(gt.video[i], gt.scenes[i]);
    const VideoScore b = MustScore(u8.unsqueeze(0), gt.scenes[i]);  // [1, 3, T, H, W] too
    EXPECT_EQ(a.adherent, b.adherent);
    ASSERT_EQ(a.objects.size(), b.objects.size());
    for (size_t j = 0; j < a.objects.size(); ++j) {
      EXPECT_NEAR(a.objects[j].vx, b.objects[j].vx, 0.02);
      EXPECT_NEAR(a.objects[j].fill_ratio, b.objects[j].fill_ratio, 0.02);
    }
  }
}

TEST(EvalDetectorTest, RejectsBadInput) {
  const SceneDescription scene = *ParseCaption("a red circle moving left");
  EXPECT_EQ(ScoreVideo(torch::zeros({3, 32, 32}), scene).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ScoreVideo(torch::zeros({4, 16, 32, 32}), scene).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ScoreVideo(torch::zeros({3, 1, 32, 32}), scene).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ScoreVideo(torch::zeros({3, 16, 32, 32}, torch::kInt32), scene).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ScoreVideo(torch::zeros({3, 16, 32, 32}), "a red blob").status().code(),
            absl::StatusCode::kInvalidArgument);
  // An empty (all background) video is valid input and simply not adherent.
  absl::StatusOr<VideoScore> blank = ScoreVideo(torch::full({3, 16, 32, 32}, -1.0), scene);
  ASSERT_TRUE(blank.ok());
  EXPECT_FALSE(blank->adherent);
  EXPECT_FALSE(blank->objects[0].found);
  EXPECT_TRUE(blank->background_ok);
}

}  // namespace
}  // namespace tpdiff::train
