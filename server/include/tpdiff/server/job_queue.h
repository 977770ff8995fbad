#ifndef TPDIFF_SERVER_JOB_QUEUE_H_
#define TPDIFF_SERVER_JOB_QUEUE_H_

#include <array>
#include <cstddef>
#include <deque>
#include <functional>
#include <optional>
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

// The admission queue: bounded per priority, with aging so that nothing starves.
//
// Ownership: holds copies of QueuedJob. Thread safety: none; the owner (Dispatcher) calls
// every method with its own mutex held.
class JobQueue {
 public:
  virtual ~JobQueue() = default;

  // Appends at the back of its priority. RESOURCE_EXHAUSTED naming the priority and the
  // capacity when that priority is full.
  virtual absl::Status Push(QueuedJob job) = 0;
  // Puts a re-queued job at the front of its priority. Never fails: the job was already
  // admitted, so it may exceed the capacity.
  virtual void PushFront(QueuedJob job) = 0;
  // Removes and returns the next job that `eligible` accepts (e.g. the worker has its model):
  // the lowest effective level, then the oldest; see PriorityJobQueue.
  virtual std::optional<QueuedJob> Pop(absl::Time now,
                                       const std::function<bool(const QueuedJob&)>& eligible) = 0;
  // Removes a job (cancelled); false when it is not queued.
  virtual bool Remove(const std::string& job_id) = 0;
  // Removes and returns the jobs whose deadline is at or before `now`.
  virtual std::vector<QueuedJob> TakeExpired(absl::Time now) = 0;
  // Jobs that would start before `job_id` if nothing else arrived; nullopt when not queued.
  virtual std::optional<size_t> Position(const std::string& job_id, absl::Time now) const = 0;
  virtual size_t Size(tpdiff::v1::Priority priority) const = 0;
  virtual size_t TotalSize() const = 0;
  virtual bool Full(tpdiff::v1::Priority priority) const = 0;
  // All queued jobs, in no particular order (for shutdown).
  virtual std::vector<QueuedJob> TakeAll() = 0;
};

// JobQueue with one FIFO per priority (INTERACTIVE, STANDARD, BATCH) of `capacity` jobs each.
// Aging: a job's effective level is its priority level (INTERACTIVE 0, STANDARD 1, BATCH 2)
// minus one per `aging_interval` waited, so a BATCH job waiting 2 intervals competes with
// fresh INTERACTIVE jobs and, being older, goes first. Not thread-safe (see JobQueue).
class PriorityJobQueue final : public JobQueue {
 public:
  PriorityJobQueue(size_t capacity_per_priority, absl::Duration aging_interval);

  absl::Status Push(QueuedJob job) override;
  void PushFront(QueuedJob job) override;
  std::optional<QueuedJob> Pop(absl::Time now,
                               const std::function<bool(const QueuedJob&)>& eligible) override;
  bool Remove(const std::string& job_id) override;
  std::vector<QueuedJob> TakeExpired(absl::Time now) override;
  std::optional<size_t> Position(const std::string& job_id, absl::Time now) const override;
  size_t Size(tpdiff::v1::Priority priority) const override;
  size_t TotalSize() const override;
  bool Full(tpdiff::v1::Priority priority) const override;
  std::vector<QueuedJob> TakeAll() override;

 private:
  static constexpr int kLevels = 3;
  static int Level(tpdiff::v1::Priority priority);
  // Smaller sorts first: (effective level, enqueued_at).
  bool Before(const QueuedJob& a, const QueuedJob& b, absl::Time now) const;
  int64_t EffectiveLevel(const QueuedJob& job, absl::Time now) const;

  size_t capacity_;
  absl::Duration aging_interval_;
  std::array<std::deque<QueuedJob>, kLevels> queues_;
};

}  // namespace tpdiff::server

#endif  // TPDIFF_SERVER_JOB_QUEUE_H_
