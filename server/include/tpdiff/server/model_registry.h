#ifndef TPDIFF_SERVER_MODEL_REGISTRY_H_
#define TPDIFF_SERVER_MODEL_REGISTRY_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "tpdiff/v1/video_generation.pb.h"

namespace tpdiff::server {

// Reads models/<name>/model.json and its vocabulary file into the ModelInfo the API lists.
// The front only needs limits and the vocabulary, so it parses the manifest itself and does
// not link LibTorch. Errors name the file and the field.
absl::StatusOr<tpdiff::v1::ModelInfo> ReadModelPackageInfo(const std::string& package_dir);

// Every package folder (a folder holding model.json) under models_dir. A missing folder is
// NOT_FOUND; an unreadable package is an error naming it.
absl::StatusOr<std::vector<tpdiff::v1::ModelInfo>> ReadModelsDir(const std::string& models_dir);

// The models the front can validate requests for: those read from --models-dir at start,
// plus those announced by workers in Hello (a package the front has not seen).
//
// Thread safety: all methods are thread-safe (internal mutex, never held while calling out).
class ModelRegistry {
 public:
  // default_model: the model used when a request leaves `model` empty; empty = the first
  // model by name.
  explicit ModelRegistry(std::string default_model = "") : default_model_(std::move(default_model)) {}

  // Adds or replaces a model read from disk. Disk entries win over worker announcements.
  void AddFromDisk(tpdiff::v1::ModelInfo info);
  // Adds a model a worker announced unless the front already knows it.
  void AddFromWorker(const tpdiff::v1::ModelInfo& info);

  // NOT_FOUND when unknown.
  absl::StatusOr<tpdiff::v1::ModelInfo> Find(absl::string_view name) const;
  // The name used for an empty `model`; empty when no model is known.
  std::string DefaultModel() const;
  std::vector<tpdiff::v1::ModelInfo> List() const;  // sorted by name

 private:
  mutable absl::Mutex mu_;
  std::string default_model_;
  std::map<std::string, tpdiff::v1::ModelInfo> models_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, bool> from_disk_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tpdiff::server

#endif  // TPDIFF_SERVER_MODEL_REGISTRY_H_
