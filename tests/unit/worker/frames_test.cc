#include "tpdiff/worker/frames.h"

#include <ATen/ATen.h>

#include <gtest/gtest.h>

namespace tpdiff::worker {
namespace {

TEST(TensorToVideoTest, MapsMinusOneToOneOntoTheByteRangeInRgbOrder) {
  // [B=1, C=3, T=2, H=1, W=2]
  torch::Tensor t = torch::zeros({1, 3, 2, 1, 2});
  t.index_put_({0, 0, 0, 0, 0}, -1.0);  // R of frame 0, pixel 0
  t.index_put_({0, 1, 0, 0, 0}, 1.0);   // G
  t.index_put_({0, 2, 0, 0, 0}, 0.0);   // B
  t.index_put_({0, 0, 1, 0, 1}, 3.0);   // out of range: clamped
  t.index_put_({0, 2, 1, 0, 1}, -7.0);
  auto video = TensorToVideo(t, 8.0);
  ASSERT_TRUE(video.ok()) << video.status();
  EXPECT_EQ(video->frames, 2);
  EXPECT_EQ(video->height, 1);
  EXPECT_EQ(video->width, 2);
  EXPECT_DOUBLE_EQ(video->fps, 8.0);
  const uint8_t* p = video->pixel(0, 0, 0);
  EXPECT_EQ(p[0], 0);
  EXPECT_EQ(p[1], 255);
  EXPECT_EQ(p[2], 128);
  const uint8_t* q = video->pixel(1, 0, 1);
  EXPECT_EQ(q[0], 255);
  EXPECT_EQ(q[1], 128);
  EXPECT_EQ(q[2], 0);
}

TEST(TensorToVideoTest, GreyBecomesThreeEqualChannelsAndTheIndexPicksTheClip) {
  torch::Tensor t = torch::full({2, 1, 1, 2, 2}, -1.0);
  t[1].fill_(1.0);
  auto video = TensorToVideo(t, 4.0, /*index=*/1);
  ASSERT_TRUE(video.ok()) << video.status();
  for (uint8_t v : video->rgb) EXPECT_EQ(v, 255);
  EXPECT_EQ(video->rgb.size(), 2u * 2u * 3u);
}

TEST(TensorToVideoTest, RejectsShapesItCannotEncode) {
  EXPECT_EQ(TensorToVideo(torch::zeros({1, 2, 1, 2, 2}), 8).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(TensorToVideo(torch::zeros({2, 2}), 8).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(TensorToVideo(torch::zeros({1, 3, 1, 2, 2}), 8, 3).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(TensorToVideo(torch::Tensor(), 8).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace tpdiff::worker
