#include "tpdiff/client/request.h"

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "tpdiff/common/proto_time.h"

namespace tpdiff::client {

namespace api = ::tpdiff::v1;

absl::StatusOr<std::vector<uint32_t>> ParseStageSteps(absl::string_view text) {
  std::vector<uint32_t> steps;
  if (absl::StripAsciiWhitespace(text).empty()) return steps;
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    uint32_t value = 0;
    if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(part), &value) || value == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--steps: \"", part, "\" is not a positive integer (expected e.g. 10,10,10)"));
    }
    steps.push_back(value);
  }
  return steps;
}

absl::StatusOr<api::VideoFormat> ParseVideoFormat(absl::string_view name) {
  const std::string n = absl::AsciiStrToLower(name);
  if (n == "mp4") return api::VIDEO_FORMAT_MP4;
  if (n == "webm") return api::VIDEO_FORMAT_WEBM;
  if (n == "gif") return api::VIDEO_FORMAT_GIF;
  if (n == "png" || n == "zip") return api::VIDEO_FORMAT_PNG_FRAMES;
  return absl::InvalidArgumentError(
      absl::StrCat("format: \"", name, "\" is not one of mp4, webm, gif, png"));
}

absl::StatusOr<api::Sampler> ParseSampler(absl::string_view name) {
  const std::string n = absl::AsciiStrToLower(name);
  if (n == "tpdiff" || n.empty()) return api::SAMPLER_TPDIFF;
  if (n == "vanilla") return api::SAMPLER_VANILLA;
  return absl::InvalidArgumentError(
      absl::StrCat("--sampler: \"", name, "\" is not one of tpdiff, vanilla"));
}

absl::StatusOr<api::Priority> ParsePriority(absl::string_view name) {
  const std::string n = absl::AsciiStrToLower(name);
  if (n == "interactive") return api::PRIORITY_INTERACTIVE;
  if (n == "standard" || n.empty()) return api::PRIORITY_STANDARD;
  if (n == "batch") return api::PRIORITY_BATCH;
  return absl::InvalidArgumentError(
      absl::StrCat("--priority: \"", name, "\" is not one of interactive, standard, batch"));
}

absl::StatusOr<api::GenerateRequest> BuildRequest(const RequestFlags& flags) {
  if (flags.prompt.empty()) return absl::InvalidArgumentError("--prompt: required");
  api::GenerateRequest r;
  r.set_request_id(flags.request_id);
  r.set_model(flags.model);
  r.set_prompt(flags.prompt);
  r.set_negative_prompt(flags.negative_prompt);
  r.set_seed(flags.seed);
  r.set_num_frames(flags.frames);
  r.set_height(flags.height);
  r.set_width(flags.width);
  r.set_fps(flags.fps);
  r.set_guidance_scale(static_cast<float>(flags.guidance));
  absl::StatusOr<std::vector<uint32_t>> steps = ParseStageSteps(flags.steps);
  if (!steps.ok()) return steps.status();
  for (uint32_t s : *steps) r.add_stage_steps(s);
  absl::StatusOr<api::Sampler> sampler = ParseSampler(flags.sampler);
  if (!sampler.ok()) return sampler.status();
  r.set_sampler(*sampler);
  absl::StatusOr<api::Priority> priority = ParsePriority(flags.priority);
  if (!priority.ok()) return priority.status();
  r.set_priority(*priority);
  absl::StatusOr<api::VideoFormat> format = ParseVideoFormat(flags.format);
  if (!format.ok()) return absl::InvalidArgumentError(absl::StrCat("--", format.status().message()));
  r.mutable_output()->set_format(*format);
  r.mutable_output()->set_scale(flags.scale);
  if (flags.previews) {
    absl::StatusOr<api::VideoFormat> preview = ParseVideoFormat(flags.preview_format);
    if (!preview.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("--preview_", preview.status().message()));
    }
    r.mutable_preview()->set_enabled(true);
    r.mutable_preview()->set_format(*preview);
  }
  if (flags.max_queue_wait > absl::ZeroDuration()) {
    *r.mutable_max_queue_wait() = common::ToProtoDuration(flags.max_queue_wait);
  }
  return r;
}

std::string ExtensionForMime(absl::string_view mime) {
  if (mime == "image/gif") return "gif";
  if (mime == "video/mp4") return "mp4";
  if (mime == "video/webm") return "webm";
  if (mime == "application/zip") return "zip";
  return "bin";
}

}  // namespace tpdiff::client
