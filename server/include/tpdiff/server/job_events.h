#ifndef TPDIFF_SERVER_JOB_EVENTS_H_
#define TPDIFF_SERVER_JOB_EVENTS_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "tpdiff/server/job_store.h"
#include "tpdiff/server/metrics.h"
#include "tpdiff/v1/video_generation.pb.h"

namespace tpdiff::server {

// The current run of a job, as the translation of its worker's events needs it.
struct JobRun {
  std::string worker_id;
  uint32_t attempt = 1;
  absl::Time created_at;   // admission
  absl::Time assigned_at;  // this attempt's assignment
  uint32_t num_frames = 0;
  bool preview_seen = false;  // a stage preview of this attempt was already recorded
};

// What the front does with an event of a job's current attempt.
enum class WorkerEventAction {
  kAppend,   // append `event` to the job's log; the job keeps running
  kFinish,   // append `event` as the job's end (completed or failed) and free its slot
  kRequeue,  // the worker gave the job up: free the slot and queue it for another worker
  kIgnore,   // not the worker's to send (queued / requeued are the front's own events)
};

struct TranslatedEvent {
  WorkerEventAction action = WorkerEventAction::kIgnore;
  tpdiff::v1::JobEvent event;
};

// Turns a worker's event of the job's current attempt into the job event the front stores:
// started gets the worker id and attempt, completed gets the queue and total times (the
// worker knows only sampling and encoding), a failure without a code is INTERNAL. Pure.
TranslatedEvent TranslateWorkerEvent(tpdiff::v1::JobEvent event, const JobRun& run,
                                     absl::Time now);

// Job events the front itself writes, and the metrics that go with each (job store appends).
//
// Ownership: borrows the store and metrics (they must outlive it). Thread safety: as the
// store and metrics (thread-safe); the Dispatcher calls it with its lock held, which the
// store allows (it never calls out while holding its own lock).
class JobEventLog {
 public:
  JobEventLog(JobStore& store, ServerMetrics& metrics) : store_(store), metrics_(metrics) {}

  // Stores the new job (QUEUED, attempt 1, owned by `tenant`) with its Queued event at
  // `position`. ALREADY_EXISTS when the job id is taken.
  absl::Status Create(const std::string& job_id, const tpdiff::v1::GenerateRequest& request,
                      const std::string& tenant, absl::Time now, size_t position);
  // `label` is the bounded metric reason, `reason` the text clients see.
  void Requeued(const std::string& job_id, uint32_t attempt, const std::string& label,
                const std::string& reason);
  // A translated kAppend / kFinish event; records the run's metrics (first preview, job and
  // stage durations, frames, outcome). Returns the append's status: FAILED_PRECONDITION when
  // the job already ended (another front cancelled it), UNAVAILABLE when a shared store is
  // unreachable.
  absl::Status Record(const std::string& job_id, JobRun& run, tpdiff::v1::JobEvent event,
                      absl::Time now);
  // Appends the job's terminal event and counts its outcome (once, when appended).
  absl::Status Finish(const std::string& job_id, tpdiff::v1::JobEvent event);

  static tpdiff::v1::JobEvent Failed(absl::StatusCode code, const std::string& message,
                                     bool retryable);
  static tpdiff::v1::JobEvent Cancelled(const std::string& source);
  // The ends of a queued job the front decides: its call's deadline passed (Cancelled
  // "deadline") or else its max_queue_wait; no serving worker had its model for `waited`; it
  // lost its worker `attempts` times, the last for `reason`.
  static tpdiff::v1::JobEvent QueueDeadlinePassed(bool call_deadline,
                                                  absl::Duration max_queue_wait);
  static tpdiff::v1::JobEvent Unservable(const std::string& model, absl::Duration waited);
  static tpdiff::v1::JobEvent AttemptsExhausted(uint32_t attempts, const std::string& reason);

 private:
  JobStore& store_;
  ServerMetrics& metrics_;
};

}  // namespace tpdiff::server

#endif  // TPDIFF_SERVER_JOB_EVENTS_H_
