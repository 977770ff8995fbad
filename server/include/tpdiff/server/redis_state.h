#ifndef TPDIFF_SERVER_REDIS_STATE_H_
#define TPDIFF_SERVER_REDIS_STATE_H_

// The front's shared state in Redis (--state=redis://...): the job store with its event logs
// and videos, the work queue with its leases, and the tenant limits, shared by every front
// replica that names the same Redis. Keys, scripts and guarantees: docs/scale-out.md.
//
// Each multi-key step is one Lua script, so it is atomic across replicas; values are
// serialized protobufs (events, jobs) stored byte for byte, so every replica serves the same
// bytes with the same seq. What other replicas do arrives over pub/sub: new events (watchers
// are woken), queued jobs (free workers pull) and cancellations (the worker's replica stops
// the job). A standalone Redis (or a primary with replicas) is assumed, not Redis Cluster:
// scripts touch keys they compute.

#include <cstddef>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <unordered_map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "tpdiff/server/clock.h"
#include "tpdiff/server/job_store.h"
#include "tpdiff/server/redis_client.h"
#include "tpdiff/server/tenants.h"
#include "tpdiff/server/work_queue.h"

namespace tpdiff::server {

struct RedisStateOptions {
  RedisAddress address;
  std::string key_prefix = "tpdiff:";  // every key and channel starts with it
  int pool_size = 8;                   // connections for commands (plus one subscriber)
  // This front's id in leases and stream counts; empty = host name, pid and a random suffix.
  std::string replica_id;
  // A front that has not renewed its liveness this long is dead: its running jobs are
  // re-queued and its open streams stop counting. Renewed on every tick.
  absl::Duration liveness_ttl = absl::Seconds(10);
  size_t queue_capacity = 64;  // per priority, cluster-wide
  absl::Duration aging_interval = absl::Seconds(10);
  absl::Duration job_ttl = absl::Hours(1);
  size_t job_store_bytes = size_t{1} << 30;  // cluster-wide budget of stored events
};

class RedisJobStore;
class RedisWorkQueue;

// The connection pool, the subscriber thread and this replica's identity, shared by the
// store, queue and limiter it makes.
//
// Ownership: the objects it makes borrow it: it must outlive them. Construction never fails
// on an unreachable server (the pool reconnects; Health() reports it). Thread safety: all
// methods are thread-safe.
class RedisState {
 public:
  RedisState(RedisStateOptions options, const Clock& clock);
  ~RedisState();  // stops the subscriber

  std::unique_ptr<RedisJobStore> MakeJobStore();
  std::unique_ptr<RedisWorkQueue> MakeWorkQueue();
  std::unique_ptr<TenantLimiter> MakeTenantLimiter();

  // OK when a PING answers; otherwise UNAVAILABLE naming the server.
  absl::Status Health() const;
  const std::string& replica_id() const { return options_.replica_id; }
  const RedisStateOptions& options() const { return options_; }
  RedisPool& pool() { return *pool_; }
  const Clock& clock() const { return clock_; }
  std::string Key(const std::string& suffix) const { return options_.key_prefix + suffix; }

 private:
  friend class RedisJobStore;
  friend class RedisWorkQueue;
  void OnMessage(const std::string& channel, const std::string& payload);
  void OnResubscribed();

  RedisStateOptions options_;
  const Clock& clock_;
  std::unique_ptr<RedisPool> pool_;
  absl::Mutex mu_;
  RedisJobStore* store_ ABSL_GUARDED_BY(mu_) = nullptr;  // registered by the store itself
  RedisWorkQueue* queue_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::unique_ptr<RedisSubscriber> subscriber_;  // last: its thread calls the members above
};

// JobStore over Redis. Per job: a hash (Job bytes, tenant, request-id key, bytes, finished)
// and a list of serialized events (index seq - 1). An append is a compare-and-set on the
// list length, so two replicas appending to one job never give two events one seq, and an
// append to an ended job fails for every replica; the record and length this front wrote
// last are kept here, so an append costs one round trip unless another front came between. Watchers are this process's; they are
// woken by the "events" channel and, after a reconnect of the subscriber, all at once.
// Eviction (Evict, on the ticker): finished jobs past the TTL, then the oldest finished
// ones while the cluster-wide bytes exceed the budget, sparing jobs watched here.
class RedisJobStore final : public JobStore {
 public:
  explicit RedisJobStore(RedisState& state);
  ~RedisJobStore() override;

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

