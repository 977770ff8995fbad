#include "tpdiff/server/job_queue.h"

#include <algorithm>
#include <limits>

#include "absl/strings/str_cat.h"
#include "tpdiff/server/admission.h"

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

void PriorityJobQueue::Insert(QueuedJob job, int64_t seq) {
  const int level = Level(job.priority);
  fifos_[level][job.model].emplace(seq, job.job_id);
  ++sizes_[level];
  if (job.deadline != absl::InfiniteFuture()) deadlines_.emplace(job.deadline, job.job_id);
  for (int k = 1; k <= level; ++k) not_aged_[level][k].emplace(job.enqueued_at, seq);
  ++by_tenant_[job.tenant];
  const std::string id = job.job_id;
  entries_[id] = Entry{std::move(job), level, seq, 0};
}

QueuedJob PriorityJobQueue::Erase(std::unordered_map<std::string, Entry>::iterator it) {
  Entry& entry = it->second;
  const int level = entry.level;
  auto fifo = fifos_[level].find(entry.job.model);
  fifo->second.erase(entry.seq);
  if (fifo->second.empty()) fifos_[level].erase(fifo);
  --sizes_[level];
  if (entry.job.deadline != absl::InfiniteFuture()) {
    deadlines_.erase({entry.job.deadline, entry.job.job_id});
  }
  for (int k = 1; k <= level; ++k) {
    if (entry.aged_bits & (1u << k)) {
      --aged_[level][k];
    } else {
      not_aged_[level][k].erase({entry.job.enqueued_at, entry.seq});
    }
  }
  auto tenant = by_tenant_.find(entry.job.tenant);
  if (tenant != by_tenant_.end() && --tenant->second == 0) by_tenant_.erase(tenant);
  QueuedJob job = std::move(entry.job);
  entries_.erase(it);
  return job;
}

absl::Status QueueFullError(tpdiff::v1::Priority priority, size_t capacity) {
  return absl::ResourceExhaustedError(absl::StrCat(
      "queue for priority ", tpdiff::v1::Priority_Name(priority), " is full (", capacity, " jobs)"));
}

absl::Status PriorityJobQueue::Push(QueuedJob job, size_t max_tenant_queued) {
  const int level = Level(job.priority);
  if (max_tenant_queued > 0) {
    auto queued = by_tenant_.find(job.tenant);
    if (absl::Status limit = CheckTenantQueuedJobs(
            job.tenant, queued == by_tenant_.end() ? 0 : queued->second, max_tenant_queued);
        !limit.ok()) {
      return limit;
    }
  }
  if (sizes_[level] >= capacity_) return QueueFullError(job.priority, capacity_);
  Insert(std::move(job), ++back_seq_[level]);
  return absl::OkStatus();
}

void PriorityJobQueue::PushFront(QueuedJob job) {
  const int level = Level(job.priority);
  Insert(std::move(job), --front_seq_[level]);
}

std::optional<QueuedJob> PriorityJobQueue::Pop(absl::Time now,
                                               const std::set<std::string>& models) {
  // The candidate of each priority is its first job of a served model (FIFO within a
  // priority); candidates compete by effective level.
  const Entry* best = nullptr;
  for (int level = 0; level < kLevels; ++level) {
    const std::string* first = nullptr;
    int64_t first_seq = std::numeric_limits<int64_t>::max();
    for (const std::string& model : models) {
      auto fifo = fifos_[level].find(model);
      if (fifo == fifos_[level].end()) continue;
      const auto& [seq, id] = *fifo->second.begin();
      if (seq < first_seq) {
        first_seq = seq;
        first = &id;
      }
    }
    if (first == nullptr) continue;
    const Entry& candidate = entries_.at(*first);
    if (best == nullptr || Before(candidate.job, best->job, now)) best = &candidate;
  }
  if (best == nullptr) return std::nullopt;
  return Erase(entries_.find(best->job.job_id));
}

bool PriorityJobQueue::Remove(const std::string& job_id) {
  auto it = entries_.find(job_id);
  if (it == entries_.end()) return false;
  Erase(it);
  return true;
}

