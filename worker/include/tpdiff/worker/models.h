#ifndef TPDIFF_WORKER_MODELS_H_
#define TPDIFF_WORKER_MODELS_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include <torch/types.h>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "tpdiff/model/model_package.h"
#include "tpdiff/v1/video_generation.pb.h"
#include "tpdiff/worker/metrics.h"

namespace tpdiff::worker {

// The models a worker serves, by manifest name: loaded once and shared by every slot, each of
// which samples through its own LoadedModel::NewDenoiser() (model_package.h: the weights are
// read-only and safe to share, a denoiser's caches are not).
using ModelSet = std::map<std::string, std::unique_ptr<model::LoadedModel>>;

// "cpu" or "cuda:N", as the Hello message reports it.
std::string DeviceName(const torch::Device& device);

// Names of the packages in `models_dir` (sub-folders with a model.json), sorted.
// NOT_FOUND when the folder does not exist.
absl::StatusOr<std::vector<std::string>> ListModelPackages(const std::string& models_dir);

// Loads models_dir/<name> for every name onto `device`, recording each load's duration in
// `metrics` (may be null). The first failure is returned with the package named. Packages
// are keyed by their manifest name.
absl::StatusOr<ModelSet> LoadModels(const std::string& models_dir,
                                    const std::vector<std::string>& names, torch::Device device,
                                    WorkerMetrics* metrics);

// The packages named in `models` (comma-separated), or all in `models_dir` when empty,
// loaded once as LoadModels does; every slot shares them. NOT_FOUND when there is none.
absl::StatusOr<ModelSet> LoadWorkerModels(const std::string& models_dir,
                                          const std::string& models, torch::Device device,
                                          WorkerMetrics* metrics);

// The ModelInfo a worker announces in Hello (spec::ToModelInfo, as the front lists it).
tpdiff::v1::ModelInfo ToModelInfo(const model::LoadedModel& model);

}  // namespace tpdiff::worker

#endif  // TPDIFF_WORKER_MODELS_H_
