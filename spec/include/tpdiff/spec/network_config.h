#ifndef TPDIFF_SPEC_NETWORK_CONFIG_H_
#define TPDIFF_SPEC_NETWORK_CONFIG_H_

// The built-in network's hyper-parameters: the "network" object of a builtin model.json.
// They live here, not beside the network (tpdiff::model), because they are part of the
// manifest that the front and the worker must accept or reject alike.

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace tpdiff::spec {

struct NetworkConfig {
  int channels = 3;     // video channels
  int patch = 8;        // square spatial patch edge; H and W must be multiples of it
  int max_height = 32;  // spatial position table covers (max_height/patch) x (max_width/patch)
  int max_width = 32;
  int width = 128;      // token width D
  int depth = 4;        // number of space/time blocks
  int heads = 4;        // attention heads; width % heads == 0
  int mlp_ratio = 4;    // MLP hidden = mlp_ratio * width
  int vocab_size = 26;  // token ids 0..vocab_size-1; 0 = padding
  int max_tokens = 32;  // caption length limit (learned positions)
  int text_width = 96;  // caption encoder width
  int text_layers = 2;  // caption encoder transformer layers
  int text_heads = 4;
  int max_stages = 5;  // stage embedding table covers 1..max_stages
  // Pixel-space refinement after the patch decoder: two 3x3 convolutions per frame over
  // [decoded patches, x_t] with this many hidden channels, added residually (last one starts
  // at zero). Patches are decoded independently, so without it 8x8 seams stay visible.
  // 0 = none (packages written before it existed have no such key).
  int refine_channels = 0;
  // 1 = every caption word also adds its own learned vector (zero at start) to the
  // conditioning vector, next to the caption encoder's pooled state, so a word reaches every
  // block even where the encoder has mapped several words to nearly one state (the shapes
  // models do that for the eight motion directions). 0 = none (older packages, presets):
  // 2,000 warm-started steps with it did not teach the shapes model direction (model card).
  int word_conditioning = 0;
  // > 0: a learned layout prior per caption word and space-time position, summed over the
  // caption's words and added to the input tokens (zero at start): [vocab, frames, patches, D]
  // over this many full-rate frame positions (stage-consistent, like the temporal positions).
  // "moving left" has to put the object on the right early and on the left late, a
  // word x frame x position pattern that the other conditioning paths reach only through
  // products the network has to discover; this path has it directly. 0 = none.
  int word_layout_frames = 0;

  // INVALID_ARGUMENT naming the field and its limit.
  absl::Status Validate() const;
  std::string ToJson() const;  // a JSON object
  // Unknown keys are rejected (a typo must not silently fall back to a default); missing
  // keys keep their defaults. Errors name the field ("network.width: ...").
  static absl::StatusOr<NetworkConfig> FromJson(const std::string& json_text);
};

}  // namespace tpdiff::spec

#endif  // TPDIFF_SPEC_NETWORK_CONFIG_H_
