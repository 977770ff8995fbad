#ifndef TPDIFF_SPEC_REQUEST_H_
#define TPDIFF_SPEC_REQUEST_H_

// Request defaults and limits, shared by the front (admission) and the worker (which must not
// rely on the front to stay inside its model's limits). Needs tpdiff::proto: not built with
// TPDIFF_CORE_ONLY.

#include <cstdint>

#include "absl/status/statusor.h"
#include "tpdiff/spec/limits.h"
#include "tpdiff/spec/manifest.h"
#include "tpdiff/v1/video_generation.pb.h"

namespace tpdiff::spec {

// Checks `request` against the model's limits and the API's (limits.h), and returns it with
// every default filled in (model, num_frames, height, width, fps, stage_steps,
// guidance_scale, sampler, priority, formats, cancel_on_disconnect). An empty `model` becomes
// `manifest.name`; resolving any other name to a manifest is the caller's. Prompts are
// checked by the model's tokenizer (Tokenizer::CheckLength, and for word tokenizers the
// vocabulary), so a prompt accepted here encodes. Latent models take num_frames by
// LatentShapeFor (1 + temporal_factor N with a causal first frame). A zero seed is replaced by `random_seed` (1 when that is 0 too). Errors are
// INVALID_ARGUMENT naming the field and the limit, e.g.
// "num_frames: 40 exceeds the model's maximum of 16".
absl::StatusOr<tpdiff::v1::GenerateRequest> ValidateAndFill(
    const tpdiff::v1::GenerateRequest& request, const ModelManifest& manifest,
    const Tokenizer& tokenizer, uint64_t random_seed);

}  // namespace tpdiff::spec

#endif  // TPDIFF_SPEC_REQUEST_H_
