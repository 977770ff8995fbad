#ifndef TPDIFF_WORKER_MODELS_H_
#define TPDIFF_WORKER_MODELS_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include <torch/types.h>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "tpdiff/core/model_package.h"
#include "tpdiff/v1/video_generation.pb.h"
#include "tpdiff/worker/metrics.h"

namespace tpdiff::worker {

// The models one slot owns, by manifest name. A slot's thread is the only user of its
// denoisers, so every slot gets its own set (LoadedModel::denoiser is single-threaded).
using ModelSet = std::map<std::string, std::unique_ptr<core::LoadedModel>>;

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

// One ModelSet per slot: the packages named in `models` (comma-separated), or all in
// `models_dir` when empty, loaded as LoadModels does. INVALID_ARGUMENT for slots < 1,
// NOT_FOUND when there is no package.
absl::StatusOr<std::vector<ModelSet>> LoadSlotModels(const std::string& models_dir,
                                                     const std::string& models, int slots,
                                                     torch::Device device,
                                                     WorkerMetrics* metrics);

// The ModelInfo a worker announces in Hello: manifest fields and vocabulary.
tpdiff::v1::ModelInfo ToModelInfo(const core::LoadedModel& model);

}  // namespace tpdiff::worker

#endif  // TPDIFF_WORKER_MODELS_H_
