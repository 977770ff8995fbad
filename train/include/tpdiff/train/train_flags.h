#ifndef TPDIFF_TRAIN_TRAIN_FLAGS_H_
#define TPDIFF_TRAIN_TRAIN_FLAGS_H_

// tpdiff-train's flags that need parsing beyond Abseil's, so train/train_main.cc only copies
// values. Errors are INVALID_ARGUMENT naming the flag.

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "tpdiff/model/network.h"
#include "tpdiff/train/trainer.h"

namespace tpdiff::train {

// --mode: "tpdiff" or "vanilla".
absl::StatusOr<TrainMode> ParseTrainMode(absl::string_view name);

// --stage-weights: comma-separated numbers, e.g. "1,1,3"; empty = none (uniform).
absl::StatusOr<std::vector<double>> ParseStageWeights(absl::string_view text);

// --preset and the network overrides; a field left at its default keeps the preset's value.
struct NetworkFlags {
  std::string preset = "cpu";                                      // model::NetworkPreset
  int width = 0, depth = 0, heads = 0, patch = 0, text_width = 0;  // 0 = preset's
  int text_layers = -1, refine_channels = -1;                      // -1 = preset's
  int word_conditioning = -1, word_layout_frames = -1;             // -1 = preset's
};
absl::StatusOr<model::NetworkConfig> NetworkFromFlags(const NetworkFlags& flags);

}  // namespace tpdiff::train

#endif  // TPDIFF_TRAIN_TRAIN_FLAGS_H_
