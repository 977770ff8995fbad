#ifndef TPDIFF_WORKER_READINESS_H_
#define TPDIFF_WORKER_READINESS_H_

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"

namespace tpdiff::worker {

// What the worker's probes report (GET /startupz and /readyz of MetricsServer):
// - started: every model is loaded (the startup probe: loading may take minutes, and a
//   worker that cannot reach the front must not be restarted to load them again);
// - ready: started, and the front accepted this worker's Hello (Welcome received) on a stream
//   that is still open, and no drain has begun. Only then can the front assign it jobs, so a
//   rolling update waits for the new worker to be registered before stopping an old one.
//
// Thread safety: every method may be called from any thread (one internal mutex, never held
// while calling out).
class WorkerReadiness {
 public:
  void SetModelsLoaded();
  // The gateway client: true on Welcome, false when that stream ends.
  void SetRegistered(bool registered);
  // SIGTERM or a drain from the front: the worker takes no new jobs from now on.
  void SetDraining();

  // OK once the models are loaded; UNAVAILABLE "loading models" before.
  absl::Status Started() const;
  // OK when ready (above); UNAVAILABLE naming what is missing otherwise.
  absl::Status Ready() const;

 private:
  mutable absl::Mutex mu_;
  bool models_loaded_ ABSL_GUARDED_BY(mu_) = false;
  bool registered_ ABSL_GUARDED_BY(mu_) = false;
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace tpdiff::worker

#endif  // TPDIFF_WORKER_READINESS_H_
