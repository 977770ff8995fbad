#ifndef TPDIFF_SERVER_WORK_QUEUE_H_
#define TPDIFF_SERVER_WORK_QUEUE_H_

#include <cstddef>
#include <optional>
#include <set>
#include <string>
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
};

// The admission queue of jobs waiting for a worker: bounded per priority, ordered by
// priority with aging so that nothing starves. PriorityJobQueue (job_queue.h) keeps it in
// memory; a shared backend may implement it for several fronts.
//
// Ownership: holds copies of QueuedJob. Thread safety: none required; the owner (Dispatcher)
// calls every method with its own mutex held, so implementations must not call back into it.
// Cost: the Dispatcher calls Push, Pop, Ahead, TakeExpired and the sizes on every submit and
// freed worker slot, so implementations keep them sub-linear in the queue length; TakeModel
// may be linear in that model's jobs, TakeAll in all jobs (periodic work and shutdown).
class WorkQueue {
 public:
  virtual ~WorkQueue() = default;

  // Appends at the back of its priority. RESOURCE_EXHAUSTED naming the priority and the
  // capacity when that priority is full.
  virtual absl::Status Push(QueuedJob job) = 0;
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
};

}  // namespace tpdiff::server

#endif  // TPDIFF_SERVER_WORK_QUEUE_H_
