#include "tpdiff/server/dispatcher.h"

#include <algorithm>
#include <numeric>
#include <vector>

#include <google/protobuf/util/time_util.h>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "tpdiff/server/validation.h"

namespace tpdiff::server {
namespace {

using tpdiff::v1::GenerateRequest;
using tpdiff::v1::Job;
using tpdiff::v1::JobEvent;
using tpdiff::worker::v1::DispatchMessage;
using tpdiff::worker::v1::WorkerMessage;
using google::protobuf::util::TimeUtil;

google::protobuf::Duration ToProto(absl::Duration d) {
  return TimeUtil::NanosecondsToDuration(absl::ToInt64Nanoseconds(d));
}

absl::Duration FromProto(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

std::string PriorityLabel(tpdiff::v1::Priority priority) {
  switch (priority) {
    case tpdiff::v1::PRIORITY_INTERACTIVE: return "interactive";
    case tpdiff::v1::PRIORITY_BATCH: return "batch";
    default: return "standard";
  }
}

JobEvent FailedEvent(absl::StatusCode code, const std::string& message, bool retryable) {
  JobEvent event;
  event.mutable_failed()->set_code(static_cast<int32_t>(code));
  event.mutable_failed()->set_message(message);
  event.mutable_failed()->set_retryable(retryable);
  return event;
}

JobEvent CancelledEvent(const std::string& source) {
  JobEvent event;
  event.mutable_cancelled()->set_source(source);
  return event;
}

}  // namespace

Dispatcher::Dispatcher(DispatcherOptions options, const Clock& clock, ModelRegistry& models,
                       JobStore& store, ServerMetrics& metrics)
    : options_(options),
      clock_(clock),
      models_(models),
      store_(store),
      metrics_(metrics),
      queue_(std::make_unique<PriorityJobQueue>(options.queue_capacity, options.aging_interval)) {}

absl::Time Dispatcher::QueueDeadline(const ActiveJob& job, absl::Time from) const {
  absl::Time deadline = job.call_deadline;
  if (job.request.has_max_queue_wait()) {
    const absl::Duration wait = FromProto(job.request.max_queue_wait());
    if (wait > absl::ZeroDuration()) deadline = std::min(deadline, from + wait);
  }
  return deadline;
}

absl::StatusOr<Submission> Dispatcher::Submit(const GenerateRequest& request,
                                              absl::Time call_deadline, const JobOwner& owner) {
  {
    absl::MutexLock lock(&mu_);
    if (!admitting_) {
      return absl::UnavailableError("server is shutting down and admits no new jobs; retry");
    }
  }
  absl::BitGen seed_gen;
  absl::StatusOr<GenerateRequest> filled =
      ValidateAndFill(request, models_, absl::Uniform<uint64_t>(seed_gen, 1, UINT64_MAX));
  if (!filled.ok()) return filled.status();

  absl::MutexLock lock(&mu_);
  if (!admitting_) {
    return absl::UnavailableError("server is shutting down and admits no new jobs; retry");
  }
  if (!filled->request_id().empty()) {
    if (std::optional<std::string> id = store_.FindByRequestId(owner.tenant, filled->request_id())) {
      absl::StatusOr<Job> existing = store_.Get(*id);
      if (existing.ok()) return Submission{*std::move(existing), /*existing=*/true};
    }
  }
  if (owner.max_queued_jobs > 0) {
    size_t queued = 0;
    for (const auto& [id, active] : active_) {
      queued += active.worker == 0 && active.tenant == owner.tenant ? 1 : 0;
    }
    if (queued >= owner.max_queued_jobs) {
      return absl::ResourceExhaustedError(absl::StrFormat(
          "queued jobs limit: tenant \"%s\" already has max_queued_jobs %d jobs waiting for a "
          "worker; retry when one starts",
          owner.tenant, owner.max_queued_jobs));
    }
  }

  const absl::Time now = clock_.Now();
  std::string job_id;
  do {
    job_id = absl::StrFormat("job-%016x", absl::Uniform<uint64_t>(bitgen_));
  } while (active_.count(job_id) > 0 || store_.Get(job_id).ok());

  ActiveJob job;
  job.request = *filled;
  job.tenant = owner.tenant;
  job.created_at = now;
  job.queued_at = now;
  job.call_deadline = call_deadline;
  job.entry = QueuedJob{job_id, filled->priority(), filled->model(), now, QueueDeadline(job, now)};
  if (job.entry.deadline <= now) {
    return absl::DeadlineExceededError("the call's deadline passed before the job was queued");
  }
  if (absl::Status admitted = AdmitLocked(job.entry, now, job); !admitted.ok()) return admitted;

  Job record;
  record.set_job_id(job_id);
  record.set_request_id(filled->request_id());
  *record.mutable_request() = *filled;
  *record.mutable_created_at() = TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(now));
  record.set_attempt(1);
  if (absl::Status created = store_.Create(record, owner.tenant); !created.ok()) {
    queue_->Remove(job_id);
    return created;
  }
  JobEvent queued;
  queued.mutable_queued()->set_position(
      static_cast<uint32_t>(queue_->Position(job_id, now).value_or(0)));
  store_.Append(job_id, std::move(queued)).IgnoreError();  // the job was just created
  active_.emplace(job_id, std::move(job));
  DispatchLocked();
  UpdateGaugesLocked();
  absl::StatusOr<Job> stored = store_.Get(job_id);
  if (!stored.ok()) return stored.status();
  return Submission{*std::move(stored), /*existing=*/false};
}

absl::Status Dispatcher::AdmitLocked(const QueuedJob& entry, absl::Time now,
                                     const ActiveJob& job) {
  if (absl::Status pushed = queue_->Push(entry); !pushed.ok()) return pushed;
  if (entry.deadline == absl::InfiniteFuture() || recent_job_seconds_.empty()) {
    return absl::OkStatus();
  }
  // Estimated start: jobs that go first (queued ahead, plus running ones beyond the free
  // slots) times the recent mean job time, spread over the slots that can run this model.
  uint32_t slots = 0;
  size_t running = 0;
  for (const auto& [connection, worker] : workers_) {
    if (worker.draining || worker.models.count(entry.model) == 0) continue;
    slots += worker.slots;
    running += worker.jobs.size();
  }
  if (slots == 0) return absl::OkStatus();  // no estimate without workers; the deadline still holds
  const size_t ahead = queue_->Position(entry.job_id, now).value_or(0);
  const double mean = std::accumulate(recent_job_seconds_.begin(), recent_job_seconds_.end(), 0.0) /
                      recent_job_seconds_.size();
  const double jobs_first = std::max<double>(0.0, static_cast<double>(ahead + running) - slots + 1);
  const double estimate = jobs_first * mean / slots;
  const double limit = absl::ToDoubleSeconds(entry.deadline - now);
  if (estimate <= limit) return absl::OkStatus();
  queue_->Remove(entry.job_id);
  const bool by_queue_wait = entry.deadline < job.call_deadline;
  return absl::ResourceExhaustedError(absl::StrFormat(
      "estimated queue wait %.1fs exceeds the %s of %.1fs (%d jobs ahead, %d running, %d ready "
      "slots, mean job time %.1fs)",
      estimate, by_queue_wait ? "max_queue_wait" : "call deadline", limit, ahead, running, slots,
      mean));
}

absl::StatusOr<Job> Dispatcher::Cancel(const std::string& job_id, const std::string& source) {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<Job> job = store_.Get(job_id);
  if (!job.ok()) return job.status();
  if (active_.count(job_id) > 0) {
    CancelLocked(job_id, source);
    DispatchLocked();
    UpdateGaugesLocked();
  }
  return store_.Get(job_id);
}

void Dispatcher::CancelLocked(const std::string& job_id, const std::string& source) {
  auto it = active_.find(job_id);
  if (it == active_.end()) return;
  if (it->second.worker == 0) {
    queue_->Remove(job_id);
  } else if (auto worker = workers_.find(it->second.worker); worker != workers_.end()) {
    // The slot stays taken until the worker confirms (event or heartbeat without the job).
    DispatchMessage message;
    message.mutable_cancel()->set_job_id(job_id);
    message.mutable_cancel()->set_reason(absl::StrCat("cancelled (", source, ")"));
    worker->second.channel->Send(std::move(message));
  }
  FinishLocked(job_id, CancelledEvent(source));
}

void Dispatcher::FinishLocked(const std::string& job_id, JobEvent event) {
  const std::string outcome = event.has_completed() ? "completed"
                              : event.has_failed()  ? "failed"
                                                    : "cancelled";
  store_.Append(job_id, std::move(event)).IgnoreError();  // an ended job is not in active_
  active_.erase(job_id);
  metrics_.JobFinished(outcome);
}

tpdiff::v1::ListModelsResponse Dispatcher::ListModels() const {
  tpdiff::v1::ListModelsResponse response;
  response.set_default_model(models_.DefaultModel());
  absl::MutexLock lock(&mu_);
  for (tpdiff::v1::ModelInfo& info : models_.List()) {
    uint32_t ready = 0;
    for (const auto& [connection, worker] : workers_) {
      ready += !worker.draining && worker.models.count(info.name()) > 0 ? 1 : 0;
    }
    info.set_ready_workers(ready);
    *response.add_models() = std::move(info);
  }
  return response;
}

absl::StatusOr<uint64_t> Dispatcher::ConnectWorker(const tpdiff::worker::v1::Hello& hello,
                                                   WorkerChannel* channel) {
  if (hello.worker_id().empty()) return absl::InvalidArgumentError("hello.worker_id: required");
  if (hello.slots() < 1) return absl::InvalidArgumentError("hello.slots: must be at least 1");
  if (hello.models().empty()) return absl::InvalidArgumentError("hello.models: at least one required");
  for (const tpdiff::v1::ModelInfo& info : hello.model_info()) {
    absl::Status added = models_.AddFromWorker(info);
    if (!added.ok()) return absl::InvalidArgumentError(absl::StrCat("hello.", added.message()));
  }

  absl::MutexLock lock(&mu_);
  for (const auto& [connection, worker] : workers_) {
    if (worker.worker_id == hello.worker_id()) {
      worker.channel->Close(absl::AbortedError("replaced by a new connection of the same worker"));
      RemoveWorkerLocked(connection, "worker_disconnected",
                         absl::StrCat("worker ", hello.worker_id(), " reconnected"));
      break;
    }
  }
  const uint64_t connection = next_connection_++;
  Worker& worker = workers_[connection];
  worker.worker_id = hello.worker_id();
  worker.models.insert(hello.models().begin(), hello.models().end());
  worker.slots = hello.slots();
  worker.channel = channel;
  worker.last_seen = clock_.Now();

  DispatchMessage welcome;
  *welcome.mutable_welcome()->mutable_heartbeat_interval() = ToProto(options_.heartbeat_interval);
  *welcome.mutable_welcome()->mutable_lease_timeout() = ToProto(options_.lease_timeout);
  channel->Send(std::move(welcome));
  if (!admitting_) {
    worker.draining = true;
    DispatchMessage drain;
    drain.mutable_drain();
    channel->Send(std::move(drain));
  }
  DispatchLocked();
  UpdateGaugesLocked();
  return connection;
}

void Dispatcher::OnWorkerMessage(uint64_t connection, const WorkerMessage& message) {
  absl::MutexLock lock(&mu_);
  auto it = workers_.find(connection);
  if (it == workers_.end()) return;  // already dropped (lease expired)
  Worker& worker = it->second;
  worker.last_seen = clock_.Now();
  switch (message.kind_case()) {
    case WorkerMessage::kEvent:
      HandleEventLocked(connection, worker, message.event());
      break;
    case WorkerMessage::kHeartbeat:
      HandleHeartbeatLocked(connection, worker, message.heartbeat());
      break;
    default:
      break;  // a repeated Hello changes nothing
  }
  DispatchLocked();
  UpdateGaugesLocked();
}

void Dispatcher::HandleEventLocked(uint64_t connection, Worker& worker,
                                   const tpdiff::worker::v1::WorkerEvent& message) {
  const std::string& job_id = message.job_id();
  JobEvent event = message.event();
  auto it = active_.find(job_id);
  const bool current = it != active_.end() && it->second.worker == connection &&
                       it->second.attempt == message.attempt();
  if (!current) {
    // A stale attempt or a job cancelled here: only its end matters, to free the slot.
    auto held = worker.jobs.find(job_id);
    if (IsTerminal(event) && held != worker.jobs.end() && held->second == message.attempt()) {
      worker.jobs.erase(held);
    }
    return;
  }
  ActiveJob& job = it->second;
  const absl::Time now = clock_.Now();
  job.last_confirmed = now;
  switch (event.kind_case()) {
    case JobEvent::kStarted:
      if (event.started().worker_id().empty()) event.mutable_started()->set_worker_id(worker.worker_id);
      event.mutable_started()->set_attempt(job.attempt);
      break;
    case JobEvent::kProgress:
    case JobEvent::kResultChunk:
      break;
    case JobEvent::kStagePreview:
      if (!job.preview_seen) {
        job.preview_seen = true;
        metrics_.TimeToFirstPreview(absl::ToDoubleSeconds(now - job.created_at));
      }
      break;
    case JobEvent::kCompleted: {
      // The front knows admission time; the worker only the sampling and encoding times.
      tpdiff::v1::Timings* timings = event.mutable_completed()->mutable_timings();
      timings->set_queue_seconds(absl::ToDoubleSeconds(job.assigned_at - job.created_at));
      timings->set_total_seconds(absl::ToDoubleSeconds(now - job.created_at));
      metrics_.JobDuration(timings->total_seconds());
      for (int i = 0; i < timings->stage_seconds_size(); ++i) {
        metrics_.StageDuration(i + 1, timings->stage_seconds(i));
      }
      metrics_.FramesGenerated(job.request.num_frames());
      recent_job_seconds_.push_back(absl::ToDoubleSeconds(now - job.assigned_at));
      while (recent_job_seconds_.size() > options_.recent_jobs_for_estimate) {
        recent_job_seconds_.pop_front();
      }
      worker.jobs.erase(job_id);
      FinishLocked(job_id, std::move(event));
      return;
    }
    case JobEvent::kFailed:
      if (event.failed().code() == 0) event.mutable_failed()->set_code(static_cast<int32_t>(absl::StatusCode::kInternal));
      worker.jobs.erase(job_id);
      FinishLocked(job_id, std::move(event));
      return;
    case JobEvent::kCancelled:
      // The front did not ask for it (that would have made the job stale): the worker gave
      // the job up, e.g. while shutting down, so another worker should run it.
      worker.jobs.erase(job_id);
      RequeueLocked(job_id, "worker_cancelled",
                    absl::StrCat("worker ", worker.worker_id, " cancelled the job (",
                                 event.cancelled().source(), ")"));
      return;
    default:
      return;  // queued / requeued are the front's own events
  }
  store_.Append(job_id, std::move(event)).IgnoreError();  // active jobs have not ended
}

void Dispatcher::HandleHeartbeatLocked(uint64_t connection, Worker& worker,
                                       const tpdiff::worker::v1::Heartbeat& heartbeat) {
  const absl::Time now = clock_.Now();
  std::set<std::string> running(heartbeat.running_job_ids().begin(),
                                heartbeat.running_job_ids().end());
  for (const std::string& job_id : running) {
    auto job = active_.find(job_id);
    if (job != active_.end() && job->second.worker == connection) {
      job->second.last_confirmed = now;
    } else if (worker.jobs.count(job_id) == 0) {
      DispatchMessage cancel;  // not ours to run: free the worker's slot
      cancel.mutable_cancel()->set_job_id(job_id);
      cancel.mutable_cancel()->set_reason("job is not assigned to this worker");
      worker.channel->Send(std::move(cancel));
    }
  }
  // Slots held by jobs the front already ended, which the worker no longer runs, are free.
  for (auto held = worker.jobs.begin(); held != worker.jobs.end();) {
    auto job = active_.find(held->first);
    const bool ours = job != active_.end() && job->second.worker == connection;
    if (!ours && running.count(held->first) == 0) {
      held = worker.jobs.erase(held);
    } else {
      ++held;
    }
  }
}

void Dispatcher::DisconnectWorker(uint64_t connection, const std::string& reason) {
  absl::MutexLock lock(&mu_);
  RemoveWorkerLocked(connection, "worker_disconnected", reason);
  DispatchLocked();
  UpdateGaugesLocked();
}

void Dispatcher::RemoveWorkerLocked(uint64_t connection, const std::string& label,
                                    const std::string& reason) {
  auto it = workers_.find(connection);
  if (it == workers_.end()) return;
  std::vector<std::string> lost;
  for (const auto& [job_id, attempt] : it->second.jobs) {
    auto job = active_.find(job_id);
    if (job != active_.end() && job->second.worker == connection) lost.push_back(job_id);
  }
  workers_.erase(it);
  for (const std::string& job_id : lost) RequeueLocked(job_id, label, reason);
}

void Dispatcher::RequeueLocked(const std::string& job_id, const std::string& label,
                               const std::string& reason) {
  auto it = active_.find(job_id);
  if (it == active_.end()) return;
  ActiveJob& job = it->second;
  if (auto worker = workers_.find(job.worker); worker != workers_.end()) {
    worker->second.jobs.erase(job_id);
  }
  job.worker = 0;
  if (static_cast<int>(job.attempt) >= options_.max_attempts) {
    FinishLocked(job_id, FailedEvent(absl::StatusCode::kUnavailable,
                                     absl::StrCat("job failed after ", job.attempt,
                                                  " attempts; last: ", reason),
                                     /*retryable=*/true));
    return;
  }
  const absl::Time now = clock_.Now();
  ++job.attempt;
  job.queued_at = now;
  job.preview_seen = false;
  job.entry.deadline = QueueDeadline(job, now);
  metrics_.Requeue(label);
  JobEvent requeued;
  requeued.mutable_requeued()->set_attempt(job.attempt);
  requeued.mutable_requeued()->set_reason(reason);
  store_.Append(job_id, std::move(requeued)).IgnoreError();
  queue_->PushFront(job.entry);
}

void Dispatcher::DispatchLocked() {
  const absl::Time now = clock_.Now();
  ExpireQueuedLocked(now);
  bool assigned = true;
  while (assigned && queue_->TotalSize() > 0) {
    assigned = false;
    // One job per worker per round spreads jobs across workers.
    for (auto& entry : workers_) {
      // Named references, not a structured binding: C++17 lambdas cannot capture those.
      const uint64_t connection = entry.first;
      Worker& worker = entry.second;
      if (worker.draining || worker.jobs.size() >= worker.slots) continue;
      std::optional<QueuedJob> next = queue_->Pop(
          now, [&](const QueuedJob& q) { return worker.models.count(q.model) > 0; });
      if (!next) continue;
      auto job = active_.find(next->job_id);
      if (job == active_.end()) continue;
      AssignLocked(connection, worker, job->second, next->job_id);
      assigned = true;
    }
  }
}

void Dispatcher::AssignLocked(uint64_t connection, Worker& worker, ActiveJob& job,
                              const std::string& job_id) {
  const absl::Time now = clock_.Now();
  job.worker = connection;
  job.assigned_at = now;
  job.last_confirmed = now;
  worker.jobs[job_id] = job.attempt;
  metrics_.QueueWait(absl::ToDoubleSeconds(now - job.queued_at));
  DispatchMessage message;
  tpdiff::worker::v1::Assign* assign = message.mutable_assign();
  assign->set_job_id(job_id);
  *assign->mutable_request() = job.request;
  assign->set_attempt(job.attempt);
  *assign->mutable_queue_time() = ToProto(now - job.queued_at);
  worker.channel->Send(std::move(message));
}

void Dispatcher::ExpireQueuedLocked(absl::Time now) {
  for (const QueuedJob& expired : queue_->TakeExpired(now)) {
    auto it = active_.find(expired.job_id);
    if (it == active_.end()) continue;
    if (it->second.call_deadline <= now) {
      FinishLocked(expired.job_id, CancelledEvent("deadline"));
    } else {
      FinishLocked(expired.job_id,
                   FailedEvent(absl::StatusCode::kDeadlineExceeded,
                               absl::StrCat("max_queue_wait of ",
                                            absl::FormatDuration(FromProto(
                                                it->second.request.max_queue_wait())),
                                            " passed before a worker was free"),
                               /*retryable=*/true));
    }
  }
}

void Dispatcher::ExpireLeasesLocked(absl::Time now) {
  std::vector<uint64_t> silent;
  for (const auto& [connection, worker] : workers_) {
    if (now - worker.last_seen > options_.lease_timeout) silent.push_back(connection);
  }
  for (uint64_t connection : silent) {
    Worker& worker = workers_.at(connection);
    const std::string reason = absl::StrCat("lease expired: worker ", worker.worker_id, " sent nothing for ",
                                            absl::FormatDuration(now - worker.last_seen));
    worker.channel->Close(absl::UnavailableError(reason));
    RemoveWorkerLocked(connection, "lease_expired", reason);
  }
  std::vector<std::string> unconfirmed;
  for (const auto& [job_id, job] : active_) {
    if (job.worker != 0 && now - job.last_confirmed > options_.lease_timeout) {
      unconfirmed.push_back(job_id);
    }
  }
  for (const std::string& job_id : unconfirmed) {
    ActiveJob& job = active_.at(job_id);
    Worker& worker = workers_.at(job.worker);
    DispatchMessage cancel;  // in case the worker still runs it
    cancel.mutable_cancel()->set_job_id(job_id);
    cancel.mutable_cancel()->set_reason("lease expired");
    worker.channel->Send(std::move(cancel));
    RequeueLocked(job_id, "lease_expired",
                  absl::StrCat("lease expired: worker ", worker.worker_id,
                               " did not confirm the job for ",
                               absl::FormatDuration(now - job.last_confirmed)));
  }
}

void Dispatcher::Tick() {
  store_.Evict();
  absl::MutexLock lock(&mu_);
  ExpireLeasesLocked(clock_.Now());
  DispatchLocked();  // also expires queue deadlines
  UpdateGaugesLocked();
}

void Dispatcher::StopAdmitting() {
  absl::MutexLock lock(&mu_);
  admitting_ = false;
}

void Dispatcher::CancelQueued(const std::string& source) {
  absl::MutexLock lock(&mu_);
  for (const QueuedJob& job : queue_->TakeAll()) FinishLocked(job.job_id, CancelledEvent(source));
  UpdateGaugesLocked();
}

void Dispatcher::DrainWorkers() {
  absl::MutexLock lock(&mu_);
  for (auto& [connection, worker] : workers_) {
    if (worker.draining) continue;
    worker.draining = true;
    DispatchMessage drain;
    drain.mutable_drain();
    worker.channel->Send(std::move(drain));
  }
  UpdateGaugesLocked();
}

void Dispatcher::CancelAll(const std::string& source) {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> ids;
  for (const auto& [job_id, job] : active_) ids.push_back(job_id);
  for (const std::string& job_id : ids) CancelLocked(job_id, source);
  UpdateGaugesLocked();
}

bool Dispatcher::WaitUntilNoRunningJobs(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return RunningJobsLocked() == 0; };
  return mu_.AwaitWithTimeout(absl::Condition(&idle), timeout);
}

