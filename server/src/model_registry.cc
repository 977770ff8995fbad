#include "tpdiff/server/model_registry.h"

#include <filesystem>
#include <utility>

#include "absl/strings/str_cat.h"
#include "tpdiff/spec/model_info.h"

namespace tpdiff::server {
namespace {

namespace fs = std::filesystem;
using tpdiff::v1::ModelInfo;

}  // namespace

absl::StatusOr<std::vector<spec::ModelSpec>> ReadModelsDir(const std::string& models_dir) {
  std::error_code error;
  if (!fs::is_directory(models_dir, error)) {
    return absl::NotFoundError(absl::StrCat("models dir ", models_dir, ": not a directory"));
  }
  std::vector<spec::ModelSpec> models;
  for (const fs::directory_entry& entry : fs::directory_iterator(models_dir, error)) {
    if (!entry.is_directory() || !fs::exists(entry.path() / spec::kManifestFile)) continue;
    absl::StatusOr<spec::ModelSpec> model = spec::ReadModelPackageSpec(entry.path().string());
    if (!model.ok()) return model.status();
    models.push_back(*std::move(model));
  }
  return models;
}

void ModelRegistry::AddFromDisk(spec::ModelSpec model) {
  Entry entry;
  entry.info = spec::ToModelInfo(model.manifest, model.tokenizer);
  entry.info.clear_tokenizer_model();
  entry.spec = std::make_shared<const spec::ModelSpec>(std::move(model));
  entry.from_disk = true;
  absl::MutexLock lock(&mu_);
  const std::string name = entry.info.name();
  models_.insert_or_assign(name, std::move(entry));
}

absl::Status ModelRegistry::AddFromWorker(const ModelInfo& info) {
  absl::StatusOr<spec::ModelSpec> model = spec::ModelSpecFromInfo(info);
  if (!model.ok()) return model.status();
  Entry entry;
  entry.info = info;
  entry.info.clear_tokenizer_model();
  entry.spec = std::make_shared<const spec::ModelSpec>(*std::move(model));
  absl::MutexLock lock(&mu_);
  auto it = models_.find(info.name());
  if (it != models_.end() && it->second.from_disk) return absl::OkStatus();
  models_.insert_or_assign(info.name(), std::move(entry));
  return absl::OkStatus();
}

absl::StatusOr<ModelInfo> ModelRegistry::Find(absl::string_view name) const {
  absl::MutexLock lock(&mu_);
  auto it = models_.find(std::string(name));
  if (it == models_.end()) return absl::NotFoundError(absl::StrCat("unknown model \"", name, "\""));
  return it->second.info;
}

absl::StatusOr<std::shared_ptr<const spec::ModelSpec>> ModelRegistry::FindSpec(
    absl::string_view name) const {
  absl::MutexLock lock(&mu_);
  auto it = models_.find(std::string(name));
  if (it == models_.end()) return absl::NotFoundError(absl::StrCat("unknown model \"", name, "\""));
  return it->second.spec;
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
  for (const auto& [name, entry] : models_) out.push_back(entry.info);
  return out;
}

std::vector<std::string> ModelRegistry::Names() const {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> out;
  out.reserve(models_.size());
  for (const auto& [name, entry] : models_) out.push_back(name);
  return out;
}

}  // namespace tpdiff::server
