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
      recent_(options.recent_jobs_for_estimate) {
  queue_->SetListener(this);
}

Dispatcher::~Dispatcher() { queue_->SetListener(nullptr); }

absl::Time Dispatcher::QueueDeadline(const GenerateRequest& request, absl::Time call_deadline,
                                     absl::Time from) {
  absl::Time deadline = call_deadline;
  if (request.has_max_queue_wait()) {
    const absl::Duration wait = FromProtoDuration(request.max_queue_wait());
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
  auto existing = [&]() -> std::optional<Submission> {
    if (filled->request_id().empty()) return std::nullopt;
    std::optional<std::string> id = store_.FindByRequestId(owner.tenant, filled->request_id());
    if (!id.has_value()) return std::nullopt;
    absl::StatusOr<Job> job = store_.Get(*id);
    if (!job.ok()) return std::nullopt;
    return Submission{*std::move(job), /*existing=*/true};
  };
  if (std::optional<Submission> found = existing()) return *std::move(found);

  const absl::Time now = clock_.Now();
  std::string job_id;
  do {
    job_id = absl::StrFormat("job-%016x", absl::Uniform<uint64_t>(bitgen_));
  } while (active_.count(job_id) > 0 || store_.Get(job_id).ok());

  const QueuedJob entry{job_id,        filled->priority(),
                        filled->model(), now,
                        QueueDeadline(*filled, call_deadline, now),
                        owner.tenant,  now,
                        call_deadline};
  if (entry.deadline <= now) {
    return absl::DeadlineExceededError("the call's deadline passed before the job was queued");
  }
  const size_t ahead = queue_->Ahead(entry.priority, now);
  // Stored before it is queued, so that a front popping it (a shared queue) finds it; the
  // store's request-id check makes a retry racing on another front get this job.
  if (absl::Status created = log_.Create(job_id, *filled, owner.tenant, now, ahead);
      !created.ok()) {
    if (absl::IsAlreadyExists(created)) {
      if (std::optional<Submission> found = existing()) return *std::move(found);
    }
    return created;
  }
  if (absl::Status pushed = queue_->Push(entry, owner.max_queued_jobs); !pushed.ok()) {
    store_.Discard(job_id);
    return pushed;
  }
  if (entry.deadline != absl::InfiniteFuture()) {
    const ModelCapacity capacity = workers_.Capacity(entry.model);
    const bool by_queue_wait = entry.deadline < call_deadline;
    absl::Status fits = CheckEstimatedWait(
        WaitInputs{ahead, capacity.busy, capacity.slots, recent_.Mean()},
        entry.deadline - now, by_queue_wait ? "max_queue_wait" : "call deadline");
    if (!fits.ok()) {
      if (queue_->Remove(job_id)) store_.Discard(job_id);  // else a front already runs it
      return fits;
    }
  }
  pending_models_.insert(entry.model);
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
  if (IsTerminal(job->state())) return job;
  if (active_.count(job_id) > 0) {
    CancelLocked(job_id, source);
  } else if (queue_->Remove(job_id)) {
    FinishLocked(job_id, JobEventLog::Cancelled(source));
  } else if (queue_->shared()) {
    // Running on another front's worker: the log ends here (an append to an ended job fails
    // on every front), and that front stops the worker when it hears of it.
    log_.Finish(job_id, JobEventLog::Cancelled(source)).IgnoreError();
    queue_->RequestCancel(job_id, absl::StrCat("cancelled (", source, ")"));
  }
  DispatchLocked();
  UpdateGaugesLocked();
  return store_.Get(job_id);
}

void Dispatcher::CancelLocked(const std::string& job_id, const std::string& source) {
  auto it = active_.find(job_id);
  if (it == active_.end()) return;
  if (const WorkerEntry* worker = workers_.Find(it->second.worker)) {
    // The slot stays taken until the worker confirms (event or heartbeat without the job).
    worker->channel->Send(CancelMessage(job_id, absl::StrCat("cancelled (", source, ")")));
  }
  FinishLocked(job_id, JobEventLog::Cancelled(source));
}

void Dispatcher::OnCancelRequested(const std::string& job_id, const std::string& reason) {
  absl::MutexLock lock(&mu_);
  StopEndedLocked(job_id, reason);
  UpdateGaugesLocked();
}

void Dispatcher::StopEndedLocked(const std::string& job_id, const std::string& reason) {
  auto it = active_.find(job_id);
  if (it == active_.end()) return;
  if (const WorkerEntry* worker = workers_.Find(it->second.worker)) {
    worker->channel->Send(CancelMessage(job_id, reason));
  }
  ForgetLocked(job_id);
}

void Dispatcher::OnJobQueued(const std::string& model) {
  absl::MutexLock lock(&mu_);
  pending_models_.insert(model);
  DispatchLocked();
  UpdateGaugesLocked();
}

void Dispatcher::FinishLocked(const std::string& job_id, JobEvent event) {
  log_.Finish(job_id, std::move(event)).IgnoreError();  // ended elsewhere: nothing to add
  ForgetLocked(job_id);
}

void Dispatcher::ForgetLocked(const std::string& job_id) {
  auto it = active_.find(job_id);
  if (it == active_.end()) return;
  if (it->second.worker != 0) workers_.EndLease(job_id);
  active_.erase(it);
  queue_->Finished(job_id);
}

std::optional<Dispatcher::ActiveJob> Dispatcher::LoadLocked(const QueuedJob& entry) {
  absl::StatusOr<Job> stored = store_.Get(entry.job_id);
  if (!stored.ok() || IsTerminal(stored->state())) return std::nullopt;
  ActiveJob job;
  job.request = stored->request();
  job.entry = entry;
  job.run.attempt = std::max<uint32_t>(stored->attempt(), 1);
  job.run.created_at = common::FromProtoTimestamp(stored->created_at());
  job.run.num_frames = job.request.num_frames();
  return job;
}

tpdiff::v1::ListModelsResponse Dispatcher::ListModels() const {
  tpdiff::v1::ListModelsResponse response;
  response.set_default_model(models_.DefaultModel());
  absl::MutexLock lock(&mu_);
  for (tpdiff::v1::ModelInfo& info : models_.List()) {
    info.set_ready_workers(static_cast<uint32_t>(workers_.Capacity(info.name()).workers));
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
    case WorkerEventAction::kAppend: {
      absl::Status recorded = log_.Record(job_id, job.run, std::move(translated.event), now);
      // Ended on another front (cancelled there): the worker stops within one step.
      if (absl::IsFailedPrecondition(recorded)) StopEndedLocked(job_id, "job already ended");
      return;
    }
    case WorkerEventAction::kFinish: {
      if (translated.event.has_completed()) {
        recent_.Add(absl::ToDoubleSeconds(now - job.run.assigned_at));
      }
      workers_.ReleaseSlot(connection, job_id);
      pending_workers_.push_back(connection);
      absl::Status recorded = log_.Record(job_id, job.run, std::move(translated.event), now);
      if (absl::IsUnavailable(recorded)) {
        // The shared store did not take the job's end: run it again rather than lose it.
        RequeueLocked(job_id, "state_unavailable",
                      absl::StrCat("the job's end could not be stored: ", recorded.message()));
        return;
      }
      ForgetLocked(job_id);
      return;
    }
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
  QueuedJob entry = job.entry;
  entry.queued_at = now;
  entry.deadline = QueueDeadline(job.request, entry.call_deadline, now);
  log_.Requeued(job_id, job.run.attempt + 1, label, reason);
  active_.erase(it);
  pending_models_.insert(entry.model);
  queue_->PushFront(std::move(entry));  // also ends the lease of a shared queue
}

void Dispatcher::AdoptOrphansLocked(absl::Time now) {
  for (const QueuedJob& orphan : queue_->TakeOrphans(now)) {
    std::optional<ActiveJob> job = LoadLocked(orphan);
    if (!job.has_value()) {
      queue_->Finished(orphan.job_id);
      continue;
    }
    active_.emplace(orphan.job_id, *std::move(job));
    RequeueLocked(orphan.job_id, "front_lost",
                  "the front running the job stopped renewing its lease");
  }
}

std::vector<std::string> Dispatcher::ServedModelsLocked() const {
  std::vector<std::string> served;
  for (const std::string& name : models_.Names()) {
    if (workers_.Capacity(name).workers > 0) served.push_back(name);
  }
  return served;
}

void Dispatcher::DispatchLocked() {
  const absl::Time now = clock_.Now();
  // A shared queue's deadlines cost a round trip: they are expired on Tick.
  if (!queue_->shared()) ExpireQueuedLocked(now);
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
  std::optional<ActiveJob> loaded = LoadLocked(*next);
  if (!loaded.has_value()) {  // ended meanwhile (cancelled on another front): try the next
    queue_->Finished(next->job_id);
    return true;
  }
  ActiveJob& job = active_.insert_or_assign(next->job_id, *std::move(loaded)).first->second;
  job.worker = connection;
  job.run.assigned_at = now;
  job.run.worker_id = worker->worker_id;
  workers_.HoldSlot(connection, next->job_id, job.run.attempt);
  workers_.Lease(next->job_id, connection, now);
  metrics_.QueueWait(absl::ToDoubleSeconds(now - job.entry.queued_at));
  DispatchMessage message;
  tpdiff::worker::v1::Assign* assign = message.mutable_assign();
  assign->set_job_id(next->job_id);
  *assign->mutable_request() = job.request;
  assign->set_attempt(job.run.attempt);
  *assign->mutable_queue_time() = ToProtoDuration(now - job.entry.queued_at);
  worker->channel->Send(std::move(message));
  return true;
}

void Dispatcher::ExpireQueuedLocked(absl::Time now) {
  for (const QueuedJob& expired : queue_->TakeExpired(now)) {
    absl::StatusOr<Job> stored = store_.Get(expired.job_id);
    const absl::Duration max_queue_wait =
        stored.ok() ? FromProtoDuration(stored->request().max_queue_wait()) : absl::ZeroDuration();
    FinishLocked(expired.job_id,
                 JobEventLog::QueueDeadlinePassed(expired.call_deadline <= now, max_queue_wait));
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
    if (queue_->ServedElsewhere(model)) continue;
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
  if (queue_->shared()) {
    queue_->Heartbeat(now, ServedModelsLocked());
    AdoptOrphansLocked(now);
    ExpireQueuedLocked(now);
    // Pub/sub may lose a "queued" message (a reconnect): free workers look once per tick.
    for (uint64_t connection : workers_.Connections()) {
      if (workers_.HasFreeSlot(connection)) pending_workers_.push_back(connection);
    }
  }
  ExpireLeasesLocked(now);
  FailUnservableLocked(now);
  DispatchLocked();  // also expires queue deadlines
  UpdateGaugesLocked();
  UpdateQueueGaugesLocked();
}

void Dispatcher::StopAdmitting() {
  absl::MutexLock lock(&mu_);
  admitting_ = false;
}

void Dispatcher::CancelQueued(const std::string& source) {
  absl::MutexLock lock(&mu_);
  if (queue_->shared()) return;
  for (const QueuedJob& job : queue_->TakeAll()) {
    FinishLocked(job.job_id, JobEventLog::Cancelled(source));
  }
  UpdateGaugesLocked();
}

void Dispatcher::DrainWorkers() {
  absl::MutexLock lock(&mu_);
  const absl::Time now = clock_.Now();
  for (uint64_t connection : workers_.Connections()) {
    // With a shared queue the workers stay: they get no new job here and reconnect to
    // another front when this one closes their streams.
    if (workers_.SetDraining(connection, now) && !queue_->shared()) {
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
  if (!queue_->shared()) {
    for (const QueuedJob& job : queue_->TakeAll()) {
      FinishLocked(job.job_id, JobEventLog::Cancelled(source));
    }
  }
  for (const std::string& job_id : ids) {
    if (!queue_->shared()) {
      CancelLocked(job_id, source);
      continue;
    }
    const ActiveJob& job = active_.at(job_id);
    if (const WorkerEntry* worker = workers_.Find(job.worker)) {
      worker->channel->Send(CancelMessage(job_id, absl::StrCat("front ", source)));
    }
    RequeueLocked(job_id, "worker_disconnected", absl::StrCat("its front ended (", source, ")"));
  }
  UpdateGaugesLocked();
}

bool Dispatcher::WaitUntilNoRunningJobs(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return workers_.leases() == 0; };
  return mu_.AwaitWithTimeout(absl::Condition(&idle), timeout);
}

bool Dispatcher::Ready() const {
  absl::MutexLock lock(&mu_);
  if (!admitting_ || !queue_->Health().ok() || queue_->Full(tpdiff::v1::PRIORITY_STANDARD)) {
    return false;
  }
  if (workers_.serving() > 0) return true;
  if (!queue_->shared()) return false;
  for (const std::string& name : models_.Names()) {
    if (queue_->ServedElsewhere(name)) return true;
  }
  return false;
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

void Dispatcher::UpdateQueueGaugesLocked() {
  // With a shared queue every front exports the cluster-wide depth: dashboards take max().
  gauges_.interactive->Set(static_cast<double>(queue_->Size(tpdiff::v1::PRIORITY_INTERACTIVE)));
  gauges_.standard->Set(static_cast<double>(queue_->Size(tpdiff::v1::PRIORITY_STANDARD)));
  gauges_.batch->Set(static_cast<double>(queue_->Size(tpdiff::v1::PRIORITY_BATCH)));
}

void Dispatcher::UpdateGaugesLocked() {
  if (!queue_->shared()) UpdateQueueGaugesLocked();
  gauges_.serving->Set(static_cast<double>(workers_.serving()));
  gauges_.draining->Set(static_cast<double>(workers_.draining()));
}

}  // namespace tpdiff::server