  // From the subscriber: `job_id` has new events; or every watcher may have missed some.
  void OnJobUpdated(const std::string& job_id);
  void OnAllUpdated();

 private:
  void Notify(const std::string& job_id);
  // A cluster-wide count ("bytes", "jobs"); 0 when unreachable.
  size_t Counter(const std::string& name) const;

  // The job record and log length after this front's last append to it.
  struct CachedJob {
    tpdiff::v1::Job job;
    int64_t length = 0;
  };
  static constexpr size_t kMaxCachedJobs = 4096;

  RedisState& state_;
  mutable absl::Mutex mu_;
  std::map<std::string, std::vector<std::shared_ptr<JobWatcher>>> watchers_ ABSL_GUARDED_BY(mu_);
  std::unordered_map<std::string, CachedJob> cache_ ABSL_GUARDED_BY(mu_);
};

// WorkQueue over Redis, one queue for all replicas. Per priority level and model a sorted
// set by sequence number (Push appends, PushFront prepends), per level a sorted set by
// admission time (aging and Ahead in O(log n)), one of deadlines, per-model and per-tenant
// counts, and per job a hash with the encoded QueuedJob. Pop moves the best job a worker can
// run to the "running" hash under this replica's id: its lease, which lasts while this
// replica renews its liveness key (Heartbeat). TakeOrphans moves the leases of replicas
// whose liveness key expired to this one, once.
//
// When Redis cannot be reached, Push fails with UNAVAILABLE; PushFront and Finished are kept
// here and retried on the next Heartbeat, so a job re-queued during an outage is not lost;
// reads answer empty and Health() reports the error.
class RedisWorkQueue final : public WorkQueue {
 public:
  explicit RedisWorkQueue(RedisState& state);
  ~RedisWorkQueue() override;

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

  bool shared() const override { return true; }
  absl::Status Health() const override;
  void Finished(const std::string& job_id) override;
  std::vector<QueuedJob> TakeOrphans(absl::Time now) override;
  void Heartbeat(absl::Time now, const std::vector<std::string>& served_models) override;
  bool ServedElsewhere(const std::string& model) override;
  // Publishes on the "cancel" channel; every replica hears it, the one running the job acts.
  void RequestCancel(const std::string& job_id, const std::string& reason) override;
  void SetListener(WorkQueueListener* listener) override;

  // From the subscriber.
  void OnQueued(const std::string& model);
  void OnCancel(const std::string& payload);

 private:
  absl::Status PushScript(const QueuedJob& job, size_t max_tenant_queued, bool front);
  std::vector<QueuedJob> DecodeList(const absl::StatusOr<RedisReply>& reply) const;
  std::vector<size_t> Sizes() const;

  RedisState& state_;
  // Held while a listener callback runs, so SetListener(nullptr) waits for it. Never taken
  // by the WorkQueue methods (the Dispatcher calls those holding its lock, and the callbacks
  // take that lock).
  absl::Mutex listener_mu_;
  WorkQueueListener* listener_ ABSL_GUARDED_BY(listener_mu_) = nullptr;
  mutable absl::Mutex mu_;
  std::vector<QueuedJob> retry_front_ ABSL_GUARDED_BY(mu_);    // PushFront during an outage
  std::vector<std::string> retry_finished_ ABSL_GUARDED_BY(mu_);  // Finished likewise
};

// Encodes a QueuedJob as one string and back (for the queue's per-job hash). Exposed for
// tests.
std::string EncodeQueuedJob(const QueuedJob& job);
std::optional<QueuedJob> DecodeQueuedJob(const std::string& encoded);

}  // namespace tpdiff::server

#endif  // TPDIFF_SERVER_REDIS_STATE_H_
