#include "tpdiff/server/model_registry.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace tpdiff::server {
namespace {

namespace fs = std::filesystem;
using tpdiff::v1::ModelInfo;

absl::StatusOr<std::string> ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path.string(), ": cannot open"));
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// Reads a positive integer field (at most `max`); `where` prefixes errors
// ("models/x/model.json: frames: ..."). A missing field is `fallback`, or an error when 0.
absl::StatusOr<uint32_t> PositiveField(const nlohmann::json& json, const char* field,
                                       const std::string& where, uint32_t fallback = 0,
                                       int64_t max = 1 << 20) {
  if (!json.contains(field)) {
    if (fallback > 0) return fallback;
    return absl::InvalidArgumentError(absl::StrCat(where, ": ", field, ": missing"));
  }
  const nlohmann::json& value = json.at(field);
  // An unsigned value above INT64_MAX would wrap to a negative int64_t: check the kind first.
  if (!value.is_number_integer() ||
      (value.is_number_unsigned() && value.get<uint64_t>() > static_cast<uint64_t>(max)) ||
      value.get<int64_t>() <= 0 || value.get<int64_t>() > max) {
    return absl::InvalidArgumentError(absl::StrCat(
        where, ": ", field, ": must be a positive integer (at most ", max, "), got ", value.dump()));
  }
  return static_cast<uint32_t>(value.get<int64_t>());
}

// Package-relative file names only, as the worker's reader (model::ParseManifest) demands:
// a manifest must not make the front read files outside its package folder.
bool InsidePackage(const std::string& name) {
  const fs::path path(name);
  if (name.empty() || path.is_absolute()) return false;
  for (const fs::path& part : path) {
    if (part == "..") return false;
  }
  return true;
}

}  // namespace

absl::StatusOr<ModelInfo> ReadModelPackageInfo(const std::string& package_dir) {
  const fs::path manifest_path = fs::path(package_dir) / "model.json";
  absl::StatusOr<std::string> text = ReadFile(manifest_path);
  if (!text.ok()) return text.status();
  const std::string where = manifest_path.string();
  nlohmann::json json = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded() || !json.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": not a JSON object"));
  }
  ModelInfo info;
  for (const char* field : {"name", "kind", "parameterization"}) {
    if (!json.contains(field) || !json.at(field).is_string()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": ", field, ": missing or not a string"));
    }
  }
  info.set_name(json.at("name").get<std::string>());
  info.set_kind(json.at("kind").get<std::string>());
  info.set_parameterization(json.at("parameterization").get<std::string>());
  struct IntField {
    const char* name;
    void (ModelInfo::*set)(uint32_t);
    uint32_t fallback;  // model::ModelManifest's default for an optional field; 0 = required
  };
  for (const IntField& f : {IntField{"frames", &ModelInfo::set_frames, 0},
                            IntField{"height", &ModelInfo::set_height, 0},
                            IntField{"width", &ModelInfo::set_width, 0},
                            IntField{"channels", &ModelInfo::set_channels, 3},
                            IntField{"fps", &ModelInfo::set_fps, 8}}) {
    absl::StatusOr<uint32_t> value = PositiveField(json, f.name, where, f.fallback);
    if (!value.ok()) return value.status();
    (info.*f.set)(*value);
  }
  if (!json.contains("default_stage_steps") || !json.at("default_stage_steps").is_array() ||
      json.at("default_stage_steps").empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": default_stage_steps: missing or empty"));
  }
  for (const nlohmann::json& steps : json.at("default_stage_steps")) {
    // 1000: core::StagePlan::kMaxStepsPerStage; larger values would also wrap in uint32.
    if (!steps.is_number_integer() ||
        (steps.is_number_unsigned() && steps.get<uint64_t>() > 1000) ||
        steps.get<int64_t>() <= 0 || steps.get<int64_t>() > 1000) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": default_stage_steps: entries must be integers in 1..1000"));
    }
    info.add_default_stage_steps(static_cast<uint32_t>(steps.get<int64_t>()));
  }
  if (json.contains("stages") && json.at("stages").is_number_integer() &&
      json.at("stages").get<int64_t>() != info.default_stage_steps_size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        where, ": default_stage_steps: has ", info.default_stage_steps_size(),
        " entries but stages is ", json.at("stages").get<int64_t>()));
  }
  // json.value() would throw on a non-number, and a huge double does not fit a float.
  if (json.contains("default_guidance_scale")) {
    const nlohmann::json& scale = json.at("default_guidance_scale");
    if (!scale.is_number() || !(scale.get<double>() >= 0 && scale.get<double>() <= 50)) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, ": default_guidance_scale: must be a number in 0..50, got ", scale.dump()));
    }
    info.set_default_guidance_scale(static_cast<float>(scale.get<double>()));
  } else {
    info.set_default_guidance_scale(1.0f);
  }
  if (json.contains("vocabulary_file") && json.at("vocabulary_file").is_string()) {
    if (!InsidePackage(json.at("vocabulary_file").get<std::string>())) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, ": vocabulary_file: ", json.at("vocabulary_file").dump(),
          " must be a relative path inside the package folder"));
    }
    absl::StatusOr<std::string> vocabulary =
        ReadFile(fs::path(package_dir) / json.at("vocabulary_file").get<std::string>());
    if (!vocabulary.ok()) return vocabulary.status();
    for (absl::string_view line : absl::StrSplit(*vocabulary, '\n')) {
      line = absl::StripAsciiWhitespace(line);
      if (!line.empty()) info.add_vocabulary(absl::AsciiStrToLower(line));
    }
  }
  return info;
}

absl::StatusOr<std::vector<ModelInfo>> ReadModelsDir(const std::string& models_dir) {
  std::error_code error;
  if (!fs::is_directory(models_dir, error)) {
    return absl::NotFoundError(absl::StrCat("models dir ", models_dir, ": not a directory"));
  }
  std::vector<ModelInfo> models;
  for (const fs::directory_entry& entry : fs::directory_iterator(models_dir, error)) {
    if (!entry.is_directory() || !fs::exists(entry.path() / "model.json")) continue;
    absl::StatusOr<ModelInfo> info = ReadModelPackageInfo(entry.path().string());
    if (!info.ok()) return info.status();
    models.push_back(*std::move(info));
  }
  return models;
}

void ModelRegistry::AddFromDisk(ModelInfo info) {
  absl::MutexLock lock(&mu_);
  std::string name = info.name();
  from_disk_[name] = true;
  models_[name] = std::move(info);
}

void ModelRegistry::AddFromWorker(const ModelInfo& info) {
  if (info.name().empty()) return;
  absl::MutexLock lock(&mu_);
  if (from_disk_.count(info.name()) > 0) return;
  models_[info.name()] = info;
}

absl::StatusOr<ModelInfo> ModelRegistry::Find(absl::string_view name) const {
  absl::MutexLock lock(&mu_);
  auto it = models_.find(std::string(name));
  if (it == models_.end()) return absl::NotFoundError(absl::StrCat("unknown model \"", name, "\""));
  return it->second;
}

std::string ModelRegistry::DefaultModel() const {
  absl::MutexLock lock(&mu_);
  if (!default_model_.empty()) return default_model_;
  return models_.empty() ? std::string() : models_.begin()->first;
}

std::vector<ModelInfo> ModelRegistry::List() const {
  absl::MutexLock lock(&mu_);
  std::vector<ModelInfo> out;
  out.reserve(models_.size());
  for (const auto& [name, info] : models_) out.push_back(info);
  return out;
}

}  // namespace tpdiff::server
