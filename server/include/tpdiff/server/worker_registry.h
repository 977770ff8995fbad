#ifndef TPDIFF_SERVER_WORKER_REGISTRY_H_
#define TPDIFF_SERVER_WORKER_REGISTRY_H_

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
#include "tpdiff/worker/v1/worker.pb.h"

namespace tpdiff::server {

// A connected worker's stream as the Dispatcher sees it (the gRPC reactor in production, a
// recorder in tests).
//
// Thread safety: the Dispatcher calls these with its own lock held, so implementations must
// not block and must never call back into the Dispatcher from inside them.
class WorkerChannel {
 public:
  virtual ~WorkerChannel() = default;
  // Queues a message for the worker, in order.
  virtual void Send(tpdiff::worker::v1::DispatchMessage message) = 0;
  // Ends the stream with `status` (lease expired, replaced). The Dispatcher has already
  // forgotten the worker and will not use the channel again.
  virtual void Close(const absl::Status& status) = 0;
};

// One connection of a worker, as the registry keeps it.
struct WorkerEntry {
  std::string worker_id;
  std::set<std::string> models;
  uint32_t slots = 1;
  WorkerChannel* channel = nullptr;  // borrowed; valid until the worker is removed
  bool draining = false;
  absl::Time last_seen;
  std::map<std::string, uint32_t> jobs;  // job id -> attempt, each holding a slot
};

// What the serving (not draining) workers of one model offer.
struct ModelCapacity {
  size_t workers = 0;  // serving workers announcing the model
  uint64_t slots = 0;  // their slots
  uint64_t busy = 0;   // their slots held by jobs
  // Since when no serving worker has had the model; InfinitePast when never served.
  absl::Time unserved_since = absl::InfinitePast();
};

// Connected workers, the slots their jobs hold, and the leases of running jobs, indexed so
// that every operation is O(log n) in the number of workers or jobs: finding a free worker
// for a model, a heartbeat, an assignment, the silent workers and unconfirmed leases (only
// those returned are visited), and the per-state and per-model counts (kept as counters).
//
// A lease is the front's record that a job's current attempt runs on a worker; it expires
// when the worker has not confirmed the job (event or heartbeat) for the lease timeout. A
// slot may stay held without a lease (a cancelled job the worker has not yet given up).
//
// Ownership: borrows each WorkerChannel. Thread safety: none; the Dispatcher calls every
// method with its mutex held.
class WorkerRegistry {
 public:
  // Adds a connection and returns its id (never 0, never reused).
  uint64_t Add(std::string worker_id, std::set<std::string> models, uint32_t slots,
               WorkerChannel* channel, absl::Time now);
  // Forgets a connection and the leases on it; returns it (nullopt when unknown) so that
  // the caller can re-queue its jobs. `now` starts the unserved time of models it leaves
  // without a worker.
  std::optional<WorkerEntry> Remove(uint64_t connection, absl::Time now);
  const WorkerEntry* Find(uint64_t connection) const;
  std::optional<uint64_t> FindByWorkerId(const std::string& worker_id) const;
  // Every connection, in id order (for shutdown).
  std::vector<uint64_t> Connections() const;

  // The worker sent something.
  void Touch(uint64_t connection, absl::Time now);
  // Stops new jobs for the worker; false when it was already draining or is unknown.
  bool SetDraining(uint64_t connection, absl::Time now);

  // The serving worker with a free slot for `model` that holds the fewest jobs (then the
  // oldest connection); nullopt when none.
  std::optional<uint64_t> FreeWorkerFor(const std::string& model) const;
  bool HasFreeSlot(uint64_t connection) const;
  // Holds a slot of `connection` for the job's attempt (replacing an earlier hold of it).
  void HoldSlot(uint64_t connection, const std::string& job_id, uint32_t attempt);
  // Frees the job's slot; with `attempt`, only if the slot is held for that attempt. True
  // when a slot was freed.
  bool ReleaseSlot(uint64_t connection, const std::string& job_id,
                   std::optional<uint32_t> attempt = std::nullopt);

  // A heartbeat listing the jobs the worker runs: renews the leases of those leased on this
  // connection and frees the slots of jobs without a lease here that it no longer runs (jobs
  // the front ended or moved). `not_held`: listed jobs holding no slot here, which the worker
  // should stop.
  struct HeartbeatOutcome {
    std::vector<std::string> not_held;
    bool freed_slot = false;
  };
  HeartbeatOutcome Heartbeat(uint64_t connection,
                             const google::protobuf::RepeatedPtrField<std::string>& running,
                             absl::Time now);

  // Leases. Lease starts or renews the job's lease on `connection`; Confirm renews it
  // (ignored when there is none); EndLease forgets it.
  void Lease(const std::string& job_id, uint64_t connection, absl::Time now);
  void Confirm(const std::string& job_id, absl::Time now);
  void EndLease(const std::string& job_id);
  size_t leases() const { return leases_.size(); }
  // Jobs whose lease was last confirmed more than `timeout` before `now`, with that instant,
  // oldest first.
  std::vector<std::pair<std::string, absl::Time>> UnconfirmedLeases(absl::Time now, absl::Duration timeout) const;
  // Connections that sent nothing for more than `timeout` before `now`, oldest first.
  std::vector<uint64_t> SilentWorkers(absl::Time now, absl::Duration timeout) const;

  ModelCapacity Capacity(const std::string& model) const;
  size_t serving() const { return serving_; }
  size_t draining() const { return draining_; }

 private:
  struct ModelState {
    ModelCapacity capacity;
    std::set<std::pair<size_t, uint64_t>> free;  // (jobs held, connection) with a free slot
  };
  struct LeaseEntry {
    uint64_t connection = 0;
    absl::Time confirmed;
  };

  // Adds (sign +1) or removes (-1) a serving worker's contribution to its models' counts and
  // free index; draining workers contribute nothing.
  void Account(uint64_t connection, const WorkerEntry& worker, int sign, absl::Time now);
  // Updates the busy counts and free index after the worker's held jobs changed from
  // `held_before`.
  void Reload(uint64_t connection, const WorkerEntry& worker, size_t held_before);

  uint64_t next_connection_ = 1;
  std::map<uint64_t, WorkerEntry> workers_;
  std::unordered_map<std::string, uint64_t> by_worker_id_;
  std::unordered_map<std::string, ModelState> models_;
  std::set<std::pair<absl::Time, uint64_t>> by_last_seen_;
  std::unordered_map<std::string, LeaseEntry> leases_;
  std::set<std::pair<absl::Time, std::string>> by_confirmed_;
  size_t serving_ = 0;
  size_t draining_ = 0;
};

}  // namespace tpdiff::server

#endif  // TPDIFF_SERVER_WORKER_REGISTRY_H_
