#ifndef TPDIFF_SERVER_JOB_QUEUE_H_
#define TPDIFF_SERVER_JOB_QUEUE_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "tpdiff/server/work_queue.h"
#include "tpdiff/v1/video_generation.pb.h"

namespace tpdiff::server {

// The in-memory WorkQueue: one FIFO per priority (INTERACTIVE, STANDARD, BATCH) of
// `capacity` jobs each. Aging: a job's effective level is its priority level (INTERACTIVE 0,
// STANDARD 1, BATCH 2) minus one per `aging_interval` waited, so a BATCH job waiting 2
// intervals competes with fresh INTERACTIVE jobs and, being older, goes first.
//
// Each FIFO is split by model (ordered by a per-priority sequence number), so Pop looks only
// at the head of each (priority, model the worker serves): O(models log n). Ahead counts, per
// lower priority, the jobs old enough to have aged past the new job's level; those counts are
// advanced lazily as time passes (amortized O(log n) per job). Not thread-safe (see WorkQueue).
class PriorityJobQueue final : public WorkQueue {
 public:
  PriorityJobQueue(size_t capacity_per_priority, absl::Duration aging_interval);

  using WorkQueue::Push;
  absl::Status Push(QueuedJob job, size_t max_tenant_queued) override;
  void PushFront(QueuedJob job) override;
  std::optional<QueuedJob> Pop(absl::Time now, const std::set<std::string>& models) override;
  bool Remove(const std::string& job_id) override;
  std::vector<QueuedJob> TakeExpired(absl::Time now) override;
  std::vector<QueuedJob> TakeModel(const std::string& model, absl::Time enqueued_by) override;
  std::vector<std::string> Models() const override;
  size_t Ahead(tpdiff::v1::Priority priority, absl::Time now) override;
  size_t Size(tpdiff::v1::Priority priority) const override;
  size_t TotalSize() const override;
  bool Full(tpdiff::v1::Priority priority) const override;
  std::vector<QueuedJob> TakeAll() override;

  // Jobs that would start before the queued `job_id` if nothing else arrived; nullopt when
  // not queued. O(n): for inspection, not for the submit path (that uses Ahead).
  std::optional<size_t> Position(const std::string& job_id, absl::Time now) const;

 private:
  static constexpr int kLevels = 3;
  using AgeKey = std::pair<absl::Time, int64_t>;  // (enqueued_at, seq)
  struct Entry {
    QueuedJob job;
    int level = 0;
    int64_t seq = 0;        // FIFO order within the level
    unsigned aged_bits = 0;  // bit k: counted in aged_[level][k]
  };

  static int Level(tpdiff::v1::Priority priority);
  // Smaller sorts first: (effective level, enqueued_at).
  bool Before(const QueuedJob& a, const QueuedJob& b, absl::Time now) const;
  int64_t EffectiveLevel(const QueuedJob& job, absl::Time now) const;
  void Insert(QueuedJob job, int64_t seq);
  QueuedJob Erase(std::unordered_map<std::string, Entry>::iterator it);
  // Moves jobs that have waited k intervals by `now` into the aged_[level][k] counts.
  void AdvanceAging(int level, int k, absl::Time now);

  size_t capacity_;
  absl::Duration aging_interval_;
  std::unordered_map<std::string, Entry> entries_;
  // level -> model -> seq -> job id
  std::array<std::map<std::string, std::map<int64_t, std::string>>, kLevels> fifos_;
  std::array<size_t, kLevels> sizes_{};
  std::array<int64_t, kLevels> front_seq_{};  // next PushFront gets front_seq_ - 1
  std::array<int64_t, kLevels> back_seq_{};   // next Push gets back_seq_ + 1
  std::set<std::pair<absl::Time, std::string>> deadlines_;  // finite deadlines only
  // For level l and 1 <= k <= l: jobs not yet known to have waited k intervals, and how many
  // have.
  std::array<std::array<std::set<AgeKey>, kLevels>, kLevels> not_aged_;
  std::array<std::array<size_t, kLevels>, kLevels> aged_{};
  std::unordered_map<std::string, size_t> by_tenant_;  // queued jobs per tenant
};

}  // namespace tpdiff::server

#endif  // TPDIFF_SERVER_JOB_QUEUE_H_
