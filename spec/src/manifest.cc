#include "tpdiff/spec/manifest.h"

#include <cctype>
#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "tpdiff/spec/files.h"
#include "tpdiff/spec/limits.h"
#include "tpdiff/spec/network_config.h"
#include "tpdiff/spec/stage_plan.h"
#include "tpdiff/spec/status_macros.h"

namespace tpdiff::spec {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// Every field model.json may have. Anything else is rejected: a typo must not silently fall
// back to a default.
constexpr const char* kKnownFields[] = {
    "name",       "kind",     "description",         "parameterization",
    "frames",     "height",   "width",               "channels",
    "fps",        "stages",   "boundaries",          "default_stage_steps",
    "default_guidance_scale", "weights_file",        "vocabulary_file",
    "network"};

absl::Status Field(absl::string_view field, absl::string_view problem) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", problem));
}

// Typed field readers: each error names the field.
absl::Status GetString(const json& j, const char* key, bool required, std::string* out) {
  if (!j.contains(key)) return required ? Field(key, "missing") : absl::OkStatus();
  if (!j[key].is_string()) return Field(key, "must be a string");
  *out = j[key].get<std::string>();
  return absl::OkStatus();
}

absl::Status GetInt(const json& j, const char* key, bool required, int lo, int hi, int* out) {
  if (!j.contains(key)) return required ? Field(key, "missing") : absl::OkStatus();
  if (!j[key].is_number_integer()) return Field(key, "must be an integer");
  // An unsigned value above INT64_MAX would wrap to a negative int64_t.
  if (j[key].is_number_unsigned() && j[key].get<uint64_t>() > static_cast<uint64_t>(hi)) {
    return Field(key, absl::StrCat(j[key].get<uint64_t>(), " outside [", lo, ", ", hi, "]"));
  }
  const int64_t v = j[key].get<int64_t>();
  if (v < lo || v > hi) return Field(key, absl::StrCat(v, " outside [", lo, ", ", hi, "]"));
  *out = static_cast<int>(v);
  return absl::OkStatus();
}

absl::Status GetDouble(const json& j, const char* key, bool required, double* out) {
  if (!j.contains(key)) return required ? Field(key, "missing") : absl::OkStatus();
  if (!j[key].is_number()) return Field(key, "must be a number");
  *out = j[key].get<double>();
  return absl::OkStatus();
}

// Package-relative file names only: a manifest must not reach outside its folder.
absl::Status CheckRelativeFile(const char* field, const std::string& name) {
  if (name.empty()) return Field(field, "must not be empty");
  const fs::path p(name);
  if (p.is_absolute())
    return Field(field, absl::StrCat("\"", name, "\" must be relative to the package folder"));
  for (const auto& part : p) {
    if (part == "..") return Field(field, absl::StrCat("\"", name, "\" must not contain \"..\""));
  }
  return absl::OkStatus();
}

absl::Status WithPrefix(absl::string_view prefix, const absl::Status& status) {
  return absl::Status(status.code(), absl::StrCat(prefix, ": ", status.message()));
}

}  // namespace

