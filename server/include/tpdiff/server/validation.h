#ifndef TPDIFF_SERVER_VALIDATION_H_
#define TPDIFF_SERVER_VALIDATION_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "tpdiff/server/model_registry.h"
#include "tpdiff/v1/video_generation.pb.h"

namespace tpdiff::server {

// Request limits that do not come from a model manifest.
inline constexpr uint32_t kMaxPromptBytes = 512;
inline constexpr uint32_t kMaxPromptWords = 32;  // the tokenizer's context length
inline constexpr uint32_t kMaxRequestIdBytes = 128;
inline constexpr uint32_t kMinFps = 1;
inline constexpr uint32_t kMaxFps = 60;
inline constexpr int kMaxStages = 5;
inline constexpr uint32_t kMaxStepsPerStage = 100;
inline constexpr float kMaxGuidanceScale = 20.0f;
inline constexpr uint32_t kMaxOutputScale = 16;

// Checks `request` against the model's limits and the API's, and returns it with every
// default filled in (model, num_frames, height, width, fps, stage_steps, guidance_scale,
// sampler, priority, formats, cancel_on_disconnect). A zero seed is replaced by
// `random_seed` (non-zero). Errors are INVALID_ARGUMENT naming the field and the limit, e.g.
// "num_frames: 40 exceeds the model's maximum of 16".
absl::StatusOr<tpdiff::v1::GenerateRequest> ValidateAndFill(
    const tpdiff::v1::GenerateRequest& request, const ModelRegistry& models,
    uint64_t random_seed);

}  // namespace tpdiff::server

#endif  // TPDIFF_SERVER_VALIDATION_H_
