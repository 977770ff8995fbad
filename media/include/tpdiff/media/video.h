#ifndef TPDIFF_MEDIA_VIDEO_H_
#define TPDIFF_MEDIA_VIDEO_H_

// Plain RGB24 video clips, the currency between the sampler (which converts its tensors),
// the encoders and the decoders. No LibTorch here, so the server can link media/ alone.

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/status/status.h"

namespace tpdiff::media {

// Limits that keep a request from asking FFmpeg for gigabytes; INVALID_ARGUMENT beyond them.
inline constexpr int kMaxDimension = 8192;  // pixels, either side, after scaling
inline constexpr double kMaxFps = 1000.0;
inline constexpr int kMaxScale = 16;
// Auto scale aims for at least this many pixels on the short side (players show tiny clips
// as a speck, and browsers smooth them into mush; nearest neighbour keeps the pixels crisp).
inline constexpr int kAutoScaleTargetShortSide = 256;

// A clip: `frames` frames of `height` x `width` RGB24 pixels, frame-major then row-major,
// 3 bytes per pixel (R, G, B). A value type; copying copies the pixels.
struct Video {
  int frames = 0;
  int height = 0;
  int width = 0;
  double fps = 0.0;
  std::vector<uint8_t> rgb;

  // Allocates `rgb` (zeroed) for the given shape.
  static Video Blank(int frames, int height, int width, double fps);

  size_t frame_bytes() const { return static_cast<size_t>(height) * width * 3; }
  const uint8_t* frame(int i) const { return rgb.data() + i * frame_bytes(); }
  uint8_t* frame(int i) { return rgb.data() + i * frame_bytes(); }
  // Pointer to pixel (y, x) of frame f: three bytes R, G, B.
  const uint8_t* pixel(int f, int y, int x) const {
    return frame(f) + (static_cast<size_t>(y) * width + x) * 3;
  }
};

// OK, or INVALID_ARGUMENT naming the field: frames, height, width (1..kMaxDimension), fps
// (finite, in (0, kMaxFps]) and rgb (its size must be frames*height*width*3).
absl::Status ValidateVideo(const Video& video);

// The smallest integer factor that makes min(height, width) * factor >= the target short
// side, at most kMaxScale and never so large that a side exceeds kMaxDimension; at least 1.
int AutoScaleFactor(int height, int width);

// Each pixel becomes a factor x factor block. factor must be >= 1 (1 returns a copy).
Video UpscaleNearest(const Video& video, int factor);

}  // namespace tpdiff::media

#endif  // TPDIFF_MEDIA_VIDEO_H_
