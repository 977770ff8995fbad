#ifndef TPDIFF_SPEC_LIMITS_H_
#define TPDIFF_SPEC_LIMITS_H_

// Limits of the API that do not come from a model manifest. The front checks requests
// against them and so does the worker (the same ValidateAndFill, request.h); a manifest's
// defaults must lie inside them, or every request left at the defaults would fail.
// The stage count and the prompt length are the stage plan's and the tokenizer's:
// StagePlan::kMaxStages and Tokenizer::max_tokens() (at most Tokenizer::kMaxModelTokens).

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"

namespace tpdiff::spec {

inline constexpr uint32_t kMaxPromptBytes = 512;
inline constexpr uint32_t kMaxRequestIdBytes = 128;
// Job ids are the front's own ("job-" and 16 hex digits); longer ones cannot exist.
inline constexpr uint32_t kMaxJobIdBytes = 64;
// Client input quoted back in an error message (EchoForMessage): at most this many bytes, so
// a status message stays far below gRPC's default 8 KiB metadata limit whatever was sent.
inline constexpr uint32_t kMaxEchoedBytes = 64;
inline constexpr uint32_t kMinFps = 1;
inline constexpr uint32_t kMaxFps = 60;
// Per stage, for a request. Lower than StagePlan::kMaxStepsPerStage (the method's limit,
// which offline evaluation may use) to bound the work one request can ask for.
inline constexpr uint32_t kMaxRequestStepsPerStage = 100;
inline constexpr float kMaxGuidanceScale = 20.0f;
inline constexpr uint32_t kMaxOutputScale = 16;
// model.json "description": free text that ListModels reports.
inline constexpr uint32_t kMaxDescriptionBytes = 1024;

// `value` as an error message quotes it: whole when it has at most kMaxEchoedBytes bytes,
// else its first kMaxEchoedBytes bytes followed by "... (<n> bytes)".
std::string EchoForMessage(absl::string_view value);

}  // namespace tpdiff::spec

#endif  // TPDIFF_SPEC_LIMITS_H_
