#include "tpdiff/server/job_store.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "tpdiff/common/proto_time.h"

namespace tpdiff::server {

using tpdiff::v1::Job;
using tpdiff::v1::JobEvent;

void ApplyEvent(const JobEvent& event, Job* job) {
  job->set_last_seq(event.seq());
  switch (event.kind_case()) {
    case JobEvent::kStarted:
      job->set_state(tpdiff::v1::JOB_STATE_RUNNING);
      if (event.started().attempt() > 0) job->set_attempt(event.started().attempt());
      break;
    case JobEvent::kRequeued:
      job->set_state(tpdiff::v1::JOB_STATE_QUEUED);
      job->set_attempt(event.requeued().attempt());
      job->set_result_bytes(0);  // the next attempt sends its result from offset 0
      break;
    case JobEvent::kResultChunk:
      if (!event.result_chunk().mime().empty()) job->set_result_mime(event.result_chunk().mime());
      job->set_result_bytes(
          std::max<uint64_t>(job->result_bytes(),
                             event.result_chunk().offset() + event.result_chunk().data().size()));
      break;
    case JobEvent::kCompleted:
      job->set_state(tpdiff::v1::JOB_STATE_COMPLETED);
      *job->mutable_timings() = event.completed().timings();
      if (event.completed().result_bytes() > 0) {
        job->set_result_bytes(event.completed().result_bytes());
      }
      *job->mutable_finished_at() = event.timestamp();
      break;
    case JobEvent::kFailed:
      job->set_state(tpdiff::v1::JOB_STATE_FAILED);
      job->set_error(event.failed().message());
      *job->mutable_finished_at() = event.timestamp();
      break;
    case JobEvent::kCancelled:
      job->set_state(tpdiff::v1::JOB_STATE_CANCELLED);
      job->set_error(absl::StrCat("cancelled (", event.cancelled().source(), ")"));
      *job->mutable_finished_at() = event.timestamp();
      break;
    default:
      break;
  }
}

absl::Status RequestIdTaken(const std::string& request_id) {
  return absl::AlreadyExistsError(
      absl::StrCat("request_id ", request_id, " already names a job of the tenant"));
}

bool IsTerminal(const JobEvent& event) {
  return event.has_completed() || event.has_failed() || event.has_cancelled();
}

bool IsTerminal(tpdiff::v1::JobState state) {
  return state == tpdiff::v1::JOB_STATE_COMPLETED || state == tpdiff::v1::JOB_STATE_FAILED ||
         state == tpdiff::v1::JOB_STATE_CANCELLED;
}

InMemoryJobStore::InMemoryJobStore(const Clock& clock, absl::Duration ttl, size_t byte_budget)
    : clock_(clock), ttl_(ttl), byte_budget_(byte_budget) {}

void InMemoryJobStore::Notify(const Notifications& watchers) {
  for (const auto& watcher : watchers) watcher->OnJobUpdated();
}

absl::Status InMemoryJobStore::Create(Job job, const std::string& tenant) {
  absl::MutexLock lock(&mu_);
  if (jobs_.count(job.job_id()) > 0) {
    return absl::AlreadyExistsError(absl::StrCat("job ", job.job_id(), " exists"));
  }
  if (!job.request_id().empty() && by_request_id_.count({tenant, job.request_id()}) > 0) {
    return RequestIdTaken(job.request_id());
  }
  job.set_state(tpdiff::v1::JOB_STATE_QUEUED);
  if (!job.request_id().empty()) by_request_id_[{tenant, job.request_id()}] = job.job_id();
  Record& record = jobs_[job.job_id()];
  record.bytes = job.ByteSizeLong() + tenant.size();
  bytes_ += record.bytes;
  record.job = std::move(job);
  record.tenant = tenant;
  return absl::OkStatus();
}

void InMemoryJobStore::Discard(const std::string& job_id) {
  Notifications notify;
  {
    absl::MutexLock lock(&mu_);
    auto it = jobs_.find(job_id);
    if (it != jobs_.end()) EraseLocked(it, &notify);
  }
  Notify(notify);
}

std::optional<std::string> InMemoryJobStore::FindByRequestId(const std::string& tenant,
                                                             const std::string& request_id) const {
  absl::MutexLock lock(&mu_);
  auto it = by_request_id_.find({tenant, request_id});
  if (it == by_request_id_.end()) return std::nullopt;
  return it->second;
}

absl::StatusOr<std::string> InMemoryJobStore::Owner(const std::string& job_id) const {
  absl::MutexLock lock(&mu_);
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return absl::NotFoundError(absl::StrCat("job ", job_id, " not found"));
  return it->second.tenant;
}

absl::Status CheckAccess(const JobStore& store, const std::string& job_id,
                         const std::string& tenant) {
  absl::StatusOr<std::string> owner = store.Owner(job_id);
  if (owner.ok() && *owner == tenant) return absl::OkStatus();
  return absl::NotFoundError(absl::StrCat("job ", job_id, " not found"));
}

absl::StatusOr<int64_t> InMemoryJobStore::Append(const std::string& job_id, JobEvent event) {
  Notifications notify;
  int64_t seq = 0;
  {
    absl::MutexLock lock(&mu_);
    auto it = jobs_.find(job_id);
    if (it == jobs_.end()) return absl::NotFoundError(absl::StrCat("job ", job_id, " not found"));
    Record& record = it->second;
    if (record.finished_at.has_value()) {
      return absl::FailedPreconditionError(absl::StrCat("job ", job_id, " already ended"));
    }
    const absl::Time now = clock_.Now();
    seq = static_cast<int64_t>(record.events.size()) + 1;
    event.set_job_id(job_id);
    event.set_seq(seq);
    *event.mutable_timestamp() = common::ToProtoTimestamp(now);
    ApplyEvent(event, &record.job);
    const size_t size = event.ByteSizeLong();
    record.bytes += size;
    bytes_ += size;
    const bool terminal = IsTerminal(event);
    record.events.push_back(std::make_shared<const JobEvent>(std::move(event)));
    if (terminal) {
      record.finished_at = now;
      finished_order_.push_back(job_id);
    }
    notify = record.watchers;
    EvictLocked(now, &notify);
  }
  Notify(notify);
  return seq;
}

absl::StatusOr<Job> InMemoryJobStore::Get(const std::string& job_id) const {
  absl::MutexLock lock(&mu_);
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return absl::NotFoundError(absl::StrCat("job ", job_id, " not found"));
  return it->second.job;
}

absl::StatusOr<EventRead> InMemoryJobStore::Next(const std::string& job_id,
                                                 int64_t after_seq) const {
  absl::MutexLock lock(&mu_);
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return absl::NotFoundError(absl::StrCat("job ", job_id, " not found"));
  const Record& record = it->second;
  EventRead read;
  const int64_t count = static_cast<int64_t>(record.events.size());
  if (after_seq < 0) after_seq = 0;
  if (after_seq < count) {
    read.event = record.events[after_seq];
  } else {
    read.finished = record.finished_at.has_value();
  }
  return read;
}

absl::Status InMemoryJobStore::Watch(const std::string& job_id,
                                     std::shared_ptr<JobWatcher> watcher) {
  absl::MutexLock lock(&mu_);
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return absl::NotFoundError(absl::StrCat("job ", job_id, " not found"));
  it->second.watchers.push_back(std::move(watcher));
  return absl::OkStatus();
}

void InMemoryJobStore::Unwatch(const std::string& job_id, const JobWatcher* watcher) {
  absl::MutexLock lock(&mu_);
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return;
  auto& watchers = it->second.watchers;
  watchers.erase(std::remove_if(watchers.begin(), watchers.end(),
                                [&](const auto& w) { return w.get() == watcher; }),
                 watchers.end());
}

void InMemoryJobStore::Evict() {
  Notifications notify;
  {
    absl::MutexLock lock(&mu_);
    EvictLocked(clock_.Now(), &notify);
  }
  Notify(notify);
}

void InMemoryJobStore::EraseLocked(std::map<std::string, Record>::iterator it,
                                   Notifications* out) {
  Record& record = it->second;
  bytes_ -= record.bytes;
  out->insert(out->end(), record.watchers.begin(), record.watchers.end());
  auto by_id = by_request_id_.find({record.tenant, record.job.request_id()});
  if (by_id != by_request_id_.end() && by_id->second == it->first) by_request_id_.erase(by_id);
  jobs_.erase(it);
}

void InMemoryJobStore::EvictLocked(absl::Time now, Notifications* out) {
  // TTL: finished_order_ is sorted by finish time, so expired jobs are a prefix.
  while (!finished_order_.empty()) {
    auto it = jobs_.find(finished_order_.front());
    if (it != jobs_.end() && *it->second.finished_at + ttl_ > now) break;
    if (it != jobs_.end()) EraseLocked(it, out);
    finished_order_.pop_front();
  }
  // Byte budget: oldest finished first, sparing jobs someone is reading.
  for (auto name = finished_order_.begin(); bytes_ > byte_budget_ && name != finished_order_.end();) {
    auto it = jobs_.find(*name);
    if (it != jobs_.end() && !it->second.watchers.empty()) {
      ++name;
      continue;
    }
    if (it != jobs_.end()) EraseLocked(it, out);
    name = finished_order_.erase(name);
  }
}

size_t InMemoryJobStore::bytes() const {
  absl::MutexLock lock(&mu_);
  return bytes_;
}

size_t InMemoryJobStore::job_count() const {
  absl::MutexLock lock(&mu_);
  return jobs_.size();
}

}  // namespace tpdiff::server