absl::StatusOr<ModelManifest> ParseManifest(absl::string_view json_text) {
  const json j =
      json::parse(json_text.begin(), json_text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return absl::InvalidArgumentError("model.json: not valid JSON");
  if (!j.is_object()) return absl::InvalidArgumentError("model.json: must be a JSON object");
  for (auto it = j.begin(); it != j.end(); ++it) {
    bool known = false;
    for (const char* k : kKnownFields) known = known || it.key() == k;
    if (!known) {
      return Field(it.key(), absl::StrCat("unknown field; known fields: ",
                                          absl::StrJoin(kKnownFields, ", ")));
    }
  }
  ModelManifest m;
  TPDIFF_RETURN_IF_ERROR(GetString(j, "name", true, &m.name));
  if (m.name.empty()) return Field("name", "must not be empty");
  for (char c : m.name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') {
      return Field("name",
                   absl::StrCat("\"", m.name, "\" may only use letters, digits, '-', '_', '.'"));
    }
  }
  TPDIFF_RETURN_IF_ERROR(GetString(j, "kind", true, &m.kind));
  if (m.kind != "builtin" && m.kind != "torchscript") {
    return Field("kind", absl::StrCat("\"", m.kind, "\" is not \"builtin\" or \"torchscript\""));
  }
  TPDIFF_RETURN_IF_ERROR(GetString(j, "description", false, &m.description));
  if (m.description.size() > kMaxDescriptionBytes) {
    return Field("description", absl::StrCat(m.description.size(), " bytes exceeds the maximum of ",
                                             kMaxDescriptionBytes));
  }
  std::string param;
  TPDIFF_RETURN_IF_ERROR(GetString(j, "parameterization", true, &param));
  auto p = ParseParameterization(param);
  if (!p.ok())
    return Field("parameterization",
                 absl::StrCat("\"", param, "\" is not flow_matching or vp_eps"));
  m.parameterization = *p;
  TPDIFF_RETURN_IF_ERROR(GetInt(j, "frames", true, 1, 1024, &m.frames));
  TPDIFF_RETURN_IF_ERROR(GetInt(j, "height", true, 1, 4096, &m.height));
  TPDIFF_RETURN_IF_ERROR(GetInt(j, "width", true, 1, 4096, &m.width));
  TPDIFF_RETURN_IF_ERROR(GetInt(j, "channels", false, 1, 16, &m.channels));
  // The defaults below become a request's values, so they must lie inside the API's limits.
  TPDIFF_RETURN_IF_ERROR(GetInt(j, "fps", false, kMinFps, kMaxFps, &m.fps));
  TPDIFF_RETURN_IF_ERROR(GetInt(j, "stages", true, 1, StagePlan::kMaxStages, &m.stages));
  const int stride = 1 << (m.stages - 1);
  if (m.frames % stride != 0) {
    return Field("frames", absl::StrCat(m.frames, " is not divisible by 2^(stages-1) = ", stride));
  }
  if (j.contains("boundaries")) {
    if (!j["boundaries"].is_array()) return Field("boundaries", "must be an array of numbers");
    for (const auto& b : j["boundaries"]) {
      if (!b.is_number()) return Field("boundaries", "must be an array of numbers");
      m.boundaries.push_back(b.get<double>());
    }
    if (!m.boundaries.empty() && static_cast<int>(m.boundaries.size()) != m.stages - 1) {
      return Field("boundaries", absl::StrCat(m.boundaries.size(), " values; stages ", m.stages,
                                              " needs ", m.stages - 1, " (or none for uniform)"));
    }
  }
  if (!j.contains("default_stage_steps")) return Field("default_stage_steps", "missing");
  if (!j["default_stage_steps"].is_array())
    return Field("default_stage_steps", "must be an array of integers");
  for (const auto& s : j["default_stage_steps"]) {
    if (!s.is_number_integer()) return Field("default_stage_steps", "must be an array of integers");
    const bool too_big = s.is_number_unsigned() && s.get<uint64_t>() > kMaxRequestStepsPerStage;
    const int64_t v = too_big ? int64_t{kMaxRequestStepsPerStage} + 1 : s.get<int64_t>();
    if (v < 1 || v > kMaxRequestStepsPerStage) {
      return Field("default_stage_steps",
                   absl::StrCat(s.dump(), " outside [1, ", kMaxRequestStepsPerStage, "]"));
    }
    m.default_stage_steps.push_back(static_cast<int>(v));
  }
  if (static_cast<int>(m.default_stage_steps.size()) != m.stages) {
    return Field("default_stage_steps",
                 absl::StrCat(m.default_stage_steps.size(), " values; expected one per stage (",
                              m.stages, ")"));
  }
  TPDIFF_RETURN_IF_ERROR(GetDouble(j, "default_guidance_scale", false, &m.default_guidance_scale));
  if (!(m.default_guidance_scale >= 0 && m.default_guidance_scale <= kMaxGuidanceScale)) {
    return Field("default_guidance_scale",
                 absl::StrCat(m.default_guidance_scale, " outside [0, ", kMaxGuidanceScale, "]"));
  }
  TPDIFF_RETURN_IF_ERROR(GetString(j, "weights_file", true, &m.weights_file));
  TPDIFF_RETURN_IF_ERROR(CheckRelativeFile("weights_file", m.weights_file));
  TPDIFF_RETURN_IF_ERROR(GetString(j, "vocabulary_file", true, &m.vocabulary_file));
  TPDIFF_RETURN_IF_ERROR(CheckRelativeFile("vocabulary_file", m.vocabulary_file));
  if (m.kind == "builtin") {
    if (!j.contains("network")) return Field("network", "missing (required for kind \"builtin\")");
    if (!j["network"].is_object()) return Field("network", "must be an object");
    m.network_config_json = j["network"].dump();
    auto config = NetworkConfig::FromJson(m.network_config_json);
    if (!config.ok()) return config.status();
  } else if (j.contains("network")) {
    return Field("network", "only allowed for kind \"builtin\"");
  }
  // The remaining cross-field rules (boundary order, windows the jump would empty) are the
  // stage plan's; run them now so a bad package fails at load, not at the first request.
  StagePlanOptions opts;
  opts.num_frames = m.frames;
  opts.num_stages = m.stages;
  opts.steps_per_stage = m.default_stage_steps;
  opts.boundaries = m.boundaries;
  auto plan = StagePlan::Create(NoiseSchedule(m.parameterization), opts);
  if (!plan.ok()) return Field("boundaries", plan.status().message());
  return m;
}

