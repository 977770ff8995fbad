#include "tpdiff/media/video.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace tpdiff::media {

Video Video::Blank(int frames, int height, int width, double fps) {
  Video v;
  v.frames = frames;
  v.height = height;
  v.width = width;
  v.fps = fps;
  v.rgb.assign(static_cast<size_t>(frames) * height * width * 3, 0);
  return v;
}

absl::Status ValidateVideo(const Video& video) {
  if (video.frames <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("frames: ", video.frames, " must be >= 1"));
  }
  if (video.height <= 0 || video.height > kMaxDimension) {
    return absl::InvalidArgumentError(
        absl::StrCat("height: ", video.height, " must be in [1, ", kMaxDimension, "]"));
  }
  if (video.width <= 0 || video.width > kMaxDimension) {
    return absl::InvalidArgumentError(
        absl::StrCat("width: ", video.width, " must be in [1, ", kMaxDimension, "]"));
  }
  if (!std::isfinite(video.fps) || video.fps <= 0 || video.fps > kMaxFps) {
    return absl::InvalidArgumentError(
        absl::StrCat("fps: ", video.fps, " must be > 0 and at most ", kMaxFps));
  }
  const uint64_t expected = static_cast<uint64_t>(video.frames) * video.height * video.width * 3;
  if (video.rgb.size() != expected) {
    return absl::InvalidArgumentError(absl::StrCat(
        "rgb: ", video.rgb.size(), " bytes, but frames*height*width*3 = ", video.frames, "*",
        video.height, "*", video.width, "*3 = ", expected));
  }
  return absl::OkStatus();
}

int AutoScaleFactor(int height, int width) {
  const int short_side = std::max(1, std::min(height, width));
  const int long_side = std::max(1, std::max(height, width));
  int factor = (kAutoScaleTargetShortSide + short_side - 1) / short_side;
  factor = std::min({factor, kMaxScale, kMaxDimension / long_side});
  return std::max(1, factor);
}

Video UpscaleNearest(const Video& video, int factor) {
  if (factor <= 1) return video;
  Video out = Video::Blank(video.frames, video.height * factor, video.width * factor, video.fps);
  const size_t out_row = static_cast<size_t>(out.width) * 3;
  for (int f = 0; f < video.frames; ++f) {
    uint8_t* dst = out.frame(f);
    for (int y = 0; y < video.height; ++y) {
      // Widen one source row, then repeat it factor times.
      uint8_t* first = dst + static_cast<size_t>(y) * factor * out_row;
      const uint8_t* src = video.pixel(f, y, 0);
      for (int x = 0; x < video.width; ++x) {
        for (int k = 0; k < factor; ++k) std::memcpy(first + (x * factor + k) * 3, src + x * 3, 3);
      }
      for (int k = 1; k < factor; ++k) std::memcpy(first + k * out_row, first, out_row);
    }
  }
  return out;
}

}  // namespace tpdiff::media
