#include "tpdiff/worker/models.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "tpdiff/spec/model_info.h"

namespace tpdiff::worker {

namespace fs = std::filesystem;

std::string DeviceName(const torch::Device& device) {
  if (device.is_cuda()) return absl::StrCat("cuda:", device.has_index() ? device.index() : 0);
  return "cpu";
}

absl::StatusOr<std::vector<std::string>> ListModelPackages(const std::string& models_dir) {
  std::error_code ec;
  if (!fs::is_directory(models_dir, ec)) {
    return absl::NotFoundError(absl::StrCat("models-dir: ", models_dir, " is not a directory"));
  }
  std::vector<std::string> names;
  for (const fs::directory_entry& entry : fs::directory_iterator(models_dir, ec)) {
    if (entry.is_directory(ec) && fs::exists(entry.path() / "model.json", ec)) {
      names.push_back(entry.path().filename().string());
    }
  }
  if (ec) return absl::InternalError(absl::StrCat("models-dir: ", ec.message()));
  std::sort(names.begin(), names.end());
  return names;
}

absl::StatusOr<ModelSet> LoadModels(const std::string& models_dir,
                                    const std::vector<std::string>& names, torch::Device device,
                                    WorkerMetrics* metrics) {
  ModelSet models;
  for (const std::string& name : names) {
    const auto begin = std::chrono::steady_clock::now();
    absl::StatusOr<std::unique_ptr<model::LoadedModel>> model =
        model::LoadModelPackage((fs::path(models_dir) / name).string(), device);
    if (!model.ok()) {
      return absl::Status(model.status().code(),
                          absl::StrCat("model ", name, ": ", model.status().message()));
    }
    if (metrics != nullptr) {
      metrics->ObserveModelLoad(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count());
    }
    const std::string key = (*model)->manifest().name;
    if (models.count(key) > 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("model ", name, ": manifest name \"", key, "\" is loaded twice"));
    }
    models.emplace(key, *std::move(model));
  }
  return models;
}

absl::StatusOr<ModelSet> LoadWorkerModels(const std::string& models_dir,
                                          const std::string& models, torch::Device device,
                                          WorkerMetrics* metrics) {
  std::vector<std::string> names;
  if (models.empty()) {
    absl::StatusOr<std::vector<std::string>> listed = ListModelPackages(models_dir);
    if (!listed.ok()) return listed.status();
    names = *std::move(listed);
  } else {
    names = absl::StrSplit(models, ',', absl::SkipWhitespace());
  }
  if (names.empty()) {
    return absl::NotFoundError(absl::StrCat("models-dir: no model packages in ", models_dir));
  }
  return LoadModels(models_dir, names, device, metrics);
}

tpdiff::v1::ModelInfo ToModelInfo(const model::LoadedModel& model) {
  return spec::ToModelInfo(model.manifest(), model.tokenizer());
}

}  // namespace tpdiff::worker
