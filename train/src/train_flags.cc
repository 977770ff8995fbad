#include "tpdiff/train/train_flags.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace tpdiff::train {

absl::StatusOr<TrainMode> ParseTrainMode(absl::string_view name) {
  if (name == "tpdiff") return TrainMode::kTpdiff;
  if (name == "vanilla") return TrainMode::kVanilla;
  return absl::InvalidArgumentError(
      absl::StrCat("--mode: \"", name, "\" is not tpdiff or vanilla"));
}

absl::StatusOr<std::vector<double>> ParseStageWeights(absl::string_view text) {
  std::vector<double> weights;
  for (absl::string_view w : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    double v = 0;
    if (!absl::SimpleAtod(w, &v)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--stage-weights: \"", w, "\" is not a number (example: 1,1,3)"));
    }
    weights.push_back(v);
  }
  return weights;
}

absl::StatusOr<model::NetworkConfig> NetworkFromFlags(const NetworkFlags& f) {
  absl::StatusOr<model::NetworkConfig> network = model::NetworkPreset(f.preset);
  if (!network.ok()) return absl::InvalidArgumentError(network.status().message());
  if (f.width > 0) network->width = f.width;
  if (f.depth > 0) network->depth = f.depth;
  if (f.heads > 0) network->heads = f.heads;
  if (f.patch > 0) network->patch = f.patch;
  if (f.text_width > 0) network->text_width = f.text_width;
  if (f.text_layers >= 0) network->text_layers = f.text_layers;
  if (f.refine_channels >= 0) network->refine_channels = f.refine_channels;
  if (f.word_conditioning >= 0) network->word_conditioning = f.word_conditioning;
  if (f.word_layout_frames >= 0) network->word_layout_frames = f.word_layout_frames;
  return network;
}

}  // namespace tpdiff::train
