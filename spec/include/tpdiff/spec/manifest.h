#ifndef TPDIFF_SPEC_MANIFEST_H_
#define TPDIFF_SPEC_MANIFEST_H_

// Model packages as the front and the worker read them: a folder models/<name>/ with
// model.json (the manifest), a weights file and a vocabulary file. This is the one parser:
// the front (listing models, validating requests) and the worker (loading weights,
// tpdiff::model) call the same functions, so they accept and reject the same packages with
// the same messages. Only the weights file is left to the worker's loader.

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "tpdiff/spec/schedule.h"
#include "tpdiff/spec/tokenizer.h"

namespace tpdiff::spec {

inline constexpr char kManifestFile[] = "model.json";

// Precision of a latent package's module on CUDA (CPU always runs float32).
enum class ModuleDtype { kFloat32, kFloat16, kBFloat16 };
absl::string_view ModuleDtypeName(ModuleDtype dtype);  // "float32" | "float16" | "bfloat16"

struct TokenizerConfig {
  TokenizerKind kind = TokenizerKind::kSentencePiece;
  std::string file;  // relative to the package folder: the .model file or a vocabulary
  int max_tokens = Tokenizer::kMaxTokens;  // 1..Tokenizer::kMaxModelTokens
};

struct TextEncoderConfig {
  std::string file;  // TorchScript: forward(tokens [B,L] int64, mask [B,L] int64) -> [B,L,dim]
  int dim = 0;
  ModuleDtype dtype = ModuleDtype::kFloat32;
};

struct DenoiserConfig {
  std::string file;  // TorchScript: forward(latents, timestep, stage, context, mask)
  ModuleDtype dtype = ModuleDtype::kFloat32;
};

struct VaeConfig {
  std::string file;  // TorchScript decoder: forward(latents [B,C,T',h,w]) -> [B,3,T,H,W]
  int latent_channels = 4;
  int temporal_factor = 1;
  int spatial_factor = 8;
  bool causal_first_frame = false;  // T = 1 + temporal_factor (T' - 1)
  // Per latent channel, or one value for all: the decoder's input is z / scale + shift.
  std::vector<double> scale = {1.0};
  std::vector<double> shift = {0.0};
  ModuleDtype dtype = ModuleDtype::kFloat32;
};

// What kind "latent" adds: three TorchScript modules over a latent space.
struct LatentConfig {
  ScheduleConfig schedule;
  TokenizerConfig tokenizer;
  TextEncoderConfig text_encoder;
  DenoiserConfig denoiser;
  VaeConfig vae;
};

// A latent video's grid: what the denoiser samples for a pixel video.
struct LatentShape {
  int frames = 0;  // T'
  int height = 0;  // h
  int width = 0;   // w
};

// The latent grid of `frames` x `height` x `width` pixels for `stages` stages: the one rule
// for manifests (the front) and requests (front and worker). INVALID_ARGUMENT naming
// `frames_field` ("frames" in model.json, "num_frames" in a request), "height" or "width":
// frames must be 1 + temporal_factor N (causal_first_frame) or temporal_factor N, with N a
// positive multiple of 2^(stages-1); height and width multiples of spatial_factor.
absl::StatusOr<LatentShape> LatentShapeFor(const VaeConfig& vae, int stages, int frames,
                                           int height, int width,
                                           absl::string_view frames_field = "frames");

struct ModelManifest {
  std::string name;
  std::string kind;  // "builtin" | "torchscript" | "latent"
  std::string description;  // optional free text, at most kMaxDescriptionBytes
  Parameterization parameterization = Parameterization::kFlowMatching;
  int frames = 16;  // default and maximum number of frames
  int height = 32;
  int width = 32;
  int channels = 3;
  int fps = 8;
  int stages = 3;
  std::vector<double> boundaries;        // nominal, noisiest first; empty = uniform
  std::vector<int> default_stage_steps;  // one per stage, noisiest first
  double default_guidance_scale = 1.0;
  std::string weights_file;         // relative to the package folder
  std::string vocabulary_file;      // one word per line; token id = line number + 1
  std::string network_config_json;  // builtin only: the network hyper-parameters
  // kind "latent" only. frames, height and width above are then PIXELS (defaults and
  // maxima), channels is 3 (the decoded video) and parameterization follows schedule.type.
  LatentConfig latent;

  bool is_latent() const { return kind == "latent"; }
};

// The noise schedule of a package: v1, its parameterization; latent, its "schedule" object.
NoiseSchedule ManifestSchedule(const ModelManifest& manifest);

// Parses and validates model.json text (every kind). Errors are INVALID_ARGUMENT and name the
// field ("vae.scale: ..." inside an object):
// unknown fields (listing the known ones), missing or mistyped fields, values out of range
// (frames not divisible by 2^(stages-1), steps count != stages, defaults outside the API's
// limits, boundaries the stage plan rejects, a "network" object the network rejects).
absl::StatusOr<ModelManifest> ParseManifest(absl::string_view json_text);
std::string ManifestToJson(const ModelManifest& manifest);

// Reads <dir>/model.json. NOT_FOUND for a missing folder or file; other errors are
// ParseManifest's, prefixed with the file's path.
absl::StatusOr<ModelManifest> ReadManifest(const std::string& dir);

// A package's manifest and tokenizer (its vocabulary or SentencePiece model): what requests
// are validated against.
struct ModelSpec {
  ModelManifest manifest;
  Tokenizer tokenizer;
};

// The rules that join the manifest and the tokenizer: a builtin network must cover the
// manifest's channels, size, stages, vocabulary and prompt length; a latent package's
// tokenizer must be of the manifest's kind and length. Errors name the field.
absl::Status CheckPackage(const ModelManifest& manifest, const Tokenizer& tokenizer);

// Reads <dir>/model.json and its vocabulary file (latent: tokenizer.file) and runs
// CheckPackage: everything about a package except its weights and modules. Manifest errors
// are ReadManifest's; the others are prefixed with `dir` (NOT_FOUND
// "<dir>: vocabulary_file: ..." / "<dir>: tokenizer.file: ..." for a missing file).
absl::StatusOr<ModelSpec> ReadModelPackageSpec(const std::string& dir);

}  // namespace tpdiff::spec

#endif  // TPDIFF_SPEC_MANIFEST_H_
