#ifndef TPDIFF_SERVER_ADMISSION_H_
#define TPDIFF_SERVER_ADMISSION_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace tpdiff::server {

// What the queue-wait estimate of a new job depends on.
struct WaitInputs {
  size_t ahead = 0;        // queued jobs that start first (its queue position)
  uint64_t running = 0;    // slots held on the workers serving its model
  uint64_t slots = 0;      // slots of the serving (not draining) workers of its model
  std::optional<double> mean_job_seconds;  // recent mean run time; nullopt before any
};

// Estimated seconds until a new job starts: the jobs that go first (queued ahead, plus
// running ones beyond the free slots) times the mean job time, spread over the slots.
// nullopt when there is nothing to estimate from (no slots or no finished job). Pure.
std::optional<double> EstimateQueueWaitSeconds(const WaitInputs& inputs);

// OK when the estimated wait fits `limit` (the time left before the job's queue deadline);
// otherwise RESOURCE_EXHAUSTED with the estimate and its inputs. `limit_name` says which
// deadline ("max_queue_wait" or "call deadline"). Pure.
absl::Status CheckEstimatedWait(const WaitInputs& inputs, absl::Duration limit,
                                const std::string& limit_name);

// OK when a tenant with `queued` jobs waiting may queue one more under `max_queued_jobs`
// (0 = no limit); otherwise RESOURCE_EXHAUSTED naming the tenant and the limit. Pure.
absl::Status CheckTenantQueuedJobs(const std::string& tenant, size_t queued,
                                   size_t max_queued_jobs);

// The run times of the last `capacity` completed jobs, with their mean in O(1).
// Not thread-safe (the Dispatcher guards it).
class RecentDurations {
 public:
  explicit RecentDurations(size_t capacity) : capacity_(capacity) {}
  void Add(double seconds);
  std::optional<double> Mean() const;

 private:
  size_t capacity_;
  std::deque<double> seconds_;
  double sum_ = 0;
};

}  // namespace tpdiff::server

#endif  // TPDIFF_SERVER_ADMISSION_H_