std::string ManifestToJson(const ModelManifest& m) {
  json j = json::object();
  j["name"] = m.name;
  j["kind"] = m.kind;
  if (!m.description.empty()) j["description"] = m.description;
  j["parameterization"] = std::string(ParameterizationName(m.parameterization));
  j["frames"] = m.frames;
  j["height"] = m.height;
  j["width"] = m.width;
  j["channels"] = m.channels;
  j["fps"] = m.fps;
  j["stages"] = m.stages;
  j["boundaries"] = m.boundaries;
  j["default_stage_steps"] = m.default_stage_steps;
  j["default_guidance_scale"] = m.default_guidance_scale;
  j["weights_file"] = m.weights_file;
  j["vocabulary_file"] = m.vocabulary_file;
  if (!m.network_config_json.empty()) {
    json net = json::parse(m.network_config_json, nullptr, false);
    if (!net.is_discarded()) j["network"] = net;
  }
  return j.dump(2) + "\n";
}

absl::StatusOr<ModelManifest> ReadManifest(const std::string& dir) {
  std::error_code error;
  if (!fs::is_directory(dir, error))
    return absl::NotFoundError(absl::StrCat(dir, ": no such model folder"));
  const std::string path = (fs::path(dir) / kManifestFile).string();
  auto text = ReadFileToString(path);
  if (!text.ok()) return text.status();
  auto m = ParseManifest(*text);
  if (!m.ok()) return WithPrefix(path, m.status());
  return m;
}

absl::Status CheckPackage(const ModelManifest& manifest, const Tokenizer& tokenizer) {
  if (manifest.kind != "builtin") return absl::OkStatus();
  auto config = NetworkConfig::FromJson(manifest.network_config_json);
  if (!config.ok()) return config.status();
  if (config->channels != manifest.channels) {
    return Field("network.channels",
                 absl::StrCat(config->channels, " != channels ", manifest.channels));
  }
  if (manifest.height > config->max_height || manifest.height % config->patch != 0) {
    return Field("height", absl::StrCat(manifest.height, " must be a multiple of network.patch ",
                                        config->patch, " and at most network.max_height ",
                                        config->max_height));
  }
  if (manifest.width > config->max_width || manifest.width % config->patch != 0) {
    return Field("width",
                 absl::StrCat(manifest.width, " must be a multiple of network.patch ",
                              config->patch, " and at most network.max_width ", config->max_width));
  }
  if (manifest.stages > config->max_stages) {
    return Field("stages", absl::StrCat(manifest.stages, " exceeds network.max_stages ",
                                        config->max_stages));
  }
  if (tokenizer.vocab_size() > config->vocab_size) {
    return Field(
        "vocabulary_file",
        absl::StrCat(tokenizer.words().size(), " words need vocab_size ", tokenizer.vocab_size(),
                     " but network.vocab_size is ", config->vocab_size));
  }
  if (Tokenizer::kMaxTokens > config->max_tokens) {
    return Field("network.max_tokens", absl::StrCat(config->max_tokens, " is below the tokenizer's ",
                                                    Tokenizer::kMaxTokens));
  }
  return absl::OkStatus();
}

absl::StatusOr<ModelSpec> ReadModelPackageSpec(const std::string& dir) {
  absl::StatusOr<ModelManifest> manifest = ReadManifest(dir);
  if (!manifest.ok()) return manifest.status();
  absl::StatusOr<std::string> vocabulary =
      ReadFileToString((fs::path(dir) / manifest->vocabulary_file).string());
  if (!vocabulary.ok()) return WithPrefix(absl::StrCat(dir, ": vocabulary_file"), vocabulary.status());
  absl::StatusOr<Tokenizer> tokenizer = Tokenizer::FromVocabularyText(*vocabulary);
  if (!tokenizer.ok()) return WithPrefix(absl::StrCat(dir, ": vocabulary_file"), tokenizer.status());
  if (absl::Status s = CheckPackage(*manifest, *tokenizer); !s.ok()) return WithPrefix(dir, s);
  return ModelSpec{*std::move(manifest), *std::move(tokenizer)};
}

}  // namespace tpdiff::spec
