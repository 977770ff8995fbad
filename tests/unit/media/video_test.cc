#include "tpdiff/media/video.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

namespace tpdiff::media {
namespace {

TEST(AutoScaleFactorTest, SmallestFactorReachingTheTargetShortSide) {
  EXPECT_EQ(AutoScaleFactor(32, 32), 8);  // 256 exactly
  EXPECT_EQ(AutoScaleFactor(48, 64), 6);  // 5 gives 240 < 256, 6 gives 288
  EXPECT_EQ(AutoScaleFactor(64, 48), 6);  // the short side counts, whichever it is
  EXPECT_EQ(AutoScaleFactor(255, 400), 2);
  EXPECT_EQ(AutoScaleFactor(256, 256), 1);
  EXPECT_EQ(AutoScaleFactor(720, 1280), 1);
}

TEST(AutoScaleFactorTest, CappedAtMaxScaleAndMaxDimension) {
  EXPECT_EQ(AutoScaleFactor(1, 1), kMaxScale);
  EXPECT_EQ(AutoScaleFactor(8, 8), kMaxScale);  // 32 would be needed
  EXPECT_EQ(AutoScaleFactor(20, 1000), 8);      // 13 wanted, but 1000 * 9 > 8192
  EXPECT_EQ(AutoScaleFactor(1, kMaxDimension), 1);
}

TEST(UpscaleNearestTest, EachPixelBecomesABlock) {
  Video v = Video::Blank(2, 2, 3, 5.0);
  for (size_t i = 0; i < v.rgb.size(); ++i) v.rgb[i] = static_cast<uint8_t>(i);
  const Video up = UpscaleNearest(v, 3);
  ASSERT_EQ(up.frames, 2);
  ASSERT_EQ(up.height, 6);
  ASSERT_EQ(up.width, 9);
  EXPECT_EQ(up.fps, 5.0);
  ASSERT_EQ(up.rgb.size(), 2u * 6 * 9 * 3);
  for (int f = 0; f < 2; ++f) {
    for (int y = 0; y < 6; ++y) {
      for (int x = 0; x < 9; ++x) {
        for (int c = 0; c < 3; ++c) {
          ASSERT_EQ(up.pixel(f, y, x)[c], v.pixel(f, y / 3, x / 3)[c])
              << "f=" << f << " y=" << y << " x=" << x << " c=" << c;
        }
      }
    }
  }
  EXPECT_EQ(UpscaleNearest(v, 1).rgb, v.rgb);
}

void ExpectInvalid(const Video& v, const std::string& field) {
  const absl::Status s = ValidateVideo(v);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_EQ(s.message().substr(0, field.size() + 1), field + ":") << s;
}

TEST(ValidateVideoTest, NamesTheBadField) {
  const Video good = Video::Blank(2, 4, 6, 8.0);
  EXPECT_TRUE(ValidateVideo(good).ok());

  Video v = good;
  v.frames = 0;
  ExpectInvalid(v, "frames");
  v = good;
  v.height = 0;
  ExpectInvalid(v, "height");
  v = good;
  v.width = kMaxDimension + 1;
  ExpectInvalid(v, "width");
  v = good;
  v.fps = 0;
  ExpectInvalid(v, "fps");
  v.fps = std::numeric_limits<double>::quiet_NaN();
  ExpectInvalid(v, "fps");
  v = good;
  v.rgb.pop_back();
  ExpectInvalid(v, "rgb");
}

}  // namespace
}  // namespace tpdiff::media
