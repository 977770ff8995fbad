#ifndef TPDIFF_WORKER_JOB_RUNNER_H_
#define TPDIFF_WORKER_JOB_RUNNER_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "tpdiff/common/clock.h"
#include "tpdiff/core/denoiser.h"
#include "tpdiff/media/encoder.h"
#include "tpdiff/worker/encode_queue.h"
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
  // Encodes each slot may have waiting on its encoder thread (EncodeQueue); 0 = encode on
  // the sampling thread, between stages.
  int encode_queue_depth = 2;
  media::H264Encoder h264_encoder = media::H264Encoder::kLibx264;  // for MP4 results
  // A job whose sampler reports no step for this long fails with DEADLINE_EXCEEDED and its
  // slot is replaced by a fresh one; 0 = no watchdog.
  absl::Duration job_stall_timeout = absl::ZeroDuration();
  // The watchdog's time; null = the real clock. Must outlive the runner.
  const common::Clock* clock = nullptr;
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
// stops within one step and its slot takes the next job. Nothing follows the terminal event.
//
// Encoding runs off the sampling thread: each slot has an EncodeQueue that encodes a stage's
// preview while the next stage samples and emits every event of the slot's jobs in the order
// the sampler produced them. Once a job has sampled, its slot takes the next queued job
// while the result is still being encoded and sent (the job stays in CurrentLoad, and
// cancellable, until its terminal event). A cancelled job's events still waiting there are
// dropped; an encoder error fails the job with the encoder's status.
//
// Watchdog (job_stall_timeout): a job whose sampler reports no step for that long fails with
// DEADLINE_EXCEEDED "worker: no sampler progress for <s>s at stage k step i", leaves
// CurrentLoad (so heartbeats stop renewing its lease) and its slot gets a new thread and
// denoisers; the stuck thread is abandoned and exits if its call ever returns.
//
// Thread safety: all public methods are thread-safe and never block on a job, except
// WaitIdle and Shutdown. The sink is called from slots' encoder threads (from slot threads
// when encode_queue_depth is 0), from the watchdog, and from Assign/Cancel for jobs that
// never reach a slot; it must outlive the runner.
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

  // Blocks until no job is queued, running or finishing or `timeout` passed; true when idle.
  bool WaitIdle(absl::Duration timeout);

  // AbandonAll, then joins the slot threads (a slot retired by the watchdog gets a grace
  // period, then is left behind). Idempotent.
  void Shutdown();

  struct Load {
    std::vector<std::string> running_job_ids;  // running and queued, for the heartbeat
    uint32_t free_slots = 0;
  };
  Load CurrentLoad() const;
  int slots() const;

 private:
  struct Job;
  struct Slot;

  std::unique_ptr<Slot> NewSlot() const;
  void StartSlot(Slot* slot);
  void SlotLoop(Slot* slot);
  void RunJob(Slot& slot, const std::shared_ptr<Job>& job);
  // The job has sampled (or failed to): it leaves its slot for finishing_ and `finish` runs
  // on the slot's encoder after the job's earlier events, then the job leaves finishing_.
  void EndSampling(Slot& slot, const std::shared_ptr<Job>& job, std::function<void()> finish);
  void OnStep(Job& job, int stage, int step, int steps_in_stage);
  void WatchdogLoop();
  // Emits a job event unless the job has ended or was abandoned; non-terminal events of a
  // cancelled job are dropped. `terminal` ends the job: nothing of it is emitted afterwards.
  void Report(Job& job, tpdiff::v1::JobEvent event, bool terminal = false);
  void ReportFailed(Job& job, const absl::Status& status);
  bool HasWorkOrStopping() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool IdleLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  EventSink& sink_;
  const JobRunnerOptions options_;
  std::unique_ptr<common::Clock> own_clock_;  // when options_.clock is null
  const common::Clock& clock_;
  ModelSet models_;  // not changed after construction, read by every slot thread

  mutable absl::Mutex mu_;
  std::vector<std::unique_ptr<Slot>> slots_ ABSL_GUARDED_BY(mu_);
  // Slots the watchdog replaced; their threads may still be stuck in a network call.
  std::vector<std::unique_ptr<Slot>> retired_ ABSL_GUARDED_BY(mu_);
  std::deque<std::shared_ptr<Job>> pending_ ABSL_GUARDED_BY(mu_);
  // Sampled jobs whose result is still being encoded or sent.
  std::vector<std::shared_ptr<Job>> finishing_ ABSL_GUARDED_BY(mu_);
  uint64_t jobs_started_ ABSL_GUARDED_BY(mu_) = 0;  // wakes the watchdog for a new deadline
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread watchdog_;
  absl::Mutex join_mu_;  // serialises Shutdown
  bool joined_ ABSL_GUARDED_BY(join_mu_) = false;
};

// Failed.retryable for a job error: true where another worker or attempt may succeed
// (UNAVAILABLE, RESOURCE_EXHAUSTED such as GPU memory, ABORTED, INTERNAL, UNKNOWN,
// FAILED_PRECONDITION such as a model not loaded here), false for bad input.
bool IsRetryable(absl::StatusCode code);

}  // namespace tpdiff::worker

#endif  // TPDIFF_WORKER_JOB_RUNNER_H_
