#include "tpdiff/server/dispatcher.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "tpdiff/common/proto_time.h"
#include "tpdiff/server/job_queue.h"
#include "tpdiff/server/validation.h"

namespace tpdiff::server {
namespace {

using tpdiff::v1::GenerateRequest;
using tpdiff::v1::Job;
using tpdiff::v1::JobEvent;
using tpdiff::worker::v1::DispatchMessage;
using tpdiff::worker::v1::WorkerMessage;
using common::FromProtoDuration;
using common::ToProtoDuration;

DispatchMessage CancelMessage(const std::string& job_id, const std::string& reason) {
  DispatchMessage message;
  message.mutable_cancel()->set_job_id(job_id);
  message.mutable_cancel()->set_reason(reason);
  return message;
}

DispatchMessage DrainMessage() {
  DispatchMessage message;
  message.mutable_drain();
  return message;
}

}  // namespace

Dispatcher::Dispatcher(DispatcherOptions options, const Clock& clock, ModelRegistry& models,
                       JobStore& store, ServerMetrics& metrics, std::unique_ptr<WorkQueue> queue)
    : options_(options),
      clock_(clock),
      models_(models),
      store_(store),
      metrics_(metrics),
      log_(store, metrics),
      gauges_{&metrics.QueueDepth("interactive"), &metrics.QueueDepth("standard"),
              &metrics.QueueDepth("batch"), &metrics.Workers("serving"),
              &metrics.Workers("draining")},
      queue_(queue != nullptr ? std::move(queue)
                              : std::make_unique<PriorityJobQueue>(options.queue_capacity,
                                                                   options.aging_interval)),
      recent_(options.recent_jobs_for_estimate) {}

absl::Time Dispatcher::QueueDeadline(const ActiveJob& job, absl::Time from) const {
  absl::Time deadline = job.call_deadline;
  if (job.request.has_max_queue_wait()) {
    const absl::Duration wait = FromProtoDuration(job.request.max_queue_wait());
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
  auto tenant_queued = queued_by_tenant_.find(owner.tenant);
  if (absl::Status limit = CheckTenantQueuedJobs(
          owner.tenant, tenant_queued == queued_by_tenant_.end() ? 0 : tenant_queued->second,
          owner.max_queued_jobs);
      !limit.ok()) {
    return limit;
  }

  const absl::Time now = clock_.Now();
  std::string job_id;
  do {
    job_id = absl::StrFormat("job-%016x", absl::Uniform<uint64_t>(bitgen_));
  } while (active_.count(job_id) > 0 || store_.Get(job_id).ok());

  ActiveJob job;
  job.request = *filled;
  job.tenant = owner.tenant;
  job.queued_at = now;
  job.call_deadline = call_deadline;
  job.run.created_at = now;
  job.run.num_frames = filled->num_frames();
  job.entry = QueuedJob{job_id, filled->priority(), filled->model(), now, QueueDeadline(job, now)};
  if (job.entry.deadline <= now) {
    return absl::DeadlineExceededError("the call's deadline passed before the job was queued");
  }
  const size_t ahead = queue_->Ahead(job.entry.priority, now);
  if (absl::Status pushed = queue_->Push(job.entry); !pushed.ok()) return pushed;
  if (job.entry.deadline != absl::InfiniteFuture()) {
    const ModelCapacity capacity = workers_.Capacity(job.entry.model);
    const bool by_queue_wait = job.entry.deadline < call_deadline;
    absl::Status fits = CheckEstimatedWait(
        WaitInputs{ahead, capacity.busy, capacity.slots, recent_.Mean()},
        job.entry.deadline - now, by_queue_wait ? "max_queue_wait" : "call deadline");
    if (!fits.ok()) {
      queue_->Remove(job_id);
      return fits;
    }
  }

  if (absl::Status created = log_.Create(job_id, *filled, owner.tenant, now, ahead);
      !created.ok()) {
    queue_->Remove(job_id);
    return created;
  }
  ++queued_by_tenant_[owner.tenant];
  pending_models_.insert(job.entry.model);
  active_.emplace(job_id, std::move(job));
  DispatchLocked();
  UpdateGaugesLocked();
  absl::StatusOr<Job> stored = store_.Get(job_id);
  if (!stored.ok()) return stored.status();
  return Submission{*std::move(stored), /*existing=*/false};
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
  if (it->second.queued) {
    queue_->Remove(job_id);
  } else if (const WorkerEntry* worker = workers_.Find(it->second.worker)) {
    // The slot stays taken until the worker confirms (event or heartbeat without the job).
    worker->channel->Send(CancelMessage(job_id, absl::StrCat("cancelled (", source, ")")));
  }
  FinishLocked(job_id, JobEventLog::Cancelled(source));
}

void Dispatcher::FinishLocked(const std::string& job_id, JobEvent event) {
  log_.Finish(job_id, std::move(event));
  ForgetLocked(job_id);
}

void Dispatcher::ForgetLocked(const std::string& job_id) {
  auto it = active_.find(job_id);
  if (it == active_.end()) return;
  SetQueuedLocked(it->second, false);
  if (it->second.worker != 0) workers_.EndLease(job_id);
  active_.erase(it);
}

void Dispatcher::SetQueuedLocked(ActiveJob& job, bool queued) {
  if (job.queued == queued) return;
  job.queued = queued;
  if (queued) {
    ++queued_by_tenant_[job.tenant];
    return;
  }
  auto count = queued_by_tenant_.find(job.tenant);
  if (count != queued_by_tenant_.end() && --count->second == 0) queued_by_tenant_.erase(count);
}

tpdiff::v1::ListModelsResponse Dispatcher::ListModels() const {
  tpdiff::v1::ListModelsResponse response;
  response.set_default_model(models_.DefaultModel());
  absl::MutexLock lock(&mu_);
  for (tpdiff::v1::ModelInfo& info : models_.List()) {
    info.set_ready_workers(static_cast<uint32_t>(workers_.Capacity(info.name()).workers));
    // The SentencePiece model is for fronts (it travels in workers' Hello); a real one is
    // megabytes (umT5: 4.5 MB, over gRPC's default 4 MiB message limit), so clients get the
    // kind and the token limit only.
    info.clear_tokenizer_model();
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
  const absl::Time now = clock_.Now();
  if (std::optional<uint64_t> old = workers_.FindByWorkerId(hello.worker_id())) {
    workers_.Find(*old)->channel->Close(
        absl::AbortedError("replaced by a new connection of the same worker"));
    RemoveWorkerLocked(*old, "worker_disconnected",
                       absl::StrCat("worker ", hello.worker_id(), " reconnected"));
  }
  const uint64_t connection =
      workers_.Add(hello.worker_id(), {hello.models().begin(), hello.models().end()},
                   hello.slots(), channel, now);
  DispatchMessage welcome;
  *welcome.mutable_welcome()->mutable_heartbeat_interval() = ToProtoDuration(options_.heartbeat_interval);
  *welcome.mutable_welcome()->mutable_lease_timeout() = ToProtoDuration(options_.lease_timeout);
  channel->Send(std::move(welcome));
  if (!admitting_) {
    workers_.SetDraining(connection, now);
    channel->Send(DrainMessage());
  }
  pending_workers_.push_back(connection);
  DispatchLocked();
  UpdateGaugesLocked();
  return connection;
}

void Dispatcher::OnWorkerMessage(uint64_t connection, const WorkerMessage& message) {
  absl::MutexLock lock(&mu_);
  const WorkerEntry* worker = workers_.Find(connection);
  if (worker == nullptr) return;  // already dropped (lease expired)
  const absl::Time now = clock_.Now();
  workers_.Touch(connection, now);
  switch (message.kind_case()) {
    case WorkerMessage::kEvent:
      HandleEventLocked(connection, *worker, message.event(), now);
      break;
    case WorkerMessage::kHeartbeat: {
      WorkerRegistry::HeartbeatOutcome outcome =
          workers_.Heartbeat(connection, message.heartbeat().running_job_ids(), now);
      for (const std::string& job_id : outcome.not_held) {  // not ours to run: free its slot
        worker->channel->Send(CancelMessage(job_id, "job is not assigned to this worker"));
      }
      if (outcome.freed_slot) pending_workers_.push_back(connection);
      break;
    }
    default:
      break;  // a repeated Hello changes nothing
  }
  DispatchLocked();
  UpdateGaugesLocked();
}

void Dispatcher::HandleEventLocked(uint64_t connection, const WorkerEntry& worker,
                                   const tpdiff::worker::v1::WorkerEvent& message,
                                   absl::Time now) {
  const std::string& job_id = message.job_id();
  auto it = active_.find(job_id);
  if (it == active_.end() || it->second.worker != connection ||
      it->second.run.attempt != message.attempt()) {
    // A stale attempt or a job cancelled here: only its end matters, to free the slot.
    if (IsTerminal(message.event()) &&
        workers_.ReleaseSlot(connection, job_id, message.attempt())) {
      pending_workers_.push_back(connection);
    }
    return;
  }
  ActiveJob& job = it->second;
  workers_.Confirm(job_id, now);
  TranslatedEvent translated = TranslateWorkerEvent(message.event(), job.run, now);
  switch (translated.action) {
    case WorkerEventAction::kAppend:
      log_.Record(job_id, job.run, std::move(translated.event), now);
      return;
    case WorkerEventAction::kFinish:
      if (translated.event.has_completed()) {
        recent_.Add(absl::ToDoubleSeconds(now - job.run.assigned_at));
      }
      workers_.ReleaseSlot(connection, job_id);
      pending_workers_.push_back(connection);
      log_.Record(job_id, job.run, std::move(translated.event), now);
      ForgetLocked(job_id);
      return;
    case WorkerEventAction::kRequeue:
      RequeueLocked(job_id, "worker_cancelled",
                    absl::StrCat("worker ", worker.worker_id, " cancelled the job (",
                                 translated.event.cancelled().source(), ")"));
      return;
    case WorkerEventAction::kIgnore:
      return;
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
  std::optional<WorkerEntry> removed = workers_.Remove(connection, clock_.Now());
  if (!removed.has_value()) return;
  for (const auto& [job_id, attempt] : removed->jobs) {
    auto job = active_.find(job_id);
    if (job != active_.end() && job->second.worker == connection) {
      RequeueLocked(job_id, label, reason);
    }
  }
}

void Dispatcher::RequeueLocked(const std::string& job_id, const std::string& label,
                               const std::string& reason) {
  auto it = active_.find(job_id);
  if (it == active_.end()) return;
  ActiveJob& job = it->second;
  if (job.worker != 0) {
    if (workers_.ReleaseSlot(job.worker, job_id)) pending_workers_.push_back(job.worker);
    workers_.EndLease(job_id);
    job.worker = 0;
  }
  if (static_cast<int>(job.run.attempt) >= options_.max_attempts) {
    FinishLocked(job_id, JobEventLog::AttemptsExhausted(job.run.attempt, reason));
    return;
  }
  const absl::Time now = clock_.Now();
  ++job.run.attempt;
  job.run.preview_seen = false;
  job.queued_at = now;
  job.entry.deadline = QueueDeadline(job, now);
  log_.Requeued(job_id, job.run.attempt, label, reason);
  queue_->PushFront(job.entry);
  SetQueuedLocked(job, true);
  pending_models_.insert(job.entry.model);
}

void Dispatcher::DispatchLocked() {
  const absl::Time now = clock_.Now();
  ExpireQueuedLocked(now);
  // A worker with a freed slot takes the best job it can run.
  std::vector<uint64_t> workers;
  workers.swap(pending_workers_);
  for (uint64_t connection : workers) {
    while (workers_.HasFreeSlot(connection) && AssignNextLocked(connection, now)) {
    }
  }
  // A queued job goes to the least busy free worker of its model, one job at a time so that
  // a backlog spreads over the workers.
  std::set<std::string> models;
  models.swap(pending_models_);
  for (const std::string& model : models) {
    while (std::optional<uint64_t> connection = workers_.FreeWorkerFor(model)) {
      if (!AssignNextLocked(*connection, now)) break;
    }
  }
}

bool Dispatcher::AssignNextLocked(uint64_t connection, absl::Time now) {
  const WorkerEntry* worker = workers_.Find(connection);
  if (worker == nullptr) return false;
  std::optional<QueuedJob> next = queue_->Pop(now, worker->models);
  if (!next.has_value()) return false;
  auto it = active_.find(next->job_id);
  if (it == active_.end()) return true;  // not ours to run; try the next one
  ActiveJob& job = it->second;
  SetQueuedLocked(job, false);
  job.worker = connection;
  job.run.assigned_at = now;
  job.run.worker_id = worker->worker_id;
  workers_.HoldSlot(connection, next->job_id, job.run.attempt);
  workers_.Lease(next->job_id, connection, now);
  metrics_.QueueWait(absl::ToDoubleSeconds(now - job.queued_at));
  DispatchMessage message;
  tpdiff::worker::v1::Assign* assign = message.mutable_assign();
  assign->set_job_id(next->job_id);
  *assign->mutable_request() = job.request;
  assign->set_attempt(job.run.attempt);
  *assign->mutable_queue_time() = ToProtoDuration(now - job.queued_at);
  worker->channel->Send(std::move(message));
  return true;
}

void Dispatcher::ExpireQueuedLocked(absl::Time now) {
  for (const QueuedJob& expired : queue_->TakeExpired(now)) {
    auto it = active_.find(expired.job_id);
    if (it == active_.end()) continue;
    FinishLocked(expired.job_id,
                 JobEventLog::QueueDeadlinePassed(it->second.call_deadline <= now,
                                                  FromProtoDuration(it->second.request.max_queue_wait())));
  }
}

void Dispatcher::ExpireLeasesLocked(absl::Time now) {
  for (uint64_t connection : workers_.SilentWorkers(now, options_.lease_timeout)) {
    const WorkerEntry& worker = *workers_.Find(connection);
    const std::string reason =
        absl::StrCat("lease expired: worker ", worker.worker_id, " sent nothing for ",
                     absl::FormatDuration(now - worker.last_seen));
    worker.channel->Close(absl::UnavailableError(reason));
    RemoveWorkerLocked(connection, "lease_expired", reason);
  }
  for (const auto& [job_id, confirmed] : workers_.UnconfirmedLeases(now, options_.lease_timeout)) {
    auto job = active_.find(job_id);
    if (job == active_.end()) continue;
    const WorkerEntry* worker = workers_.Find(job->second.worker);
    if (worker == nullptr) continue;
    worker->channel->Send(CancelMessage(job_id, "lease expired"));  // in case it still runs
    RequeueLocked(job_id, "lease_expired",
                  absl::StrCat("lease expired: worker ", worker->worker_id,
                               " did not confirm the job for ",
                               absl::FormatDuration(now - confirmed)));
  }
}

void Dispatcher::FailUnservableLocked(absl::Time now) {
  const absl::Time cutoff = now - options_.unservable_timeout;
  for (const std::string& model : queue_->Models()) {
    const ModelCapacity capacity = workers_.Capacity(model);
    if (capacity.workers > 0 || capacity.unserved_since > cutoff) continue;
    for (const QueuedJob& job : queue_->TakeModel(model, cutoff)) {
      FinishLocked(job.job_id,
                   JobEventLog::Unservable(
                       model, now - std::max(job.enqueued_at, capacity.unserved_since)));
    }
  }
}

void Dispatcher::Tick() {
  store_.Evict();
  absl::MutexLock lock(&mu_);
  const absl::Time now = clock_.Now();
  ExpireLeasesLocked(now);
  FailUnservableLocked(now);
  DispatchLocked();  // also expires queue deadlines
  UpdateGaugesLocked();
}

void Dispatcher::StopAdmitting() {
  absl::MutexLock lock(&mu_);
  admitting_ = false;
}

void Dispatcher::CancelQueued(const std::string& source) {
  absl::MutexLock lock(&mu_);
  for (const QueuedJob& job : queue_->TakeAll()) {
    FinishLocked(job.job_id, JobEventLog::Cancelled(source));
  }
  UpdateGaugesLocked();
}

void Dispatcher::DrainWorkers() {
  absl::MutexLock lock(&mu_);
  const absl::Time now = clock_.Now();
  for (uint64_t connection : workers_.Connections()) {
    if (workers_.SetDraining(connection, now)) {
      workers_.Find(connection)->channel->Send(DrainMessage());
    }
  }
  UpdateGaugesLocked();
}

void Dispatcher::CancelAll(const std::string& source) {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> ids;
  ids.reserve(active_.size());
  for (const auto& [job_id, job] : active_) ids.push_back(job_id);
  for (const std::string& job_id : ids) CancelLocked(job_id, source);
  UpdateGaugesLocked();
}

bool Dispatcher::WaitUntilNoRunningJobs(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return workers_.leases() == 0; };
  return mu_.AwaitWithTimeout(absl::Condition(&idle), timeout);
}

bool Dispatcher::Ready() const {
  absl::MutexLock lock(&mu_);
  return admitting_ && !queue_->Full(tpdiff::v1::PRIORITY_STANDARD) && workers_.serving() > 0;
}

size_t Dispatcher::ServingWorkers() const {
  absl::MutexLock lock(&mu_);
  return workers_.serving();
}

size_t Dispatcher::RunningJobs() const {
  absl::MutexLock lock(&mu_);
  return workers_.leases();
}

size_t Dispatcher::QueuedJobs() const {
  absl::MutexLock lock(&mu_);
  return queue_->TotalSize();
}

void Dispatcher::UpdateGaugesLocked() {
  gauges_.interactive->Set(static_cast<double>(queue_->Size(tpdiff::v1::PRIORITY_INTERACTIVE)));
  gauges_.standard->Set(static_cast<double>(queue_->Size(tpdiff::v1::PRIORITY_STANDARD)));
  gauges_.batch->Set(static_cast<double>(queue_->Size(tpdiff::v1::PRIORITY_BATCH)));
  gauges_.serving->Set(static_cast<double>(workers_.serving()));
  gauges_.draining->Set(static_cast<double>(workers_.draining()));
}

}  // namespace tpdiff::server
