// libFuzzer target: the one reader of a package's model.json and vocabulary
// (spec::ParseManifest and spec::ReadModelPackageSpec, which the front and the worker both
// call), on the fuzz bytes as model.json in a scratch package folder.
//
// Checks beyond "does not crash or throw": an accepted manifest survives ManifestToJson and a
// second parse unchanged; errors are INVALID_ARGUMENT (or NOT_FOUND for a missing vocabulary
// file); an accepted package keeps its limits through the ModelInfo a worker announces; its
// defaults admit a request (a manifest whose defaults every request would fail is an error);
// and the worker's stage plan for those defaults exists.

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "tpdiff/spec/manifest.h"
#include "tpdiff/spec/model_info.h"
#include "tpdiff/spec/request.h"
#include "tpdiff/spec/stage_plan.h"

namespace {

namespace fs = std::filesystem;
namespace spec = tpdiff::spec;

[[noreturn]] void Fail(const std::string& what, const std::string& text) {
  std::fprintf(stderr, "manifest_fuzzer: %s\nmodel.json: %s\n", what.c_str(), text.c_str());
  std::abort();
}

void WriteFile(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

// A scratch package folder holding vocab.txt; model.json is rewritten for every input.
const fs::path& PackageDir() {
  static const fs::path* dir = [] {
    std::string tmpl = (fs::temp_directory_path() / "tpdiff-manifest-fuzz-XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) std::abort();
    auto* path = new fs::path(tmpl);
    WriteFile(*path / "vocab.txt", "a\nred\ncircle\n");
    return path;
  }();
  return *dir;
}

bool SameManifest(const spec::ModelManifest& a, const spec::ModelManifest& b) {
  return a.name == b.name && a.kind == b.kind && a.description == b.description &&
         a.parameterization == b.parameterization && a.frames == b.frames &&
         a.height == b.height && a.width == b.width && a.channels == b.channels &&
         a.fps == b.fps && a.stages == b.stages && a.boundaries == b.boundaries &&
         a.default_stage_steps == b.default_stage_steps &&
         a.default_guidance_scale == b.default_guidance_scale && a.weights_file == b.weights_file &&
         a.vocabulary_file == b.vocabulary_file && a.network_config_json == b.network_config_json;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);

  absl::StatusOr<spec::ModelManifest> parsed = spec::ParseManifest(text);
  if (!parsed.ok() && parsed.status().code() != absl::StatusCode::kInvalidArgument) {
    Fail("parse: error is not INVALID_ARGUMENT: " + parsed.status().ToString(), text);
  }
  if (parsed.ok()) {
    const std::string again = spec::ManifestToJson(*parsed);
    absl::StatusOr<spec::ModelManifest> reparsed = spec::ParseManifest(again);
    if (!reparsed.ok()) Fail("ManifestToJson output rejected: " + reparsed.status().ToString(), text);
    if (!SameManifest(*parsed, *reparsed)) Fail("round trip changed the manifest", text);
  }

  const fs::path& dir = PackageDir();
  WriteFile(dir / "model.json", text);
  absl::StatusOr<spec::ModelSpec> package = spec::ReadModelPackageSpec(dir.string());
  if (!package.ok()) {
    if (package.status().code() != absl::StatusCode::kInvalidArgument &&
        package.status().code() != absl::StatusCode::kNotFound) {
      Fail("package: unexpected error code: " + package.status().ToString(), text);
    }
    return 0;
  }
  if (!parsed.ok()) Fail("package accepted a manifest ParseManifest rejects", text);
  const spec::ModelManifest& m = package->manifest;

  // What a worker announces, read back by the front, keeps the limits.
  absl::StatusOr<spec::ModelSpec> announced =
      spec::ModelSpecFromInfo(spec::ToModelInfo(m, package->tokenizer));
  if (!announced.ok()) Fail("ModelSpecFromInfo rejects: " + announced.status().ToString(), text);
  const spec::ModelManifest& a = announced->manifest;
  if (a.name != m.name || a.frames != m.frames || a.height != m.height || a.width != m.width ||
      a.fps != m.fps || a.stages != m.stages || a.default_stage_steps != m.default_stage_steps) {
    Fail("the announced ModelInfo changes the limits", text);
  }

  // The defaults admit a request, and the worker can plan it.
  tpdiff::v1::GenerateRequest request;
  request.set_prompt("a red circle");
  absl::StatusOr<tpdiff::v1::GenerateRequest> filled =
      spec::ValidateAndFill(request, m, package->tokenizer, /*random_seed=*/1);
  if (!filled.ok()) Fail("the defaults fail a request: " + filled.status().ToString(), text);
  spec::StagePlanOptions options;
  options.num_frames = static_cast<int>(filled->num_frames());
  options.num_stages = filled->stage_steps_size();
  options.steps_per_stage.assign(filled->stage_steps().begin(), filled->stage_steps().end());
  options.boundaries = m.boundaries;
  if (!spec::StagePlan::Create(spec::NoiseSchedule(m.parameterization), options).ok()) {
    Fail("the worker cannot plan the default request", text);
  }
  return 0;
}
