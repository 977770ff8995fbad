#include "packages.h"

#include <torch/script.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "tpdiff/model/model_package.h"
#include "tpdiff/model/network.h"
#include "tpdiff/spec/tokenizer.h"

namespace tpdiff::bench {
namespace {

namespace fs = std::filesystem;

absl::Status WriteText(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  if (!out) return absl::InternalError(absl::StrCat("cannot write ", path.string()));
  return absl::OkStatus();
}

// Applies the overrides of `spec` to a manifest and checks it the way the loader will.
absl::Status Override(const PackageSpec& spec, spec::ModelManifest& m) {
  if (!spec.stage_steps.empty()) m.default_stage_steps = spec.stage_steps;
  if (spec.frames > 0) m.frames = spec.frames;
  return spec::ParseManifest(spec::ManifestToJson(m)).status();
}

absl::Status WriteNullPackage(const PackageSpec& spec) {
  spec::ModelManifest m = model::DefaultBuiltinManifest(spec.name);
  m.kind = "torchscript";
  m.weights_file = "net.pt";
  m.vocabulary_file = "vocab.txt";
  m.network_config_json.clear();
  if (absl::Status s = Override(spec, m); !s.ok()) return s;
  auto tokenizer = spec::Tokenizer::FromWords(spec::ShapesVocabulary());
  if (!tokenizer.ok()) return tokenizer.status();
  std::error_code ec;
  fs::create_directories(spec.dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", spec.dir, ": ", ec.message()));
  try {
    torch::jit::Module module("NullNet");
    // The forward contract of model_package.h; the output is all the sampler needs.
    module.define(R"(
def forward(self, x, t, stage, tokens):
    return torch.zeros_like(x)
)");
    module.save((fs::path(spec.dir) / m.weights_file).string());
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("null network: ", e.what()));
  }
  if (absl::Status s = WriteText(fs::path(spec.dir) / m.vocabulary_file,
                                 tokenizer->ToVocabularyText());
      !s.ok()) {
    return s;
  }
  return WriteText(fs::path(spec.dir) / "model.json", spec::ManifestToJson(m));
}

}  // namespace

absl::Status WritePackage(const PackageSpec& spec) {
  if (spec.dir.empty()) return absl::InvalidArgumentError("out: empty package folder");
  if (spec.name.empty()) return absl::InvalidArgumentError("name: empty");
  if (spec.network == "null") return WriteNullPackage(spec);
  absl::StatusOr<model::NetworkConfig> config = model::NetworkPreset(spec.network);
  if (!config.ok()) return config.status();
  if (spec.width > 0) config->width = spec.width;
  if (spec.depth > 0) config->depth = spec.depth;
  if (absl::Status s = model::CreateRandomBuiltinPackage(spec.dir, spec.name, *config, spec.seed);
      !s.ok()) {
    return s;
  }
  if (spec.stage_steps.empty() && spec.frames == 0) return absl::OkStatus();
  absl::StatusOr<spec::ModelManifest> m = spec::ReadManifest(spec.dir);
  if (!m.ok()) return m.status();
  if (absl::Status s = Override(spec, *m); !s.ok()) return s;
  return WriteText(fs::path(spec.dir) / "model.json", spec::ManifestToJson(*m));
}

}  // namespace tpdiff::bench
