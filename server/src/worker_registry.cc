#include "tpdiff/server/worker_registry.h"

#include "absl/algorithm/container.h"

namespace tpdiff::server {

void WorkerRegistry::Account(uint64_t connection, const WorkerEntry& worker, int sign,
                             absl::Time now) {
  if (worker.draining) return;
  const size_t held = worker.jobs.size();
  for (const std::string& model : worker.models) {
    ModelState& state = models_[model];
    ModelCapacity& capacity = state.capacity;
    if (sign > 0) {
      ++capacity.workers;
      capacity.slots += worker.slots;
      capacity.busy += held;
      if (held < worker.slots) state.free.emplace(held, connection);
    } else {
      --capacity.workers;
      capacity.slots -= worker.slots;
      capacity.busy -= held;
      state.free.erase({held, connection});
      if (capacity.workers == 0) capacity.unserved_since = now;
    }
  }
  if (sign > 0) {
    ++serving_;
  } else {
    --serving_;
  }
}

void WorkerRegistry::Reload(uint64_t connection, const WorkerEntry& worker, size_t held_before) {
  const size_t held = worker.jobs.size();
  if (worker.draining || held == held_before) return;
  for (const std::string& model : worker.models) {
    ModelState& state = models_[model];
    state.capacity.busy = state.capacity.busy + held - held_before;
    if (held_before < worker.slots) state.free.erase({held_before, connection});
    if (held < worker.slots) state.free.emplace(held, connection);
  }
}

uint64_t WorkerRegistry::Add(std::string worker_id, std::set<std::string> models, uint32_t slots,
                             WorkerChannel* channel, absl::Time now) {
  const uint64_t connection = next_connection_++;
  WorkerEntry& worker = workers_[connection];
  worker.worker_id = std::move(worker_id);
  worker.models = std::move(models);
  worker.slots = slots;
  worker.channel = channel;
  worker.last_seen = now;
  by_worker_id_[worker.worker_id] = connection;
  by_last_seen_.emplace(now, connection);
  Account(connection, worker, +1, now);
  return connection;
}

std::optional<WorkerEntry> WorkerRegistry::Remove(uint64_t connection, absl::Time now) {
  auto it = workers_.find(connection);
  if (it == workers_.end()) return std::nullopt;
  WorkerEntry& worker = it->second;
  Account(connection, worker, -1, now);
  if (worker.draining) --draining_;
  by_last_seen_.erase({worker.last_seen, connection});
  auto by_id = by_worker_id_.find(worker.worker_id);
  if (by_id != by_worker_id_.end() && by_id->second == connection) by_worker_id_.erase(by_id);
  for (const auto& [job_id, attempt] : worker.jobs) {
    auto lease = leases_.find(job_id);
    if (lease != leases_.end() && lease->second.connection == connection) EndLease(job_id);
  }
  WorkerEntry removed = std::move(worker);
  workers_.erase(it);
  return removed;
}

const WorkerEntry* WorkerRegistry::Find(uint64_t connection) const {
  auto it = workers_.find(connection);
  return it == workers_.end() ? nullptr : &it->second;
}

std::optional<uint64_t> WorkerRegistry::FindByWorkerId(const std::string& worker_id) const {
  auto it = by_worker_id_.find(worker_id);
  if (it == by_worker_id_.end()) return std::nullopt;
  return it->second;
}

std::vector<uint64_t> WorkerRegistry::Connections() const {
  std::vector<uint64_t> connections;
  connections.reserve(workers_.size());
  for (const auto& [connection, worker] : workers_) connections.push_back(connection);
  return connections;
}

void WorkerRegistry::Touch(uint64_t connection, absl::Time now) {
  auto it = workers_.find(connection);
  if (it == workers_.end() || it->second.last_seen == now) return;
  by_last_seen_.erase({it->second.last_seen, connection});
  it->second.last_seen = now;
  by_last_seen_.emplace(now, connection);
}

bool WorkerRegistry::SetDraining(uint64_t connection, absl::Time now) {
  auto it = workers_.find(connection);
  if (it == workers_.end() || it->second.draining) return false;
  Account(connection, it->second, -1, now);
  it->second.draining = true;
  ++draining_;
  return true;
}

std::optional<uint64_t> WorkerRegistry::FreeWorkerFor(const std::string& model) const {
  auto it = models_.find(model);
  if (it == models_.end() || it->second.free.empty()) return std::nullopt;
  return it->second.free.begin()->second;
}

bool WorkerRegistry::HasFreeSlot(uint64_t connection) const {
  const WorkerEntry* worker = Find(connection);
  return worker != nullptr && !worker->draining && worker->jobs.size() < worker->slots;
}

void WorkerRegistry::HoldSlot(uint64_t connection, const std::string& job_id, uint32_t attempt) {
  auto it = workers_.find(connection);
  if (it == workers_.end()) return;
  const size_t held = it->second.jobs.size();
  it->second.jobs[job_id] = attempt;
  Reload(connection, it->second, held);
}

bool WorkerRegistry::ReleaseSlot(uint64_t connection, const std::string& job_id,
                                 std::optional<uint32_t> attempt) {
  auto it = workers_.find(connection);
  if (it == workers_.end()) return false;
  auto held = it->second.jobs.find(job_id);
  if (held == it->second.jobs.end() || (attempt.has_value() && held->second != *attempt)) {
    return false;
  }
  it->second.jobs.erase(held);
  Reload(connection, it->second, it->second.jobs.size() + 1);
  return true;
}

WorkerRegistry::HeartbeatOutcome WorkerRegistry::Heartbeat(
    uint64_t connection, const google::protobuf::RepeatedPtrField<std::string>& running,
    absl::Time now) {
  HeartbeatOutcome outcome;
  auto it = workers_.find(connection);
  if (it == workers_.end()) return outcome;
  auto leased_here = [&](const std::string& job_id) {
    auto lease = leases_.find(job_id);
    return lease != leases_.end() && lease->second.connection == connection;
  };
  for (const std::string& job_id : running) {
    if (leased_here(job_id)) {
      Confirm(job_id, now);
    } else if (it->second.jobs.count(job_id) == 0) {
      outcome.not_held.push_back(job_id);
    }
  }
  std::vector<std::string> ended;
  for (const auto& [job_id, attempt] : it->second.jobs) {
    if (!leased_here(job_id) && !absl::c_linear_search(running, job_id)) ended.push_back(job_id);
  }
  for (const std::string& job_id : ended) outcome.freed_slot |= ReleaseSlot(connection, job_id);
  return outcome;
}

void WorkerRegistry::Lease(const std::string& job_id, uint64_t connection, absl::Time now) {
  EndLease(job_id);
  leases_[job_id] = LeaseEntry{connection, now};
  by_confirmed_.emplace(now, job_id);
}

void WorkerRegistry::Confirm(const std::string& job_id, absl::Time now) {
  auto it = leases_.find(job_id);
  if (it == leases_.end() || it->second.confirmed == now) return;
  by_confirmed_.erase({it->second.confirmed, job_id});
  it->second.confirmed = now;
  by_confirmed_.emplace(now, job_id);
}

void WorkerRegistry::EndLease(const std::string& job_id) {
  auto it = leases_.find(job_id);
  if (it == leases_.end()) return;
  by_confirmed_.erase({it->second.confirmed, job_id});
  leases_.erase(it);
}

std::vector<std::pair<std::string, absl::Time>> WorkerRegistry::UnconfirmedLeases(
    absl::Time now, absl::Duration timeout) const {
  std::vector<std::pair<std::string, absl::Time>> jobs;
  for (const auto& [confirmed, job_id] : by_confirmed_) {
    if (now - confirmed <= timeout) break;
    jobs.emplace_back(job_id, confirmed);
  }
  return jobs;
}

std::vector<uint64_t> WorkerRegistry::SilentWorkers(absl::Time now,
                                                    absl::Duration timeout) const {
  std::vector<uint64_t> silent;
  for (const auto& [last_seen, connection] : by_last_seen_) {
    if (now - last_seen <= timeout) break;
    silent.push_back(connection);
  }
  return silent;
}

ModelCapacity WorkerRegistry::Capacity(const std::string& model) const {
  auto it = models_.find(model);
  return it == models_.end() ? ModelCapacity{} : it->second.capacity;
}

}  // namespace tpdiff::server
