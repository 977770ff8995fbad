#include "tpdiff/train/synthetic_data.h"

#include <cmath>
#include <set>

#include <gtest/gtest.h>

#include "absl/strings/match.h"

namespace tpdiff::train {
namespace {

constexpr double kPi = 3.14159265358979323846;

// Per-pixel coverage of the objects (0 = background, 1 = object) recovered from the rendered
// colours: |pixel - background| / |palette colour - background|, for a single-object clip.
torch::Tensor Alpha(const torch::Tensor& clip, const SceneDescription& scene) {
  const auto bg = scene.gray_background ? kGrayBackground : kBlackBackground;
  const auto rgb = ColorRgb(scene.objects[0].color);
  const torch::Tensor pixels = (clip + 1) * 127.5;  // [3, T, H, W]
  const torch::Tensor b = torch::tensor({bg[0], bg[1], bg[2]}, torch::kFloat).view({3, 1, 1, 1});
  const torch::Tensor c = torch::tensor({rgb[0], rgb[1], rgb[2]}, torch::kFloat).view({3, 1, 1, 1});
  const torch::Tensor e = c - b;
  return ((pixels - b) * e).sum(0) / (e * e).sum();  // [T, H, W]
}

TEST(SyntheticDataTest, SameSeedSameClipsOtherSeedOtherClips) {
  const ClipSpec spec;
  const ClipBatch a = RenderClipBatch(spec, 16, 7);
  const ClipBatch b = RenderClipBatch(spec, 16, 7);
  const ClipBatch c = RenderClipBatch(spec, 16, 8);
  EXPECT_TRUE(torch::equal(a.video, b.video));
  EXPECT_EQ(a.captions, b.captions);
  EXPECT_FALSE(torch::equal(a.video, c.video));
  EXPECT_NE(a.captions, c.captions);
}

TEST(SyntheticDataTest, ClipDependsOnlyOnSeedAndIndex) {
  const ClipSpec spec;
  const ClipBatch small = RenderClipBatch(spec, 3, 99);
  const ClipBatch large = RenderClipBatch(spec, 40, 99);
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(torch::equal(small.video[i], large.video[i]));
    EXPECT_EQ(small.captions[i], large.captions[i]);
  }
}

TEST(SyntheticDataTest, ShapeRangeAndConfigurableSize) {
  ClipSpec spec;
  spec.frames = 8;
  spec.height = 24;
  spec.width = 40;
  const ClipBatch batch = RenderClipBatch(spec, 5, 1);
  EXPECT_EQ(batch.video.sizes(), (std::vector<int64_t>{5, 3, 8, 24, 40}));
  EXPECT_EQ(batch.video.scalar_type(), torch::kFloat32);
  EXPECT_GE(batch.video.min().item<float>(), -1.0f);
  EXPECT_LE(batch.video.max().item<float>(), 1.0f);
  EXPECT_EQ(batch.captions.size(), 5u);
  EXPECT_EQ(batch.scenes.size(), 5u);
  EXPECT_EQ(batch.layouts.size(), 5u);
}

TEST(SyntheticDataTest, ObjectsStayInsideAndPixelsOutsideThemAreBackground) {
  const ClipSpec spec;
  const ClipBatch batch = RenderClipBatch(spec, 300, 3);
  for (int i = 0; i < 300; ++i) {
    const auto bg = batch.scenes[i].gray_background ? kGrayBackground : kBlackBackground;
    torch::Tensor outside = torch::ones({spec.frames, spec.height, spec.width}, torch::kBool);
    for (const ObjectPlacement& p : batch.layouts[i].objects) {
      EXPECT_GE(p.size, kMinObjectSize);
      EXPECT_LE(p.size, kMaxObjectSize);
      for (int t = 0; t < spec.frames; ++t) {
        const double x = p.x + p.vx * t, y = p.y + p.vy * t, h = p.size / 2;
        ASSERT_GE(x - h, -1e-9) << batch.captions[i] << " frame " << t;
        ASSERT_LE(x + h, spec.width + 1e-9) << batch.captions[i] << " frame " << t;
        ASSERT_GE(y - h, -1e-9) << batch.captions[i] << " frame " << t;
        ASSERT_LE(y + h, spec.height + 1e-9) << batch.captions[i] << " frame " << t;
        const int x0 = static_cast<int>(std::floor(x - h)), x1 = static_cast<int>(std::ceil(x + h));
        const int y0 = static_cast<int>(std::floor(y - h)), y1 = static_cast<int>(std::ceil(y + h));
        outside[t].slice(0, y0, y1).slice(1, x0, x1).fill_(false);
      }
    }
    const torch::Tensor pixels = ((batch.video[i] + 1) * 127.5).round();
    for (int c = 0; c < 3; ++c) {
      ASSERT_TRUE(pixels[c].masked_select(outside).eq(bg[c]).all().item<bool>())
          << batch.captions[i];
    }
  }
}

TEST(SyntheticDataTest, MotionMatchesCaptionedDirectionAndSpeed) {
  ClipSpec spec;
  spec.two_objects_probability = 0;
  const ClipBatch batch = RenderClipBatch(spec, 200, 11);
  int slow = 0, fast = 0;
  for (int i = 0; i < 200; ++i) {
    const ObjectDescription& o = batch.scenes[i].objects[0];
    const ObjectPlacement& p = batch.layouts[i].objects[0];
    const double speed = o.speed == Speed::kFast ? 1.5 : 0.75;
    (o.speed == Speed::kFast ? fast : slow)++;
    EXPECT_NEAR(std::hypot(p.vx, p.vy), speed, 1e-9);
    // The rendered pixels move as captioned: centroid of the coverage, frame by frame.
    const torch::Tensor alpha = Alpha(batch.video[i], batch.scenes[i]);
    const torch::Tensor ys = torch::arange(spec.height, torch::kFloat).view({1, -1, 1}) + 0.5;
    const torch::Tensor xs = torch::arange(spec.width, torch::kFloat).view({1, 1, -1}) + 0.5;
    const torch::Tensor mass = alpha.sum({1, 2});
    const torch::Tensor cx = (alpha * xs).sum({1, 2}) / mass;
    const torch::Tensor cy = (alpha * ys).sum({1, 2}) / mass;
    const double dx = (cx[-1] - cx[0]).item<double>() / (spec.frames - 1);
    const double dy = (cy[-1] - cy[0]).item<double>() / (spec.frames - 1);
    EXPECT_NEAR(std::hypot(dx, dy), speed, 0.03) << batch.captions[i];
    const auto want = DirectionVector(o.direction);
    const double angle = std::acos((dx * want[0] + dy * want[1]) / std::hypot(dx, dy));
    EXPECT_LT(angle, 2 * kPi / 180) << batch.captions[i];
    // Anti-aliasing keeps sub-pixel motion smooth: the centroid moves at a steady rate (up
    // to the box filter's error on slanted edges, a few hundredths of a pixel).
    for (int t = 1; t + 1 < spec.frames; ++t) {
      const double ax = (cx[t + 1] - 2 * cx[t] + cx[t - 1]).item<double>();
      const double ay = (cy[t + 1] - 2 * cy[t] + cy[t - 1]).item<double>();
      ASSERT_LT(std::hypot(ax, ay), 0.1) << batch.captions[i] << " frame " << t;
    }
  }
  EXPECT_GT(slow, 50);
  EXPECT_GT(fast, 50);
}

TEST(SyntheticDataTest, CoveredAreaMatchesTheShape) {
  ClipSpec spec;
  spec.two_objects_probability = 0;
  const ClipBatch batch = RenderClipBatch(spec, 150, 21);
  for (int i = 0; i < 150; ++i) {
    const double s = batch.layouts[i].objects[0].size;
    const Shape shape = batch.scenes[i].objects[0].shape;
    const double want = shape == Shape::kSquare   ? s * s
                        : shape == Shape::kCircle ? kPi * s * s / 4
                                                  : s * s / 2;
    const torch::Tensor area = Alpha(batch.video[i], batch.scenes[i]).sum({1, 2});
    EXPECT_NEAR(area.min().item<double>(), want, 0.015 * want) << batch.captions[i];
    EXPECT_NEAR(area.max().item<double>(), want, 0.015 * want) << batch.captions[i];
  }
}

TEST(SyntheticDataTest, TwoObjectsNeverOverlapAndHaveDifferentColours) {
  ClipSpec spec;
  spec.two_objects_probability = 1;
  spec.fast_probability = 0.5;
  const ClipBatch batch = RenderClipBatch(spec, 300, 5);
  for (int i = 0; i < 300; ++i) {
    ASSERT_EQ(batch.scenes[i].objects.size(), 2u);
    EXPECT_NE(batch.scenes[i].objects[0].color, batch.scenes[i].objects[1].color);
    const ObjectPlacement& a = batch.layouts[i].objects[0];
    const ObjectPlacement& b = batch.layouts[i].objects[1];
    for (int t = 0; t < spec.frames; ++t) {
      const double gap_x = std::abs(a.x + a.vx * t - b.x - b.vx * t) - (a.size + b.size) / 2;
      const double gap_y = std::abs(a.y + a.vy * t - b.y - b.vy * t) - (a.size + b.size) / 2;
      ASSERT_TRUE(gap_x >= 1 || gap_y >= 1) << batch.captions[i] << " frame " << t;
    }
  }
}

TEST(SyntheticDataTest, CaptionsParseBackToTheirScenesInBothSpeedForms) {
  const ClipSpec spec;
  const ClipBatch batch = RenderClipBatch(spec, 500, 13);
  int stated_slow = 0, omitted_slow = 0, two = 0, gray = 0;
  for (int i = 0; i < 500; ++i) {
    absl::StatusOr<SceneDescription> parsed = ParseCaption(batch.captions[i]);
    ASSERT_TRUE(parsed.ok()) << batch.captions[i] << ": " << parsed.status();
    EXPECT_EQ(*parsed, batch.scenes[i]) << batch.captions[i];
    EXPECT_EQ(FormatCaption(*parsed), batch.captions[i]);
    for (const ObjectDescription& o : parsed->objects) {
      if (o.speed == Speed::kSlow) (o.speed_stated ? stated_slow : omitted_slow)++;
    }
    two += parsed->objects.size() == 2;
    gray += parsed->gray_background;
  }
  EXPECT_GT(stated_slow, 100);
  EXPECT_GT(omitted_slow, 100);
  EXPECT_NEAR(two / 500.0, spec.two_objects_probability, 0.07);
  EXPECT_NEAR(gray / 500.0, spec.gray_background_probability, 0.07);
}

TEST(SyntheticDataTest, ParsesTheFullGrammar) {
  absl::StatusOr<SceneDescription> s = ParseCaption(
      "  A Fast red  Triangle moving up-left and a slow white circle moving down\ton a gray "
      "background ");
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_EQ(s->objects.size(), 2u);
  EXPECT_TRUE(s->gray_background);
  EXPECT_EQ(s->objects[0].color, Color::kRed);
  EXPECT_EQ(s->objects[0].shape, Shape::kTriangle);
  EXPECT_EQ(s->objects[0].direction, Direction::kUpLeft);
  EXPECT_EQ(s->objects[0].speed, Speed::kFast);
  EXPECT_EQ(s->objects[1].color, Color::kWhite);
  EXPECT_EQ(s->objects[1].shape, Shape::kCircle);
  EXPECT_EQ(s->objects[1].direction, Direction::kDown);
  EXPECT_EQ(s->objects[1].speed, Speed::kSlow);
  EXPECT_TRUE(s->objects[1].speed_stated);

  absl::StatusOr<SceneDescription> plain = ParseCaption("a magenta square moving down-right");
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_EQ(plain->objects[0].speed, Speed::kSlow);
  EXPECT_FALSE(plain->objects[0].speed_stated);
  EXPECT_FALSE(plain->gray_background);
}

TEST(SyntheticDataTest, ParseErrorsSayWhatIsWrong) {
  struct Case {
    const char* caption;
    const char* message;
  };
  const Case cases[] = {
      {"", "caption: empty"},
      {"a purple circle moving left", "word 2 'purple': expected a colour"},
      {"a red hexagon moving left", "word 3 'hexagon': expected a shape"},
      {"a red circle moving sideways", "word 5 'sideways': expected a direction"},
      {"a red circle going left", "word 4 'going': expected 'moving'"},
      {"a red circle moving", "ended after word 4: expected a direction"},
      {"a red circle moving left a blue square moving up", "word 6 'a': expected 'and'"},
      {"a red circle moving left and a blue circle moving up and a green square moving left",
       "at most 2 objects"},
      {"a red circle moving left and a red square moving up",
       "both objects are red; the two objects must have different colours"},
      {"a red circle moving left on a grey background", "expected 'gray'"},
      {"a red circle moving left on a gray background please", "expected the end"},
      {"the red circle moving left", "word 1 'the': expected 'a'"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<SceneDescription> s = ParseCaption(c.caption);
    ASSERT_FALSE(s.ok()) << c.caption;
    EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_TRUE(absl::StrContains(s.status().message(), c.message))
        << c.caption << " -> " << s.status().message();
  }
}

TEST(SyntheticDataTest, RenderSceneIsDeterministicAndMatchesTheScene) {
  absl::StatusOr<SceneDescription> scene =
      ParseCaption("a fast blue square moving right and a yellow circle moving up");
  ASSERT_TRUE(scene.ok());
  const ClipSpec spec;
  SceneLayout layout;
  absl::StatusOr<torch::Tensor> a = RenderScene(*scene, spec, 1000000007, &layout);
  absl::StatusOr<torch::Tensor> b = RenderScene(*scene, spec, 1000000007);
  absl::StatusOr<torch::Tensor> c = RenderScene(*scene, spec, 1000000008);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok()) << a.status();
  EXPECT_EQ(a->sizes(), (std::vector<int64_t>{3, 16, 32, 32}));
  EXPECT_TRUE(torch::equal(*a, *b));
  EXPECT_FALSE(torch::equal(*a, *c));
  ASSERT_EQ(layout.objects.size(), 2u);
  EXPECT_NEAR(layout.objects[0].vx, 1.5, 1e-12);
  EXPECT_NEAR(layout.objects[1].vy, -0.75, 1e-12);
  EXPECT_TRUE(torch::equal(*a, RenderLayout(*scene, layout, spec)));
}

TEST(SyntheticDataTest, RenderSceneRejectsBadScenesAndSpecs) {
  SceneDescription empty;
  EXPECT_EQ(RenderScene(empty, ClipSpec{}, 1).status().code(),
            absl::StatusCode::kInvalidArgument);
  SceneDescription same;
  same.objects.resize(2);  // both red
  absl::Status s = RenderScene(same, ClipSpec{}, 1).status();
  EXPECT_TRUE(absl::StrContains(s.message(), "different colours")) << s;
  SceneDescription one;
  one.objects.resize(1);
  ClipSpec long_clip;
  long_clip.frames = 20;
  s = RenderScene(one, long_clip, 1).status();
  EXPECT_TRUE(absl::StrContains(s.message(), "frames: 20 is too many")) << s;
}

TEST(SyntheticDataTest, ValidateClipSpecNamesTheField) {
  ClipSpec spec;
  EXPECT_TRUE(ValidateClipSpec(spec).ok());
  spec.frames = 6;
  EXPECT_TRUE(absl::StrContains(ValidateClipSpec(spec).message(), "frames: 6"));
  spec = ClipSpec{};
  spec.width = 8;
  EXPECT_TRUE(absl::StrContains(ValidateClipSpec(spec).message(), "width: 8"));
  spec = ClipSpec{};
  spec.fast_probability = 1.5;
  EXPECT_TRUE(absl::StrContains(ValidateClipSpec(spec).message(), "fast_probability"));
  spec = ClipSpec{};
  spec.frames = 32;
  spec.height = spec.width = 64;
  EXPECT_TRUE(ValidateClipSpec(spec).ok());
}

TEST(SyntheticDataTest, EveryDirectionColourAndShapeIsDrawn) {
  const ClipBatch batch = RenderClipBatch(ClipSpec{}, 400, 17);
  std::set<int> colors, shapes, directions;
  for (const SceneDescription& s : batch.scenes) {
    for (const ObjectDescription& o : s.objects) {
      colors.insert(static_cast<int>(o.color));
      shapes.insert(static_cast<int>(o.shape));
      directions.insert(static_cast<int>(o.direction));
    }
  }
  EXPECT_EQ(colors.size(), static_cast<size_t>(kNumColors));
  EXPECT_EQ(shapes.size(), static_cast<size_t>(kNumShapes));
  EXPECT_EQ(directions.size(), static_cast<size_t>(kNumDirections));
}

}  // namespace
}  // namespace tpdiff::train