std::vector<QueuedJob> PriorityJobQueue::TakeExpired(absl::Time now) {
  std::vector<QueuedJob> expired;
  while (!deadlines_.empty() && deadlines_.begin()->first <= now) {
    expired.push_back(Erase(entries_.find(deadlines_.begin()->second)));
  }
  return expired;
}

std::vector<QueuedJob> PriorityJobQueue::TakeModel(const std::string& model,
                                                   absl::Time enqueued_by) {
  std::vector<std::string> ids;
  for (const auto& level : fifos_) {
    auto fifo = level.find(model);
    if (fifo == level.end()) continue;
    for (const auto& [seq, id] : fifo->second) {
      if (entries_.at(id).job.enqueued_at <= enqueued_by) ids.push_back(id);
    }
  }
  std::vector<QueuedJob> taken;
  for (const std::string& id : ids) taken.push_back(Erase(entries_.find(id)));
  return taken;
}

std::vector<std::string> PriorityJobQueue::Models() const {
  std::set<std::string> models;
  for (const auto& level : fifos_) {
    for (const auto& [model, fifo] : level) models.insert(model);
  }
  return {models.begin(), models.end()};
}

void PriorityJobQueue::AdvanceAging(int level, int k, absl::Time now) {
  const absl::Time aged_by = now - k * aging_interval_;
  std::set<AgeKey>& pending = not_aged_[level][k];
  while (!pending.empty() && pending.begin()->first <= aged_by) {
    // Keys are unique per level by seq; find the entry through its FIFO.
    const int64_t seq = pending.begin()->second;
    for (auto& [model, fifo] : fifos_[level]) {
      auto it = fifo.find(seq);
      if (it == fifo.end()) continue;
      entries_.at(it->second).aged_bits |= 1u << k;
      break;
    }
    ++aged_[level][k];
    pending.erase(pending.begin());
  }
}

size_t PriorityJobQueue::Ahead(tpdiff::v1::Priority priority, absl::Time now) {
  // A new job goes behind its own FIFO and behind every higher priority. A job of a lower
  // priority (level l > own) sorts before it once aged by l - own intervals: then its
  // effective level is at most the new job's and it is older.
  const int own = Level(priority);
  size_t ahead = 0;
  for (int level = 0; level <= own; ++level) ahead += sizes_[level];
  if (aging_interval_ <= absl::ZeroDuration()) return ahead;
  for (int level = own + 1; level < kLevels; ++level) {
    const int k = level - own;
    AdvanceAging(level, k, now);
    ahead += aged_[level][k];
  }
  return ahead;
}

std::optional<size_t> PriorityJobQueue::Position(const std::string& job_id,
                                                 absl::Time now) const {
  auto target = entries_.find(job_id);
  if (target == entries_.end()) return std::nullopt;
  const Entry& own = target->second;
  // Jobs ahead in its own FIFO, plus jobs of other priorities that sort before it.
  size_t ahead = 0;
  for (const auto& [id, entry] : entries_) {
    if (entry.level == own.level) {
      ahead += entry.seq < own.seq ? 1 : 0;
    } else {
      ahead += Before(entry.job, own.job, now) ? 1 : 0;
    }
  }
  return ahead;
}

size_t PriorityJobQueue::Size(tpdiff::v1::Priority priority) const {
  return sizes_[Level(priority)];
}

size_t PriorityJobQueue::TotalSize() const { return entries_.size(); }

bool PriorityJobQueue::Full(tpdiff::v1::Priority priority) const {
  return sizes_[Level(priority)] >= capacity_;
}

std::vector<QueuedJob> PriorityJobQueue::TakeAll() {
  std::vector<QueuedJob> all;
  all.reserve(entries_.size());
  for (auto& [id, entry] : entries_) all.push_back(std::move(entry.job));
  entries_.clear();
  by_tenant_.clear();
  for (auto& level : fifos_) level.clear();
  sizes_.fill(0);
  deadlines_.clear();
  for (auto& level : not_aged_) {
    for (auto& pending : level) pending.clear();
  }
  for (auto& level : aged_) level.fill(0);
  return all;
}

}  // namespace tpdiff::server
