#ifndef TPDIFF_SERVER_DISPATCHER_H_
#define TPDIFF_SERVER_DISPATCHER_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/random/random.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "tpdiff/server/admission.h"
#include "tpdiff/server/clock.h"
#include "tpdiff/server/job_events.h"
#include "tpdiff/server/job_store.h"
#include "tpdiff/server/metrics.h"
#include "tpdiff/server/model_registry.h"
#include "tpdiff/server/work_queue.h"
#include "tpdiff/server/worker_registry.h"
#include "tpdiff/v1/video_generation.pb.h"
#include "tpdiff/worker/v1/worker.pb.h"

namespace tpdiff::server {

struct DispatcherOptions {
  size_t queue_capacity = 64;                     // per priority
  absl::Duration aging_interval = absl::Seconds(10);  // one priority level per interval waited
  int max_attempts = 3;                           // runs of one job before it fails
  absl::Duration heartbeat_interval = absl::Seconds(2);  // told to workers in Welcome
  // A worker silent this long loses its stream; a job its worker has not confirmed (event or
  // heartbeat listing it) this long is re-queued.
  absl::Duration lease_timeout = absl::Seconds(10);
  size_t recent_jobs_for_estimate = 16;  // completed jobs averaged for the wait estimate
  // A queued job whose model no serving worker has announced for this long fails with
  // FAILED_PRECONDITION (a model known only from disk included: its worker may be starting).
  absl::Duration unservable_timeout = absl::Seconds(60);
};

// Who submits a job: the owning tenant and its bound on queued jobs.
struct JobOwner {
  std::string tenant;          // "" when auth is off
  size_t max_queued_jobs = 0;  // jobs of the tenant waiting for a worker; 0 = no limit
};

struct Submission {
  tpdiff::v1::Job job;
  bool existing = false;  // the request_id matched a stored job; nothing new was queued
};

// The front's state machine, composed of small parts: admission (admission.h), the queue
// (WorkQueue), the workers and leases (WorkerRegistry) and the translation of worker events
// into job events (job_events.h). It decides when jobs move between them: on a queued job it
// offers the job to a free worker of its model, on a freed slot it offers the worker the
// next job; a message that changes neither (a heartbeat of an idle worker) costs O(log n).
//
// Queued jobs live in the queue and the store only; `active_` holds the jobs running on this
// front's workers, loaded from the store when popped. So a shared queue and store
// (redis_state.h) make the fronts replicas: a job queued by one runs on a worker of another,
// a job leased by a front that died is re-queued by another (Tick), and a cancellation on
// one front ends the job's log there and reaches the front running it through the queue
// (OnCancelRequested), or at the worker's next event, whose append then fails.
//
// Ownership: borrows the clock, model registry, store and metrics (they must outlive it);
// owns the queue and the worker registry. Thread safety: every public method is thread-safe
// and never blocks on I/O other than a shared state's round trips. Lock order:
// Dispatcher::mu_ -> WorkerChannel / JobWatcher locks -> JobStore lock; callers must not hold
// a reactor lock when calling in.
class Dispatcher final : public WorkQueueListener {
 public:
  // `queue` null: an in-memory PriorityJobQueue of options.queue_capacity per priority.
  Dispatcher(DispatcherOptions options, const Clock& clock, ModelRegistry& models,
             JobStore& store, ServerMetrics& metrics, std::unique_ptr<WorkQueue> queue = nullptr);
  ~Dispatcher() override;

  // Validates, fills defaults, applies idempotency and admission, stores the job with its
  // Queued event (seq 1) and hands it to a free worker if there is one. `call_deadline`
  // (Generate's deadline; InfiniteFuture for none) also bounds the time in the queue.
  // The job belongs to `owner.tenant`, whose request ids are its own idempotency keys.
  // INVALID_ARGUMENT (bad field), RESOURCE_EXHAUSTED (queue full / the tenant's
  // max_queued_jobs / estimated wait too long), UNAVAILABLE (draining).
  absl::StatusOr<Submission> Submit(const tpdiff::v1::GenerateRequest& request,
                                    absl::Time call_deadline = absl::InfiniteFuture(),
                                    const JobOwner& owner = {});
  // Cancels a queued or running job (Cancelled{source}; the worker running it is sent Cancel,
  // through the front it is connected to). A finished job is returned as is. NOT_FOUND for
  // an unknown job.
  absl::StatusOr<tpdiff::v1::Job> Cancel(const std::string& job_id, const std::string& source);
  tpdiff::v1::ListModelsResponse ListModels() const;

  // Worker protocol. ConnectWorker validates the Hello, sends Welcome on `channel` and
  // returns a connection id; from then on jobs may be assigned on it. A second connection
  // with the same worker_id replaces the first (its jobs are re-queued).
  absl::StatusOr<uint64_t> ConnectWorker(const tpdiff::worker::v1::Hello& hello,
                                         WorkerChannel* channel);
  void OnWorkerMessage(uint64_t connection, const tpdiff::worker::v1::WorkerMessage& message);
  // The stream ended (any cause). Its jobs are re-queued. Unknown ids are ignored, so this
  // may follow a Close the Dispatcher initiated.
  void DisconnectWorker(uint64_t connection, const std::string& reason);

