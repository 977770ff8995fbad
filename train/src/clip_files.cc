#include "tpdiff/train/clip_files.h"

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "tpdiff/model/safetensors.h"

namespace tpdiff::train {

absl::Status RenderClipsToFile(const ClipSpec& spec, int count, uint64_t seed,
                               const std::string& path) {
  if (absl::Status s = ValidateClipSpec(spec); !s.ok()) return s;
  constexpr int kMaxClips = 100000;
  if (count < 1 || count > kMaxClips) {
    return absl::InvalidArgumentError(
        absl::StrCat("count: ", count, " is outside 1..", kMaxClips));
  }
  ClipBatch batch = RenderClipBatch(spec, count, seed);
  const nlohmann::json captions = batch.captions;
  return model::WriteSafetensors(path, {{"video", batch.video}},
                                 {{"captions", captions.dump()}, {"seed", std::to_string(seed)}});
}

absl::StatusOr<std::vector<torch::Tensor>> ReadVideosFile(const std::string& path) {
  absl::StatusOr<model::SafetensorsContents> contents = model::ReadSafetensors(path);
  if (!contents.ok()) return contents.status();
  auto it = contents->tensors.find("video");
  if (it == contents->tensors.end()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": no tensor named \"video\""));
  }
  const torch::Tensor& video = it->second;
  if (video.dim() != 5 || video.size(1) != 3) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": tensor \"video\" must be [N, 3, T, H, W], got ", video.dim(), " dimensions"));
  }
  std::vector<torch::Tensor> videos;
  for (int64_t i = 0; i < video.size(0); ++i) videos.push_back(video[i]);
  return videos;
}

}  // namespace tpdiff::train
