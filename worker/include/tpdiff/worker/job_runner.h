#ifndef TPDIFF_WORKER_JOB_RUNNER_H_
#define TPDIFF_WORKER_JOB_RUNNER_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "tpdiff/core/denoiser.h"
#include "tpdiff/worker/event_sink.h"
#include "tpdiff/worker/metrics.h"
#include "tpdiff/worker/models.h"
#include "tpdiff/worker/v1/worker.pb.h"

namespace tpdiff::worker {

struct JobRunnerOptions {
  std::string worker_id;  // reported in Started
  // Size of the ResultChunk messages; the API promises at most 1 MiB, well under gRPC's
  // default 4 MiB message limit.
  size_t result_chunk_bytes = size_t{1} << 20;
  WorkerMetrics* metrics = nullptr;  // optional; must outlive the runner
};

// Runs assigned jobs on slots, llama.cpp style: each slot is one thread that runs one job at a
// time through its own denoiser of every model (the only thread that ever touches it); the
// models' weights are loaded once and shared by all slots. Callers (gRPC threads) only post
// work and cancellations; every job event leaves through the EventSink.
//
// A job produces, in order: Started, Progress after every denoising step, StagePreview after
// every stage (when request.preview.enabled), ResultChunk x n, Completed. Or it ends with
// Failed{code, message, retryable} or, when the front cancels it, Cancelled{source}: the
// sampler polls the job's CancellationToken before every network call, so a running job
// stops within one step and its slot takes the next job.
//
// Thread safety: all public methods are thread-safe and never block on a job, except
// WaitIdle and Shutdown. The sink is called from slot threads (and from Assign/Cancel for
// jobs that never reach a slot) and must outlive the runner.
class JobRunner {
 public:
  // Starts `slots` slot threads (at least one), each with its own denoiser of every model of
  // `models`.
  JobRunner(ModelSet models, int slots, EventSink& sink, JobRunnerOptions options);
  ~JobRunner();  // Shutdown()
  JobRunner(const JobRunner&) = delete;
  JobRunner& operator=(const JobRunner&) = delete;

  // Queues a job for the next free slot. A job id that is already queued or running with the
  // same attempt is ignored (a duplicate delivery). While draining, the job fails at once
  // with UNAVAILABLE, retryable, so the front gives it to another worker.
  void Assign(const tpdiff::worker::v1::Assign& assign);

  // The front cancelled a job: a queued one ends at once, a running one within one step;
  // both report Cancelled{source}. Unknown ids are ignored (the job may have just ended).
  void Cancel(const std::string& job_id, const std::string& source);

  // Stops every queued and running job WITHOUT reporting on them: used when the stream to
  // the front is lost or the worker shuts down, where the front re-queues the jobs itself and
  // a Cancelled event would end them for the client instead.
  void AbandonAll();

  // Takes no new jobs; queued and running ones finish normally.
  void Drain();
  bool draining() const;

  // Blocks until no job is queued or running or `timeout` passed; true when idle.
  bool WaitIdle(absl::Duration timeout);

  // AbandonAll, then joins the slot threads. Idempotent.
  void Shutdown();

  struct Load {
    std::vector<std::string> running_job_ids;  // running and queued, for the heartbeat
    uint32_t free_slots = 0;
  };
  Load CurrentLoad() const;
  int slots() const { return static_cast<int>(slots_.size()); }

 private:
  struct Job;
  struct Slot {
    // This slot's denoiser of each model of models_; used by the slot's thread only.
    std::map<const model::LoadedModel*, std::unique_ptr<core::Denoiser>> denoisers;
    std::shared_ptr<Job> current;  // guarded by mu_
    std::thread thread;
  };

  void SlotLoop(Slot* slot);
  void RunJob(Slot& slot, Job& job);
  void Report(Job& job, tpdiff::v1::JobEvent event);
  bool HasWorkOrStopping() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool IdleLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  EventSink& sink_;
  const JobRunnerOptions options_;
  ModelSet models_;  // not changed after construction, read by every slot thread
  std::vector<std::unique_ptr<Slot>> slots_;

  mutable absl::Mutex mu_;
  std::deque<std::shared_ptr<Job>> pending_ ABSL_GUARDED_BY(mu_);
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  absl::Mutex join_mu_;  // serialises Shutdown
  bool joined_ ABSL_GUARDED_BY(join_mu_) = false;
};

// Failed.retryable for a job error: true where another worker or attempt may succeed
// (UNAVAILABLE, RESOURCE_EXHAUSTED such as GPU memory, ABORTED, INTERNAL, UNKNOWN,
// FAILED_PRECONDITION such as a model not loaded here), false for bad input.
bool IsRetryable(absl::StatusCode code);

}  // namespace tpdiff::worker

#endif  // TPDIFF_WORKER_JOB_RUNNER_H_
