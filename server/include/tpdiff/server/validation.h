#ifndef TPDIFF_SERVER_VALIDATION_H_
#define TPDIFF_SERVER_VALIDATION_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "tpdiff/server/model_registry.h"
#include "tpdiff/v1/video_generation.pb.h"

namespace tpdiff::server {

// Resolves the request's model in `models` (an empty `model` is models.DefaultModel();
// INVALID_ARGUMENT "model: unknown model "<m>"; known models: ..." otherwise) and runs
// spec::ValidateAndFill against its manifest and tokenizer: the same checks and defaults the
// worker applies. `random_seed` replaces a zero seed.
absl::StatusOr<tpdiff::v1::GenerateRequest> ValidateAndFill(
    const tpdiff::v1::GenerateRequest& request, const ModelRegistry& models,
    uint64_t random_seed);

}  // namespace tpdiff::server

#endif  // TPDIFF_SERVER_VALIDATION_H_
