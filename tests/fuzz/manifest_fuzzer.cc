// libFuzzer target: both readers of a package's model.json on the same bytes —
// model::ParseManifest (what the worker loads) and server::ReadModelPackageInfo (what the front
// lists and validates requests against, written to a scratch package folder).
//
// Checks beyond "does not crash or throw": an accepted manifest survives ManifestToJson and a
// second parse unchanged; errors are INVALID_ARGUMENT (or NOT_FOUND for a missing vocabulary
// file); and the front accepts every manifest the worker accepts, with the same limits, so a
// package a worker can serve never stops the front from starting.

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "tpdiff/model/model_package.h"
#include "tpdiff/server/model_registry.h"

namespace {

namespace fs = std::filesystem;

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

bool SameManifest(const tpdiff::model::ModelManifest& a, const tpdiff::model::ModelManifest& b) {
  return a.name == b.name && a.kind == b.kind && a.parameterization == b.parameterization &&
         a.frames == b.frames && a.height == b.height && a.width == b.width &&
         a.channels == b.channels && a.fps == b.fps && a.stages == b.stages &&
         a.boundaries == b.boundaries && a.default_stage_steps == b.default_stage_steps &&
         a.default_guidance_scale == b.default_guidance_scale && a.weights_file == b.weights_file &&
         a.vocabulary_file == b.vocabulary_file && a.network_config_json == b.network_config_json;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);

  absl::StatusOr<tpdiff::model::ModelManifest> core = tpdiff::model::ParseManifest(text);
  if (!core.ok() && core.status().code() != absl::StatusCode::kInvalidArgument) {
    Fail("core: error is not INVALID_ARGUMENT: " + core.status().ToString(), text);
  }
  if (core.ok()) {
    const std::string again = tpdiff::model::ManifestToJson(*core);
    absl::StatusOr<tpdiff::model::ModelManifest> reparsed = tpdiff::model::ParseManifest(again);
    if (!reparsed.ok()) Fail("core: ManifestToJson output rejected: " + reparsed.status().ToString(), text);
    if (!SameManifest(*core, *reparsed)) Fail("core: round trip changed the manifest", text);
  }

  const fs::path& dir = PackageDir();
  WriteFile(dir / "model.json", text);
  absl::StatusOr<tpdiff::v1::ModelInfo> front = tpdiff::server::ReadModelPackageInfo(dir.string());
  if (!front.ok() && front.status().code() != absl::StatusCode::kInvalidArgument &&
      front.status().code() != absl::StatusCode::kNotFound) {
    Fail("server: unexpected error code: " + front.status().ToString(), text);
  }
  if (front.ok()) {
    if (front->name().empty() || front->frames() == 0 || front->height() == 0 ||
        front->width() == 0 || front->fps() == 0 || front->default_stage_steps_size() == 0) {
      Fail("server: accepted a manifest with an empty limit", text);
    }
    for (uint32_t steps : front->default_stage_steps()) {
      if (steps == 0) Fail("server: accepted a stage with 0 default steps", text);
    }
    // Like the worker's reader, the front must not read files outside the package folder.
    const nlohmann::json json = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (json.is_object() && json.contains("vocabulary_file") && json["vocabulary_file"].is_string()) {
      const fs::path vocabulary(json["vocabulary_file"].get<std::string>());
      bool outside = vocabulary.is_absolute();
      for (const fs::path& part : vocabulary) outside = outside || part == "..";
      if (outside) Fail("server: read a vocabulary_file outside the package", text);
    }
  }
  // The worker loads this package only with its vocabulary file, so compare when it is ours.
  if (core.ok() && core->vocabulary_file == "vocab.txt") {
    if (!front.ok()) Fail("server rejects a manifest core accepts: " + front.status().ToString(), text);
    if (front->name() != core->name || static_cast<int>(front->frames()) != core->frames ||
        static_cast<int>(front->height()) != core->height ||
        static_cast<int>(front->width()) != core->width ||
        static_cast<int>(front->fps()) != core->fps ||
        front->default_stage_steps_size() != core->stages) {
      Fail("server and core read different limits", text);
    }
  }
  return 0;
}
