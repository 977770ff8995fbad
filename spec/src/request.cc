#include "tpdiff/spec/request.h"

#include <google/protobuf/util/time_util.h>

#include <cmath>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "tpdiff/spec/stage_plan.h"
#include "tpdiff/spec/status_macros.h"

namespace tpdiff::spec {
namespace {

using tpdiff::v1::GenerateRequest;

absl::Status Invalid(absl::string_view field, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", what));
}

// The words are the tokenizer's, so that a prompt accepted here always encodes.
absl::Status CheckPrompt(absl::string_view field, const std::string& text, bool required,
                         const ModelManifest& model, const Tokenizer& tokenizer) {
  if (required && absl::StripAsciiWhitespace(text).empty()) return Invalid(field, "required");
  if (text.size() > kMaxPromptBytes) {
    return Invalid(field, absl::StrCat(text.size(), " bytes exceeds the maximum of ",
                                       kMaxPromptBytes));
  }
  TPDIFF_RETURN_IF_ERROR(tokenizer.CheckLength(field, text));
  if (tokenizer.kind() != TokenizerKind::kWords) return absl::OkStatus();
  const std::vector<std::string> unknown = tokenizer.UnknownWords(Tokenizer::SplitWords(text));
  if (!unknown.empty()) {
    return Invalid(field, absl::StrCat("words not in the vocabulary of model \"", model.name,
                                       "\": ", absl::StrJoin(unknown, ", ")));
  }
  return absl::OkStatus();
}

absl::Status CheckEnum(absl::string_view field, int value, bool (*is_valid)(int)) {
  if (!is_valid(value)) return Invalid(field, absl::StrCat("unknown enum value ", value));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<GenerateRequest> ValidateAndFill(const GenerateRequest& request,
                                                const ModelManifest& model,
                                                const Tokenizer& tokenizer,
                                                uint64_t random_seed) {
  GenerateRequest out = request;
  if (out.request_id().size() > kMaxRequestIdBytes) {
    return Invalid("request_id", absl::StrCat(out.request_id().size(),
                                              " bytes exceeds the maximum of ", kMaxRequestIdBytes));
  }
  if (out.model().empty()) out.set_model(model.name);

  TPDIFF_RETURN_IF_ERROR(CheckEnum("sampler", out.sampler(), tpdiff::v1::Sampler_IsValid));
  TPDIFF_RETURN_IF_ERROR(CheckEnum("priority", out.priority(), tpdiff::v1::Priority_IsValid));
  TPDIFF_RETURN_IF_ERROR(
      CheckEnum("preview.format", out.preview().format(), tpdiff::v1::VideoFormat_IsValid));
  TPDIFF_RETURN_IF_ERROR(
      CheckEnum("output.format", out.output().format(), tpdiff::v1::VideoFormat_IsValid));
  if (out.sampler() == tpdiff::v1::SAMPLER_UNSPECIFIED) out.set_sampler(tpdiff::v1::SAMPLER_TPDIFF);
  if (out.priority() == tpdiff::v1::PRIORITY_UNSPECIFIED) {
    out.set_priority(tpdiff::v1::PRIORITY_STANDARD);
  }
  if (out.preview().format() == tpdiff::v1::VIDEO_FORMAT_UNSPECIFIED) {
    out.mutable_preview()->set_format(tpdiff::v1::VIDEO_FORMAT_GIF);
  }
  if (out.output().format() == tpdiff::v1::VIDEO_FORMAT_UNSPECIFIED) {
    out.mutable_output()->set_format(tpdiff::v1::VIDEO_FORMAT_MP4);
  }
  if (out.output().scale() > kMaxOutputScale) {
    return Invalid("output.scale", absl::StrCat(out.output().scale(), " exceeds the maximum of ",
                                                kMaxOutputScale));
  }

  TPDIFF_RETURN_IF_ERROR(CheckPrompt("prompt", out.prompt(), /*required=*/true, model, tokenizer));
  TPDIFF_RETURN_IF_ERROR(
      CheckPrompt("negative_prompt", out.negative_prompt(), /*required=*/false, model, tokenizer));

  // Stage count first: num_frames must be divisible by 2^(K-1).
  if (out.stage_steps().empty()) {
    for (int steps : model.default_stage_steps) out.add_stage_steps(static_cast<uint32_t>(steps));
  }
  const int stages = out.stage_steps_size();
  if (stages < 1 || stages > StagePlan::kMaxStages) {
    return Invalid("stage_steps",
                   absl::StrCat(stages, " stages is outside 1..", StagePlan::kMaxStages));
  }
  if (out.sampler() == tpdiff::v1::SAMPLER_TPDIFF && stages > model.stages) {
    return Invalid("stage_steps", absl::StrCat(stages, " stages exceeds the model's maximum of ",
                                               model.stages));
  }
  for (int i = 0; i < stages; ++i) {
    const uint32_t steps = out.stage_steps(i);
    if (steps < 1 || steps > kMaxRequestStepsPerStage) {
      return Invalid(absl::StrCat("stage_steps[", i, "]"),
                     absl::StrCat(steps, " is outside 1..", kMaxRequestStepsPerStage));
    }
  }

  const uint32_t max_frames = static_cast<uint32_t>(model.frames);
  if (out.num_frames() == 0) out.set_num_frames(max_frames);
  if (out.num_frames() > max_frames) {
    return Invalid("num_frames", absl::StrCat(out.num_frames(), " exceeds the model's maximum of ",
                                              max_frames));
  }
  const uint32_t multiple = out.sampler() == tpdiff::v1::SAMPLER_TPDIFF ? 1u << (stages - 1) : 1u;
  if (model.is_latent()) {
    // Vanilla sampling is one stage, so only TPDiff needs the pooled frames divisible.
    const int plan_stages = out.sampler() == tpdiff::v1::SAMPLER_TPDIFF ? stages : 1;
    absl::StatusOr<LatentShape> shape =
        LatentShapeFor(model.latent.vae, plan_stages, static_cast<int>(out.num_frames()),
                       model.height, model.width, "num_frames");
    if (!shape.ok()) return shape.status();
  } else if (out.num_frames() % multiple != 0) {
    return Invalid("num_frames", absl::StrCat(out.num_frames(), " is not a multiple of ", multiple,
                                              " (2^(stages-1) for ", stages, " stages)"));
  }
  if (out.height() == 0) out.set_height(static_cast<uint32_t>(model.height));
  if (out.width() == 0) out.set_width(static_cast<uint32_t>(model.width));
  if (out.height() != static_cast<uint32_t>(model.height)) {
    return Invalid("height", absl::StrCat(out.height(), " is not supported; model \"", model.name,
                                          "\" generates only height ", model.height));
  }
  if (out.width() != static_cast<uint32_t>(model.width)) {
    return Invalid("width", absl::StrCat(out.width(), " is not supported; model \"", model.name,
                                         "\" generates only width ", model.width));
  }
  if (out.fps() == 0) out.set_fps(static_cast<uint32_t>(model.fps));
  if (out.fps() < kMinFps || out.fps() > kMaxFps) {
    return Invalid("fps", absl::StrCat(out.fps(), " is outside ", kMinFps, "..", kMaxFps));
  }

  const float guidance = out.guidance_scale();
  if (std::isnan(guidance) || guidance < 0.0f || guidance > kMaxGuidanceScale) {
    return Invalid("guidance_scale", absl::StrCat(guidance, " is outside 0..", kMaxGuidanceScale));
  }
  // 0 is proto3's "unset"; a model whose default is 0 gets 1 (no guidance).
  if (guidance == 0.0f) {
    out.set_guidance_scale(model.default_guidance_scale > 0
                               ? static_cast<float>(model.default_guidance_scale)
                               : 1.0f);
  }

  if (out.has_max_queue_wait()) {
    const google::protobuf::Duration& wait = out.max_queue_wait();
    if (wait.seconds() < google::protobuf::util::TimeUtil::kDurationMinSeconds ||
        wait.seconds() > google::protobuf::util::TimeUtil::kDurationMaxSeconds ||
        wait.nanos() <= -1000000000 || wait.nanos() >= 1000000000 ||
        (wait.seconds() > 0 && wait.nanos() < 0) || (wait.seconds() < 0 && wait.nanos() > 0)) {
      return Invalid("max_queue_wait", "not a valid duration");
    }
    if (wait.seconds() < 0 || wait.nanos() < 0) {
      return Invalid("max_queue_wait", "must not be negative");
    }
  }
  if (out.seed() == 0) out.set_seed(random_seed == 0 ? 1 : random_seed);
  if (!out.has_cancel_on_disconnect()) out.set_cancel_on_disconnect(true);
  return out;
}

}  // namespace tpdiff::spec
