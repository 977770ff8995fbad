#include "tpdiff/server/validation.h"

#include <cmath>
#include <set>
#include <string>
#include <vector>

#include <google/protobuf/util/time_util.h>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace tpdiff::server {
namespace {

using tpdiff::v1::GenerateRequest;
using tpdiff::v1::ModelInfo;

absl::Status Invalid(absl::string_view field, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", what));
}

// Mirrors the worker's tokenizer (lower-case, split on whitespace) so that a prompt the front
// accepts never fails on the worker.
absl::Status CheckPrompt(absl::string_view field, const std::string& text, bool required,
                         const ModelInfo& model) {
  if (required && absl::StripAsciiWhitespace(text).empty()) return Invalid(field, "required");
  if (text.size() > kMaxPromptBytes) {
    return Invalid(field, absl::StrCat(text.size(), " bytes exceeds the maximum of ",
                                       kMaxPromptBytes));
  }
  std::vector<std::string> words =
      absl::StrSplit(absl::AsciiStrToLower(text), absl::ByAnyChar(" \t\r\n\f\v"), absl::SkipEmpty());
  if (words.size() > kMaxPromptWords) {
    return Invalid(field, absl::StrCat(words.size(), " words exceeds the maximum of ",
                                       kMaxPromptWords));
  }
  if (model.vocabulary().empty()) return absl::OkStatus();  // model announced no vocabulary
  std::set<std::string> vocabulary(model.vocabulary().begin(), model.vocabulary().end());
  std::vector<std::string> unknown;
  for (const std::string& word : words) {
    if (vocabulary.count(word) == 0 &&
        std::find(unknown.begin(), unknown.end(), word) == unknown.end()) {
      unknown.push_back(word);
    }
  }
  if (!unknown.empty()) {
    return Invalid(field, absl::StrCat("words not in the vocabulary of model \"", model.name(),
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
                                                const ModelRegistry& models,
                                                uint64_t random_seed) {
  GenerateRequest out = request;
  if (out.request_id().size() > kMaxRequestIdBytes) {
    return Invalid("request_id", absl::StrCat(out.request_id().size(),
                                              " bytes exceeds the maximum of ", kMaxRequestIdBytes));
  }
  if (out.model().empty()) out.set_model(models.DefaultModel());
  absl::StatusOr<ModelInfo> model = models.Find(out.model());
  if (!model.ok()) {
    std::vector<std::string> names;
    for (const ModelInfo& m : models.List()) names.push_back(m.name());
    return Invalid("model", absl::StrCat("unknown model \"", out.model(), "\"; known models: ",
                                         names.empty() ? "none" : absl::StrJoin(names, ", ")));
  }

  if (absl::Status s = CheckEnum("sampler", out.sampler(), tpdiff::v1::Sampler_IsValid); !s.ok()) return s;
  if (absl::Status s = CheckEnum("priority", out.priority(), tpdiff::v1::Priority_IsValid); !s.ok()) return s;
  if (absl::Status s = CheckEnum("preview.format", out.preview().format(), tpdiff::v1::VideoFormat_IsValid); !s.ok()) return s;
  if (absl::Status s = CheckEnum("output.format", out.output().format(), tpdiff::v1::VideoFormat_IsValid); !s.ok()) return s;
  if (out.sampler() == tpdiff::v1::SAMPLER_UNSPECIFIED) out.set_sampler(tpdiff::v1::SAMPLER_TPDIFF);
  if (out.priority() == tpdiff::v1::PRIORITY_UNSPECIFIED) out.set_priority(tpdiff::v1::PRIORITY_STANDARD);
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

  if (absl::Status s = CheckPrompt("prompt", out.prompt(), /*required=*/true, *model); !s.ok()) return s;
  if (absl::Status s = CheckPrompt("negative_prompt", out.negative_prompt(), false, *model); !s.ok()) return s;

  // Stage count first: num_frames must be divisible by 2^(K-1).
  if (out.stage_steps().empty()) *out.mutable_stage_steps() = model->default_stage_steps();
  const int stages = out.stage_steps_size();
  if (stages < 1 || stages > kMaxStages) {
    return Invalid("stage_steps", absl::StrCat(stages, " stages is outside 1..", kMaxStages));
  }
  const int model_stages = model->default_stage_steps_size();
  if (out.sampler() == tpdiff::v1::SAMPLER_TPDIFF && model_stages > 0 && stages > model_stages) {
    return Invalid("stage_steps", absl::StrCat(stages, " stages exceeds the model's maximum of ",
                                               model_stages));
  }
  for (int i = 0; i < stages; ++i) {
    const uint32_t steps = out.stage_steps(i);
    if (steps < 1 || steps > kMaxStepsPerStage) {
      return Invalid(absl::StrCat("stage_steps[", i, "]"),
                     absl::StrCat(steps, " is outside 1..", kMaxStepsPerStage));
    }
  }

  if (out.num_frames() == 0) out.set_num_frames(model->frames());
  if (out.num_frames() > model->frames()) {
    return Invalid("num_frames", absl::StrCat(out.num_frames(), " exceeds the model's maximum of ",
                                              model->frames()));
  }
  const uint32_t multiple = out.sampler() == tpdiff::v1::SAMPLER_TPDIFF ? 1u << (stages - 1) : 1u;
  if (out.num_frames() % multiple != 0) {
    return Invalid("num_frames", absl::StrCat(out.num_frames(), " is not a multiple of ", multiple,
                                              " (2^(stages-1) for ", stages, " stages)"));
  }
  if (out.height() == 0) out.set_height(model->height());
  if (out.width() == 0) out.set_width(model->width());
  if (out.height() != model->height()) {
    return Invalid("height", absl::StrCat(out.height(), " is not supported; model \"", model->name(),
                                          "\" generates only height ", model->height()));
  }
  if (out.width() != model->width()) {
    return Invalid("width", absl::StrCat(out.width(), " is not supported; model \"", model->name(),
                                         "\" generates only width ", model->width()));
  }
  if (out.fps() == 0) out.set_fps(model->fps() > 0 ? model->fps() : 8);
  if (out.fps() < kMinFps || out.fps() > kMaxFps) {
    return Invalid("fps", absl::StrCat(out.fps(), " is outside ", kMinFps, "..", kMaxFps));
  }

  const float guidance = out.guidance_scale();
  if (std::isnan(guidance) || guidance < 0.0f || guidance > kMaxGuidanceScale) {
    return Invalid("guidance_scale", absl::StrCat(guidance, " is outside 0..", kMaxGuidanceScale));
  }
  if (guidance == 0.0f) {
    out.set_guidance_scale(model->default_guidance_scale() > 0 ? model->default_guidance_scale() : 1.0f);
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

}  // namespace tpdiff::server
