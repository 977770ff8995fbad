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

struct ModelManifest {
  std::string name;
  std::string kind;  // "builtin" | "torchscript"
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
};

// Parses and validates model.json text. Errors are INVALID_ARGUMENT and name the field:
// unknown fields (listing the known ones), missing or mistyped fields, values out of range
// (frames not divisible by 2^(stages-1), steps count != stages, defaults outside the API's
// limits, boundaries the stage plan rejects, a "network" object the network rejects).
absl::StatusOr<ModelManifest> ParseManifest(absl::string_view json_text);
std::string ManifestToJson(const ModelManifest& manifest);

// Reads <dir>/model.json. NOT_FOUND for a missing folder or file; other errors are
// ParseManifest's, prefixed with the file's path.
absl::StatusOr<ModelManifest> ReadManifest(const std::string& dir);

// A package's manifest and vocabulary: what requests are validated against.
struct ModelSpec {
  ModelManifest manifest;
  Tokenizer tokenizer;
};

// The rules that join the manifest and the vocabulary: a builtin network must cover the
// manifest's channels, size, stages, vocabulary and prompt length. Errors name the field.
absl::Status CheckPackage(const ModelManifest& manifest, const Tokenizer& tokenizer);

// Reads <dir>/model.json and its vocabulary file and runs CheckPackage: everything about a
// package except its weights. Manifest errors are ReadManifest's; the others are prefixed
// with `dir` (NOT_FOUND "<dir>: vocabulary_file: ..." for a missing vocabulary).
absl::StatusOr<ModelSpec> ReadModelPackageSpec(const std::string& dir);

}  // namespace tpdiff::spec

#endif  // TPDIFF_SPEC_MANIFEST_H_
