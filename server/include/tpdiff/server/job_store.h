#ifndef TPDIFF_SERVER_JOB_STORE_H_
#define TPDIFF_SERVER_JOB_STORE_H_

#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "tpdiff/server/clock.h"
#include "tpdiff/v1/video_generation.pb.h"

namespace tpdiff::server {

// Told that a job has new events, ended or was evicted. Called with no JobStore lock held,
// possibly from any thread; must not block. The JobStore keeps a shared_ptr until Unwatch.
class JobWatcher {
 public:
  virtual ~JobWatcher() = default;
  virtual void OnJobUpdated() = 0;
};

// One step of reading a job's event log.
struct EventRead {
  std::shared_ptr<const tpdiff::v1::JobEvent> event;  // the event with seq after_seq + 1, or null
  bool finished = false;  // the job has ended and `event` is null: nothing more will come
};

// Jobs, their event logs (seq 1, 2, 3, ... with no gaps) and the request_id index.
//
// The job's state follows its events: started -> RUNNING, completed/failed/cancelled end it
// (later appends fail), requeued -> QUEUED. Finished jobs are kept for a TTL and within a
// byte budget, the oldest finished first out.
//
// InMemoryJobStore keeps them in this process; RedisJobStore (redis_state.h) shares them
// between fronts (its methods may then fail with UNAVAILABLE naming the server).
//
// Thread safety: all methods are thread-safe. Lock order: callers may hold their own locks
// (Dispatcher, stream reactors) when calling in; the store never calls out while holding its
// lock (watchers are notified after it is released).
class JobStore {
 public:
  virtual ~JobStore() = default;

  // Adds a job in state QUEUED, owned by `tenant` ("" when auth is off). `job` has job_id,
  // request_id, request and created_at set. ALREADY_EXISTS when the job_id is taken or the
  // tenant's request_id names a stored job (RequestIdTaken): the check and the insert are one
  // atomic step, also across the fronts sharing a store.
  virtual absl::Status Create(tpdiff::v1::Job job, const std::string& tenant) = 0;
  absl::Status Create(tpdiff::v1::Job job) { return Create(std::move(job), ""); }
  // Removes a job whose submission failed after Create (queue full): nobody was told its id.
  virtual void Discard(const std::string& job_id) = 0;
  // The job of `tenant` holding `request_id` (non-empty), if it is still stored: request ids
  // are idempotency keys per tenant.
  virtual std::optional<std::string> FindByRequestId(const std::string& tenant,
                                                     const std::string& request_id) const = 0;
  std::optional<std::string> FindByRequestId(const std::string& request_id) const {
    return FindByRequestId("", request_id);
  }
  // The tenant owning the job; NOT_FOUND for an unknown job.
  virtual absl::StatusOr<std::string> Owner(const std::string& job_id) const = 0;
  // Assigns seq and timestamp, appends, updates the job and notifies watchers. Returns the
  // seq. NOT_FOUND for an unknown job, FAILED_PRECONDITION when it already ended.
  virtual absl::StatusOr<int64_t> Append(const std::string& job_id,
                                         tpdiff::v1::JobEvent event) = 0;
  virtual absl::StatusOr<tpdiff::v1::Job> Get(const std::string& job_id) const = 0;
  // The event after `after_seq`; NOT_FOUND when the job is unknown or was evicted.
  virtual absl::StatusOr<EventRead> Next(const std::string& job_id, int64_t after_seq) const = 0;
  // Registers for updates of one job (NOT_FOUND when unknown). A job with watchers is kept
  // past the byte budget (not past its TTL).
  virtual absl::Status Watch(const std::string& job_id, std::shared_ptr<JobWatcher> watcher) = 0;
  virtual void Unwatch(const std::string& job_id, const JobWatcher* watcher) = 0;
  // Drops finished jobs older than the TTL and, while over the byte budget, the oldest
  // finished jobs without watchers.
  virtual void Evict() = 0;
  virtual size_t bytes() const = 0;
  virtual size_t job_count() const = 0;
};

class InMemoryJobStore final : public JobStore {
 public:
  // ttl: how long a finished job stays; byte_budget: bound on the bytes of all stored events.
  InMemoryJobStore(const Clock& clock, absl::Duration ttl, size_t byte_budget);

  using JobStore::Create;
  using JobStore::FindByRequestId;
  absl::Status Create(tpdiff::v1::Job job, const std::string& tenant) override;
  void Discard(const std::string& job_id) override;
  std::optional<std::string> FindByRequestId(const std::string& tenant,
                                             const std::string& request_id) const override;
  absl::StatusOr<std::string> Owner(const std::string& job_id) const override;
  absl::StatusOr<int64_t> Append(const std::string& job_id, tpdiff::v1::JobEvent event) override;
  absl::StatusOr<tpdiff::v1::Job> Get(const std::string& job_id) const override;
  absl::StatusOr<EventRead> Next(const std::string& job_id, int64_t after_seq) const override;
  absl::Status Watch(const std::string& job_id, std::shared_ptr<JobWatcher> watcher) override;
  void Unwatch(const std::string& job_id, const JobWatcher* watcher) override;
  void Evict() override;
  size_t bytes() const override;
  size_t job_count() const override;

 private:
  struct Record {
    tpdiff::v1::Job job;
    std::string tenant;
    std::vector<std::shared_ptr<const tpdiff::v1::JobEvent>> events;  // events[i].seq == i + 1
    std::vector<std::shared_ptr<JobWatcher>> watchers;
    size_t bytes = 0;
    std::optional<absl::Time> finished_at;
  };
  using Notifications = std::vector<std::shared_ptr<JobWatcher>>;

  // Appends to `out` the watchers of evicted jobs.
  void EvictLocked(absl::Time now, Notifications* out) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EraseLocked(std::map<std::string, Record>::iterator it, Notifications* out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  static void Notify(const Notifications& watchers);

  const Clock& clock_;
  const absl::Duration ttl_;
  const size_t byte_budget_;
  mutable absl::Mutex mu_;
  std::map<std::string, Record> jobs_ ABSL_GUARDED_BY(mu_);
  // (tenant, request_id) -> job id
  std::map<std::pair<std::string, std::string>, std::string> by_request_id_ ABSL_GUARDED_BY(mu_);
  std::list<std::string> finished_order_ ABSL_GUARDED_BY(mu_);  // oldest finished first
  size_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
};

// OK when `tenant` owns the job; otherwise NOT_FOUND with the same message as an unknown job,
// so a tenant cannot probe for other tenants' job ids.
absl::Status CheckAccess(const JobStore& store, const std::string& job_id,
                         const std::string& tenant);

// The job's fields that follow from one event (state, attempt, last_seq, result, end).
void ApplyEvent(const tpdiff::v1::JobEvent& event, tpdiff::v1::Job* job);

// ALREADY_EXISTS for a Create whose request_id already names a job of the tenant.
absl::Status RequestIdTaken(const std::string& request_id);

// True for completed, failed and cancelled events.
bool IsTerminal(const tpdiff::v1::JobEvent& event);
bool IsTerminal(tpdiff::v1::JobState state);

}  // namespace tpdiff::server

#endif  // TPDIFF_SERVER_JOB_STORE_H_