  // Periodic work, driven by the server's ticker (or a test after advancing a FakeClock):
  // queue deadlines, leases, jobs of models no worker serves, job store eviction.
  void Tick();

  // WorkQueueListener: another front queued a job / cancelled a job.
  void OnJobQueued(const std::string& model) override;
  void OnCancelRequested(const std::string& job_id, const std::string& reason) override;

  // Shutdown steps. StopAdmitting: Submit answers UNAVAILABLE and Ready() is false.
  void StopAdmitting();
  // Cancels every queued job (not the running ones) with Cancelled{source}. With a shared
  // queue it does nothing: the other fronts run them.
  void CancelQueued(const std::string& source);
  // Sends Drain to every worker; drained workers get no new jobs. With a shared queue the
  // workers are only given no new jobs here (not told to drain): they move to another front.
  void DrainWorkers();
  // Cancels every running job with Cancelled{source} (and the queued ones, as CancelQueued).
  // With a shared queue the running jobs are re-queued for the other fronts instead.
  void CancelAll(const std::string& source);
  // Waits (real time) until no job runs on a worker; false on timeout.
  bool WaitUntilNoRunningJobs(absl::Duration timeout);

  // Admitting, the queue's backend reachable, the STANDARD queue not full, and at least one
  // serving worker (with a shared queue: on any front).
  bool Ready() const;
  size_t ServingWorkers() const;
  size_t RunningJobs() const;
  size_t QueuedJobs() const;

 private:
  // A job running on one of this front's workers.
  struct ActiveJob {
    tpdiff::v1::GenerateRequest request;  // validated, defaults filled in
    QueuedJob entry;  // priority, model, tenant, aging start, deadlines, last (re)queue time
    uint64_t worker = 0;   // connection running it (holding its lease); 0 = not running
    JobRun run;            // attempt, times, worker of the current run
  };

  static absl::Time QueueDeadline(const tpdiff::v1::GenerateRequest& request,
                                  absl::Time call_deadline, absl::Time from);
  // The popped job as the store has it; nullopt when it is gone or has ended.
  std::optional<ActiveJob> LoadLocked(const QueuedJob& entry) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Assigns queued jobs to free workers: first to the workers in pending_workers_ (a slot
  // freed), then to free workers of the models in pending_models_ (a job was queued).
  // Expires queue deadlines first.
  void DispatchLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Pops the worker's next job and assigns it; false when the queue has none for it.
  bool AssignNextLocked(uint64_t connection, absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ExpireQueuedLocked(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ExpireLeasesLocked(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FailUnservableLocked(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Puts a job that lost its worker back at the front of its priority, or fails it after
  // max_attempts. `label` is the bounded metric reason, `reason` the text clients see.
  void RequeueLocked(const std::string& job_id, const std::string& label,
                     const std::string& reason) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RemoveWorkerLocked(uint64_t connection, const std::string& label,
                          const std::string& reason) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Re-queues the running jobs of fronts that died (shared queue).
  void AdoptOrphansLocked(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The job ended without this front (cancelled on another): stop it on its worker.
  void StopEndedLocked(const std::string& job_id, const std::string& reason)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Models with a serving worker here.
  std::vector<std::string> ServedModelsLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Appends the terminal event and forgets the job.
  void FinishLocked(const std::string& job_id, tpdiff::v1::JobEvent event)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Forgets a running job that ended or moved: its lease here and in the queue.
  void ForgetLocked(const std::string& job_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void CancelLocked(const std::string& job_id, const std::string& source)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void HandleEventLocked(uint64_t connection, const WorkerEntry& worker,
                         const tpdiff::worker::v1::WorkerEvent& event, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // O(1): the counts are kept by the queue and the worker registry. A shared queue's depth
  // costs a round trip, so it is read on Tick only (UpdateQueueGaugesLocked).
  void UpdateGaugesLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void UpdateQueueGaugesLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const DispatcherOptions options_;
  const Clock& clock_;
  ModelRegistry& models_;
  JobStore& store_;
  ServerMetrics& metrics_;
  JobEventLog log_;
  // Looked up once: a family lookup per message would cost more than the dispatch itself.
  struct Gauges {
    prometheus::Gauge* interactive;
    prometheus::Gauge* standard;
    prometheus::Gauge* batch;
    prometheus::Gauge* serving;
    prometheus::Gauge* draining;
  };
  const Gauges gauges_;

  mutable absl::Mutex mu_;
  std::unique_ptr<WorkQueue> queue_ ABSL_GUARDED_BY(mu_);
  WorkerRegistry workers_ ABSL_GUARDED_BY(mu_);
  std::unordered_map<std::string, ActiveJob> active_ ABSL_GUARDED_BY(mu_);  // running here
  std::vector<uint64_t> pending_workers_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> pending_models_ ABSL_GUARDED_BY(mu_);
  bool admitting_ ABSL_GUARDED_BY(mu_) = true;
  RecentDurations recent_ ABSL_GUARDED_BY(mu_);
  absl::BitGen bitgen_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tpdiff::server

#endif  // TPDIFF_SERVER_DISPATCHER_H_
