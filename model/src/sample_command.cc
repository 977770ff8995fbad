#include "tpdiff/model/sample_command.h"

#include <chrono>
#include <filesystem>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "tpdiff/core/device.h"
#include "tpdiff/model/latent_job.h"
#include "tpdiff/model/model_package.h"
#include "tpdiff/model/safetensors.h"
#include "tpdiff/spec/status_macros.h"

namespace tpdiff::model {
namespace {

namespace fs = std::filesystem;

absl::StatusOr<std::vector<int>> ParseSteps(absl::string_view text) {
  std::vector<int> steps;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    int value = 0;
    if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(part), &value) || value < 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--steps: \"", part, "\" is not a positive integer (expected e.g. 4,4,4)"));
    }
    steps.push_back(value);
  }
  return steps;
}

}  // namespace

absl::Status RunSampleCommand(const SampleCommandOptions& o, std::ostream& out) {
  if (o.package.empty()) return absl::InvalidArgumentError("--package: required");
  if (o.out_latents.empty()) return absl::InvalidArgumentError("--out-latents: required");
  absl::StatusOr<torch::Device> device = core::ResolveDevice(o.device, "--device");
  if (!device.ok()) return device.status();
  absl::StatusOr<std::unique_ptr<LoadedModel>> model = LoadModelPackage(o.package, *device);
  if (!model.ok()) return model.status();
  std::shared_ptr<const LatentModules> modules = (*model)->latent_modules();
  const spec::ModelManifest& manifest = (*model)->manifest();
  if (modules == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--package: ", o.package, " is of kind \"", manifest.kind, "\"; expected \"latent\""));
  }

  LatentJobRequest job;
  job.prompt = o.prompt;
  job.negative_prompt = o.negative_prompt;
  job.seed = o.seed;
  job.guidance_scale = o.guidance > 0 ? o.guidance : manifest.default_guidance_scale;
  absl::StatusOr<std::vector<int>> steps = ParseSteps(o.steps);
  if (!steps.ok()) return steps.status();
  job.stage_steps = steps->empty() ? manifest.default_stage_steps : *std::move(steps);
  if (o.stages == 1) {
    job.vanilla = true;
  } else if (o.stages != 0 && o.stages != static_cast<int>(job.stage_steps.size())) {
    return absl::InvalidArgumentError(absl::StrCat("--stages: ", o.stages, " but --steps has ",
                                                   job.stage_steps.size(), " values"));
  }
  job.num_frames = o.frames > 0 ? o.frames : manifest.frames;
  job.height = o.height > 0 ? o.height : manifest.height;
  job.width = o.width > 0 ? o.width : manifest.width;
  // The manifest's sizes are maxima: the load-time checks ran the modules at them.
  for (const auto& [flag, value, maximum] :
       {std::tuple{"--frames", job.num_frames, manifest.frames},
        std::tuple{"--height", job.height, manifest.height},
        std::tuple{"--width", job.width, manifest.width}}) {
    if (value > maximum) {
      return absl::InvalidArgumentError(
          absl::StrCat(flag, ": ", value, " exceeds the model's maximum of ", maximum));
    }
  }

  std::unique_ptr<core::Denoiser> denoiser = (*model)->NewDenoiser();
  absl::StatusOr<LatentJobResult> result =
      SampleLatentJob(manifest, (*model)->tokenizer(), *modules, *denoiser, job);
  if (!result.ok()) return result.status();
  NamedTensors latents = {{"latents", result->latents}};
  for (const torch::Tensor& stage : result->stage_latents) {
    // Stage k has T'_k latent frames; stage 1 is the full frame count.
    const int k = static_cast<int>(result->stage_latents.size()) -
                  static_cast<int>(&stage - result->stage_latents.data());
    latents.emplace_back(absl::StrCat("stage", k, ".latents"), stage);
  }
  const std::map<std::string, std::string> metadata = {
      {"seed", absl::StrCat(o.seed)},
      {"guidance", absl::StrCat(job.guidance_scale)},
      {"prompt", o.prompt},
      {"negative_prompt", o.negative_prompt}};
  TPDIFF_RETURN_IF_ERROR(WriteSafetensors(o.out_latents, latents, metadata));

  double decode_seconds = 0;
  if (!o.out_frames.empty()) {
    const auto begin = std::chrono::steady_clock::now();
    absl::StatusOr<torch::Tensor> frames = modules->Decode(result->latents);
    if (!frames.ok()) return frames.status();
    decode_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
    std::error_code ec;
    fs::create_directories(o.out_frames, ec);
    if (ec) {
      return absl::InternalError(absl::StrCat("--out-frames: ", o.out_frames, ": ", ec.message()));
    }
    TPDIFF_RETURN_IF_ERROR(WriteSafetensors(
        (fs::path(o.out_frames) / "frames.safetensors").string(), {{"frames", *frames}},
        metadata));
  }
  out << absl::StrFormat("encode_seconds %.6f\nsample_seconds %.6f\ndecode_seconds %.6f\n",
                         result->encode_seconds, result->sample_seconds, decode_seconds);
  return absl::OkStatus();
}

}  // namespace tpdiff::model
