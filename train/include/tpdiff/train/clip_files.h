#ifndef TPDIFF_TRAIN_CLIP_FILES_H_
#define TPDIFF_TRAIN_CLIP_FILES_H_

// Synthetic clips and sampled videos as safetensors files, so that code outside this
// library (the Python fine-tuning kit's example) trains on the same clips and is scored by
// the same detector as the built-in model.
//
// Clips file: tensor "video" [N, 3, T, H, W] float32 in [-1, 1]; metadata "captions" (a JSON
// list of N captions) and "seed". Videos file (to score): tensor "video" [N, 3, T, H, W]
// float32 in [-1, 1] (or uint8), one video per prompt, in the prompt list's order.
//
// Stateless free functions, thread-safe.

#include <cstdint>
#include <string>
#include <vector>

#include <torch/types.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "tpdiff/train/synthetic_data.h"

namespace tpdiff::train {

// RenderClipBatch(spec, count, seed) written to `path`. INVALID_ARGUMENT for a bad spec
// (ValidateClipSpec) or count outside 1..100000.
absl::Status RenderClipsToFile(const ClipSpec& spec, int count, uint64_t seed,
                               const std::string& path);

// The videos of a videos file, each [3, T, H, W] on the CPU. NOT_FOUND / DATA_LOSS from the
// reader, INVALID_ARGUMENT naming the tensor for a missing "video" or a wrong rank.
absl::StatusOr<std::vector<torch::Tensor>> ReadVideosFile(const std::string& path);

}  // namespace tpdiff::train

#endif  // TPDIFF_TRAIN_CLIP_FILES_H_
