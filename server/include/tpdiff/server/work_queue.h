#ifndef TPDIFF_SERVER_WORK_QUEUE_H_
#define TPDIFF_SERVER_WORK_QUEUE_H_

#include <cstddef>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "tpdiff/v1/video_generation.pb.h"

namespace tpdiff::server {

// A job waiting for a worker slot.
struct QueuedJob {
  std::string job_id;
  tpdiff::v1::Priority priority = tpdiff::v1::PRIORITY_STANDARD;  // never UNSPECIFIED
  std::string model;
  absl::Time enqueued_at;                        // first admission; kept across re-queues
  absl::Time deadline = absl::InfiniteFuture();  // not started after this instant
  std::string tenant;                            // owner, for its max_queued_jobs
  absl::Time queued_at;                          // admission or last re-queue
  absl::Time call_deadline = absl::InfiniteFuture();  // the submitting call's deadline
};

// RESOURCE_EXHAUSTED "queue for priority PRIORITY_<P> is full (<n> jobs)", for every queue.
absl::Status QueueFullError(tpdiff::v1::Priority priority, size_t capacity);

// Told by a shared queue what other fronts did. Called on the queue's own thread with no
// lock of the queue held; implementations take their own locks and must not block long.
class WorkQueueListener {
 public:
  virtual ~WorkQueueListener() = default;
  // A job of `model` was queued (possibly by another front): free workers may take it.
  virtual void OnJobQueued(const std::string& model) = 0;
  // Another front cancelled `job_id`, which may run on one of this front's workers.
  virtual void OnCancelRequested(const std::string& job_id, const std::string& reason) = 0;
};

// The admission queue of jobs waiting for a worker: bounded per priority and per tenant,
// ordered by priority with aging so that nothing starves. PriorityJobQueue (job_queue.h)
// keeps it in memory for one front; RedisWorkQueue (redis_state.h) shares it between fronts.
//
// A popped job is running, leased to this front, until Finished or PushFront. A shared queue
// records that lease with the front's liveness, so that the running jobs of a front that
// died are found by another (TakeOrphans).
//
// Ownership: holds copies of QueuedJob. Thread safety: none required; the owner (Dispatcher)
// calls every method with its own mutex held, so implementations must not call back into it.
// Cost: the Dispatcher calls Push, Pop, Ahead, TakeExpired and the sizes on every submit and
// freed worker slot, so implementations keep them sub-linear in the queue length; TakeModel
// may be linear in that model's jobs, TakeAll in all jobs (periodic work and shutdown).
class WorkQueue {
 public:
  virtual ~WorkQueue() = default;

  // Appends at the back of its priority. RESOURCE_EXHAUSTED naming the tenant's limit when
  // `max_tenant_queued` (> 0) jobs of job.tenant are queued already (CheckTenantQueuedJobs),
  // else naming the priority and the capacity when that priority is full; UNAVAILABLE when a
  // shared queue cannot be reached. Both checks and the push are one atomic step.
  virtual absl::Status Push(QueuedJob job, size_t max_tenant_queued) = 0;
  absl::Status Push(QueuedJob job) { return Push(std::move(job), 0); }
  // Puts a re-queued job at the front of its priority. Never fails: the job was already
  // admitted, so it may exceed the capacity.
  virtual void PushFront(QueuedJob job) = 0;
  // Removes and returns the next job of one of `models` (the models a worker serves): the
  // lowest effective level, then the oldest.
  virtual std::optional<QueuedJob> Pop(absl::Time now, const std::set<std::string>& models) = 0;
  // Removes a job (cancelled); false when it is not queued.
  virtual bool Remove(const std::string& job_id) = 0;
  // Removes and returns the jobs whose deadline is at or before `now`.
  virtual std::vector<QueuedJob> TakeExpired(absl::Time now) = 0;
  // Removes and returns the jobs of `model` first admitted at or before `enqueued_by`.
  virtual std::vector<QueuedJob> TakeModel(const std::string& model, absl::Time enqueued_by) = 0;
  // The models that have queued jobs.
  virtual std::vector<std::string> Models() const = 0;
  // Jobs that would start before a job of `priority` pushed at the back at `now`, if nothing
  // else arrived: its queue position.
  virtual size_t Ahead(tpdiff::v1::Priority priority, absl::Time now) = 0;
  virtual size_t Size(tpdiff::v1::Priority priority) const = 0;
  virtual size_t TotalSize() const = 0;
  virtual bool Full(tpdiff::v1::Priority priority) const = 0;
  // All queued jobs, in no particular order (for shutdown).
  virtual std::vector<QueuedJob> TakeAll() = 0;

  // Shared state: the rest is for queues that several fronts use; the in-memory defaults
  // below describe a queue of one front.
  virtual bool shared() const { return false; }
  // OK while the queue's backend answers; otherwise the UNAVAILABLE naming it.
  virtual absl::Status Health() const { return absl::OkStatus(); }
  // The job popped earlier has ended (or was cancelled): forget its lease.
  virtual void Finished(const std::string& job_id) {}
  // Jobs popped by fronts that stopped renewing their liveness, now leased to this front;
  // the caller re-queues them.
  virtual std::vector<QueuedJob> TakeOrphans(absl::Time now) { return {}; }
  // Renews this front's liveness and announces the models its workers serve.
  virtual void Heartbeat(absl::Time now, const std::vector<std::string>& served_models) {}
  // True when a live front other than this one has a serving worker for `model`.
  virtual bool ServedElsewhere(const std::string& model) { return false; }
  // Tells the front running `job_id` (possibly another) to stop it on its worker.
  virtual void RequestCancel(const std::string& job_id, const std::string& reason) {}
  // Registers for what other fronts do (nullptr to stop); the listener must outlive it.
  virtual void SetListener(WorkQueueListener* listener) {}
};

}  // namespace tpdiff::server

#endif  // TPDIFF_SERVER_WORK_QUEUE_H_
