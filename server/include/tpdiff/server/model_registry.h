#ifndef TPDIFF_SERVER_MODEL_REGISTRY_H_
#define TPDIFF_SERVER_MODEL_REGISTRY_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "tpdiff/spec/manifest.h"
#include "tpdiff/v1/video_generation.pb.h"

namespace tpdiff::server {

// Every package folder (a folder holding model.json) under models_dir, read by
// spec::ReadModelPackageSpec: the manifest and vocabulary parser the worker uses, so the front
// accepts exactly the packages a worker can load (weights aside). A missing folder is
// NOT_FOUND; an unreadable package is that function's error, naming the package.
absl::StatusOr<std::vector<spec::ModelSpec>> ReadModelsDir(const std::string& models_dir);

// The models the front can validate requests for: those read from --models-dir at start,
// plus those announced by workers in Hello (a package the front has not seen).
//
// Thread safety: all methods are thread-safe (internal mutex, never held while calling out).
// Models are immutable once added; FindSpec hands out shared ownership, so a model replaced
// meanwhile stays valid for the caller.
class ModelRegistry {
 public:
  // default_model: the model used when a request leaves `model` empty; empty = the first
  // model by name.
  explicit ModelRegistry(std::string default_model = "") : default_model_(std::move(default_model)) {}

  // Adds or replaces a model read from disk. Disk entries win over worker announcements.
  void AddFromDisk(spec::ModelSpec model);
  // Adds a model a worker announced unless the front already knows it. INVALID_ARGUMENT
  // (spec::ModelSpecFromInfo's) for an announcement without a name, limits or vocabulary.
  absl::Status AddFromWorker(const tpdiff::v1::ModelInfo& info);

  // NOT_FOUND when unknown.
  absl::StatusOr<tpdiff::v1::ModelInfo> Find(absl::string_view name) const;
  // The manifest and tokenizer requests for `name` are validated against. NOT_FOUND when
  // unknown.
  absl::StatusOr<std::shared_ptr<const spec::ModelSpec>> FindSpec(absl::string_view name) const;
  // The name used for an empty `model`; empty when no model is known.
  std::string DefaultModel() const;
  std::vector<tpdiff::v1::ModelInfo> List() const;  // sorted by name
  // The known models' names, sorted: what the dispatcher's tick and readiness need, without
  // copying every ModelInfo.
  std::vector<std::string> Names() const;

 private:
  struct Entry {
    // What ListModels reports: the announcement without its SentencePiece model, which only
    // builds `spec` (a real one is megabytes, over gRPC's default 4 MiB message limit).
    tpdiff::v1::ModelInfo info;
    std::shared_ptr<const spec::ModelSpec> spec;
    bool from_disk = false;
  };

  mutable absl::Mutex mu_;
  std::string default_model_;
  std::map<std::string, Entry> models_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tpdiff::server

#endif  // TPDIFF_SERVER_MODEL_REGISTRY_H_
