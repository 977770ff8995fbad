#include "tpdiff/server/admission.h"

#include <algorithm>

#include "absl/strings/str_format.h"

namespace tpdiff::server {

std::optional<double> EstimateQueueWaitSeconds(const WaitInputs& inputs) {
  if (inputs.slots == 0 || !inputs.mean_job_seconds.has_value()) return std::nullopt;
  const double slots = static_cast<double>(inputs.slots);
  const double jobs_first =
      std::max(0.0, static_cast<double>(inputs.ahead + inputs.running) - slots + 1);
  return jobs_first * *inputs.mean_job_seconds / slots;
}

absl::Status CheckEstimatedWait(const WaitInputs& inputs, absl::Duration limit,
                                const std::string& limit_name) {
  const std::optional<double> estimate = EstimateQueueWaitSeconds(inputs);
  const double limit_seconds = absl::ToDoubleSeconds(limit);
  if (!estimate.has_value() || *estimate <= limit_seconds) return absl::OkStatus();
  return absl::ResourceExhaustedError(absl::StrFormat(
      "estimated queue wait %.1fs exceeds the %s of %.1fs (%d jobs ahead, %d running, %d ready "
      "slots, mean job time %.1fs)",
      *estimate, limit_name, limit_seconds, inputs.ahead, inputs.running, inputs.slots,
      *inputs.mean_job_seconds));
}

absl::Status CheckTenantQueuedJobs(const std::string& tenant, size_t queued,
                                   size_t max_queued_jobs) {
  if (max_queued_jobs == 0 || queued < max_queued_jobs) return absl::OkStatus();
  return absl::ResourceExhaustedError(absl::StrFormat(
      "queued jobs limit: tenant \"%s\" already has max_queued_jobs %d jobs waiting for a "
      "worker; retry when one starts",
      tenant, max_queued_jobs));
}

void RecentDurations::Add(double seconds) {
  if (capacity_ == 0) return;
  seconds_.push_back(seconds);
  sum_ += seconds;
  while (seconds_.size() > capacity_) {
    sum_ -= seconds_.front();
    seconds_.pop_front();
  }
}

std::optional<double> RecentDurations::Mean() const {
  if (seconds_.empty()) return std::nullopt;
  return sum_ / static_cast<double>(seconds_.size());
}

}  // namespace tpdiff::server
