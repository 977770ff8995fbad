#include "tpdiff/worker/readiness.h"

namespace tpdiff::worker {

void WorkerReadiness::SetModelsLoaded() {
  absl::MutexLock lock(&mu_);
  models_loaded_ = true;
}

void WorkerReadiness::SetRegistered(bool registered) {
  absl::MutexLock lock(&mu_);
  registered_ = registered;
}

void WorkerReadiness::SetDraining() {
  absl::MutexLock lock(&mu_);
  draining_ = true;
}

absl::Status WorkerReadiness::Started() const {
  absl::MutexLock lock(&mu_);
  if (!models_loaded_) return absl::UnavailableError("loading models");
  return absl::OkStatus();
}

absl::Status WorkerReadiness::Ready() const {
  absl::MutexLock lock(&mu_);
  if (!models_loaded_) return absl::UnavailableError("loading models");
  if (draining_) return absl::UnavailableError("draining: takes no new jobs");
  if (!registered_) {
    return absl::UnavailableError("not registered with the front (no Welcome on an open stream)");
  }
  return absl::OkStatus();
}

}  // namespace tpdiff::worker