size_t Dispatcher::RunningJobsLocked() const {
  size_t running = 0;
  for (const auto& [job_id, job] : active_) running += job.worker != 0 ? 1 : 0;
  return running;
}

bool Dispatcher::Ready() const {
  absl::MutexLock lock(&mu_);
  if (!admitting_ || queue_->Full(tpdiff::v1::PRIORITY_STANDARD)) return false;
  for (const auto& [connection, worker] : workers_) {
    if (!worker.draining) return true;
  }
  return false;
}

size_t Dispatcher::ServingWorkers() const {
  absl::MutexLock lock(&mu_);
  size_t serving = 0;
  for (const auto& [connection, worker] : workers_) serving += worker.draining ? 0 : 1;
  return serving;
}

size_t Dispatcher::RunningJobs() const {
  absl::MutexLock lock(&mu_);
  return RunningJobsLocked();
}

size_t Dispatcher::QueuedJobs() const {
  absl::MutexLock lock(&mu_);
  return queue_->TotalSize();
}

void Dispatcher::UpdateGaugesLocked() {
  for (tpdiff::v1::Priority priority :
       {tpdiff::v1::PRIORITY_INTERACTIVE, tpdiff::v1::PRIORITY_STANDARD, tpdiff::v1::PRIORITY_BATCH}) {
    metrics_.QueueDepth(PriorityLabel(priority)).Set(static_cast<double>(queue_->Size(priority)));
  }
  size_t serving = 0, draining = 0;
  for (const auto& [connection, worker] : workers_) (worker.draining ? draining : serving)++;
  metrics_.Workers("serving").Set(static_cast<double>(serving));
  metrics_.Workers("draining").Set(static_cast<double>(draining));
}

}  // namespace tpdiff::server
