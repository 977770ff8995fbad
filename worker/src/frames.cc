#include "tpdiff/worker/frames.h"

#include <ATen/ATen.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "tpdiff/core/torch_status.h"

namespace tpdiff::worker {

absl::StatusOr<media::Video> TensorToVideo(const torch::Tensor& video, double fps,
                                           int64_t index) {
  if (!video.defined()) return absl::InvalidArgumentError("video: undefined tensor");
  torch::Tensor clip = video;
  if (clip.dim() == 5) {
    if (index < 0 || index >= clip.size(0)) {
      return absl::InvalidArgumentError(
          absl::StrCat("video: clip ", index, " out of a batch of ", clip.size(0)));
    }
    clip = clip[index];
  }
  if (clip.dim() != 4) {
    return absl::InvalidArgumentError(
        absl::StrCat("video: expected [B, C, T, H, W] or [C, T, H, W], got ", clip.dim(),
                     " dimensions"));
  }
  const int64_t channels = clip.size(0);
  if (channels != 1 && channels != 3) {
    return absl::InvalidArgumentError(
        absl::StrCat("video: ", channels, " channels; only 1 (grey) or 3 (RGB) can be encoded"));
  }
  absl::StatusOr<torch::Tensor> pixels = core::TorchCall("converting frames", [&] {
    // [C, T, H, W] -> [T, H, W, C] uint8 in frame-major, row-major, RGB order.
    torch::Tensor u8 = ((clip.detach().to(torch::kCPU, torch::kFloat).clamp(-1, 1) + 1) * 127.5)
                           .round()
                           .to(torch::kUInt8);
    if (channels == 1) u8 = u8.expand({3, -1, -1, -1});
    return u8.permute({1, 2, 3, 0}).contiguous();
  });
  if (!pixels.ok()) return pixels.status();
  media::Video out = media::Video::Blank(static_cast<int>(clip.size(1)),
                                         static_cast<int>(clip.size(2)),
                                         static_cast<int>(clip.size(3)), fps);
  std::memcpy(out.rgb.data(), pixels->data_ptr<uint8_t>(), out.rgb.size());
  return out;
}

}  // namespace tpdiff::worker
