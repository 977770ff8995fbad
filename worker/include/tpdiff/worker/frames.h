#ifndef TPDIFF_WORKER_FRAMES_H_
#define TPDIFF_WORKER_FRAMES_H_

#include <torch/types.h>

#include "absl/status/statusor.h"
#include "tpdiff/media/video.h"

namespace tpdiff::worker {

// Converts one clip of a sampled batch to RGB24 for the encoders: `video` is [B, C, T, H, W]
// (or [C, T, H, W]) with values in [-1, 1] (clamped), on any device; `index` picks the clip.
// One channel becomes grey; three are R, G, B. INVALID_ARGUMENT for other shapes or channel
// counts, naming the problem.
absl::StatusOr<media::Video> TensorToVideo(const torch::Tensor& video, double fps,
                                           int64_t index = 0);

}  // namespace tpdiff::worker

#endif  // TPDIFF_WORKER_FRAMES_H_
