#include "tpdiff/server/job_queue.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace tpdiff::server {

PriorityJobQueue::PriorityJobQueue(size_t capacity_per_priority, absl::Duration aging_interval)
    : capacity_(capacity_per_priority), aging_interval_(aging_interval) {}

int PriorityJobQueue::Level(tpdiff::v1::Priority priority) {
  switch (priority) {
    case tpdiff::v1::PRIORITY_INTERACTIVE: return 0;
    case tpdiff::v1::PRIORITY_BATCH: return 2;
    default: return 1;
  }
}

int64_t PriorityJobQueue::EffectiveLevel(const QueuedJob& job, absl::Time now) const {
  int64_t aged = 0;
  if (aging_interval_ > absl::ZeroDuration() && now > job.enqueued_at) {
    absl::Duration remainder;
    aged = absl::IDivDuration(now - job.enqueued_at, aging_interval_, &remainder);
  }
  return Level(job.priority) - aged;
}

bool PriorityJobQueue::Before(const QueuedJob& a, const QueuedJob& b, absl::Time now) const {
  const int64_t la = EffectiveLevel(a, now), lb = EffectiveLevel(b, now);
  if (la != lb) return la < lb;
  if (a.enqueued_at != b.enqueued_at) return a.enqueued_at < b.enqueued_at;
  return Level(a.priority) < Level(b.priority);
}

absl::Status PriorityJobQueue::Push(QueuedJob job) {
  std::deque<QueuedJob>& queue = queues_[Level(job.priority)];
  if (queue.size() >= capacity_) {
    return absl::ResourceExhaustedError(
        absl::StrCat("queue for priority ", tpdiff::v1::Priority_Name(job.priority),
                     " is full (", capacity_, " jobs)"));
  }
  queue.push_back(std::move(job));
  return absl::OkStatus();
}

void PriorityJobQueue::PushFront(QueuedJob job) {
  queues_[Level(job.priority)].push_front(std::move(job));
}

std::optional<QueuedJob> PriorityJobQueue::Pop(
    absl::Time now, const std::function<bool(const QueuedJob&)>& eligible) {
  // The candidate of each priority is its first eligible job (FIFO within a priority);
  // candidates compete by effective level.
  std::deque<QueuedJob>* best_queue = nullptr;
  std::deque<QueuedJob>::iterator best;
  for (std::deque<QueuedJob>& queue : queues_) {
    auto it = std::find_if(queue.begin(), queue.end(), eligible);
    if (it == queue.end()) continue;
    if (best_queue == nullptr || Before(*it, *best, now)) {
      best_queue = &queue;
      best = it;
    }
  }
  if (best_queue == nullptr) return std::nullopt;
  QueuedJob job = std::move(*best);
  best_queue->erase(best);
  return job;
}

bool PriorityJobQueue::Remove(const std::string& job_id) {
  for (std::deque<QueuedJob>& queue : queues_) {
    auto it = std::find_if(queue.begin(), queue.end(),
                           [&](const QueuedJob& j) { return j.job_id == job_id; });
    if (it != queue.end()) {
      queue.erase(it);
      return true;
    }
  }
  return false;
}

std::vector<QueuedJob> PriorityJobQueue::TakeExpired(absl::Time now) {
  std::vector<QueuedJob> expired;
  for (std::deque<QueuedJob>& queue : queues_) {
    auto keep = std::stable_partition(queue.begin(), queue.end(),
                                      [&](const QueuedJob& j) { return j.deadline > now; });
    std::move(keep, queue.end(), std::back_inserter(expired));
    queue.erase(keep, queue.end());
  }
  return expired;
}

std::optional<size_t> PriorityJobQueue::Position(const std::string& job_id,
                                                 absl::Time now) const {
  const QueuedJob* target = nullptr;
  size_t index_in_queue = 0;
  for (const std::deque<QueuedJob>& queue : queues_) {
    for (size_t i = 0; i < queue.size(); ++i) {
      if (queue[i].job_id == job_id) {
        target = &queue[i];
        index_in_queue = i;
      }
    }
  }
  if (target == nullptr) return std::nullopt;
  // Jobs ahead in its own FIFO, plus jobs of other priorities that sort before it.
  size_t ahead = index_in_queue;
  const std::deque<QueuedJob>& own = queues_[Level(target->priority)];
  for (const std::deque<QueuedJob>& queue : queues_) {
    if (&queue == &own) continue;
    for (const QueuedJob& job : queue) ahead += Before(job, *target, now) ? 1 : 0;
  }
  return ahead;
}

size_t PriorityJobQueue::Size(tpdiff::v1::Priority priority) const {
  return queues_[Level(priority)].size();
}

size_t PriorityJobQueue::TotalSize() const {
  size_t total = 0;
  for (const auto& queue : queues_) total += queue.size();
  return total;
}

bool PriorityJobQueue::Full(tpdiff::v1::Priority priority) const {
  return queues_[Level(priority)].size() >= capacity_;
}

std::vector<QueuedJob> PriorityJobQueue::TakeAll() {
  std::vector<QueuedJob> all;
  for (auto& queue : queues_) {
    std::move(queue.begin(), queue.end(), std::back_inserter(all));
    queue.clear();
  }
  return all;
}

}  // namespace tpdiff::server
