#ifndef TPDIFF_SPEC_MODEL_INFO_H_
#define TPDIFF_SPEC_MODEL_INFO_H_

// A model as the API describes it (ListModels, a worker's Hello). Needs tpdiff::proto: not
// built with TPDIFF_CORE_ONLY.

#include "absl/status/statusor.h"
#include "tpdiff/spec/manifest.h"
#include "tpdiff/v1/video_generation.pb.h"

namespace tpdiff::spec {

// What ListModels reports and a worker announces: the manifest's limits and defaults, its
// description, the tokenizer (kind, max_tokens; the vocabulary of a word tokenizer or the
// serialized SentencePiece model) and, for latent models, the latent geometry (LatentInfo).
tpdiff::v1::ModelInfo ToModelInfo(const ModelManifest& manifest, const Tokenizer& tokenizer);

// The inverse for a model the front knows only from a worker's Hello: the manifest fields
// that requests are validated against (no boundaries, files, network or schedule details)
// and the tokenizer.
// INVALID_ARGUMENT "model_info.<field>: ..." for an announcement no manifest could produce.
absl::StatusOr<ModelSpec> ModelSpecFromInfo(const tpdiff::v1::ModelInfo& info);

}  // namespace tpdiff::spec

#endif  // TPDIFF_SPEC_MODEL_INFO_H_
