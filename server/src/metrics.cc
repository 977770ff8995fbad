#include "tpdiff/server/metrics.h"

#include <prometheus/counter.h>

namespace tpdiff::server {
namespace {

prometheus::Histogram& SingleHistogram(prometheus::Registry& registry, const std::string& name,
                                       const std::string& help) {
  return prometheus::BuildHistogram()
      .Name(name)
      .Help(help)
      .Register(registry)
      .Add({}, ServerMetrics::DurationBuckets());
}

}  // namespace

prometheus::Histogram::BucketBoundaries ServerMetrics::DurationBuckets() {
  return {0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200};
}

ServerMetrics::ServerMetrics(prometheus::Registry& registry)
    : requests_(prometheus::BuildCounter()
                    .Name("tpdiff_requests_total")
                    .Help("API calls by method and final gRPC code")
                    .Register(registry)),
      jobs_(prometheus::BuildCounter()
                .Name("tpdiff_jobs_total")
                .Help("Jobs that ended, by outcome (completed, failed, cancelled)")
                .Register(registry)),
      queue_depth_(prometheus::BuildGauge()
                       .Name("tpdiff_queue_depth")
                       .Help("Jobs waiting for a worker, by priority; with --state=redis the "
                             "cluster-wide depth, the same on every front: aggregate with max()")
                       .Register(registry)),
      queue_wait_(SingleHistogram(registry, "tpdiff_queue_wait_seconds",
                                  "Time from admission (or re-queue) to assignment to a worker")),
      time_to_first_preview_(SingleHistogram(registry, "tpdiff_time_to_first_preview_seconds",
                                             "Time from admission to the first stage preview")),
      job_duration_(SingleHistogram(registry, "tpdiff_job_duration_seconds",
                                    "Time from admission to completion of completed jobs")),
      stage_duration_(prometheus::BuildHistogram()
                          .Name("tpdiff_stage_duration_seconds")
                          .Help("Sampling time per pyramid stage (1 = noisiest), from workers")
                          .Register(registry)),
      workers_(prometheus::BuildGauge()
                   .Name("tpdiff_workers")
                   .Help("Connected workers by state (serving, draining)")
                   .Register(registry)),
      requeues_(prometheus::BuildCounter()
                    .Name("tpdiff_job_requeues_total")
                    .Help("Jobs put back in the queue after losing their worker, by reason")
                    .Register(registry)),
      frames_generated_(prometheus::BuildCounter()
                            .Name("tpdiff_frames_generated_total")
                            .Help("Frames of completed videos")
                            .Register(registry)
                            .Add({})),
      active_streams_(prometheus::BuildGauge()
                          .Name("tpdiff_active_streams")
                          .Help("Open Generate and WatchJob streams")
                          .Register(registry)
                          .Add({})) {
  // Export zeros for the fixed label sets so dashboards see the series before traffic.
  for (const char* priority : {"interactive", "standard", "batch"}) QueueDepth(priority);
  for (const char* state : {"serving", "draining"}) Workers(state);
  for (const char* reason : {"worker_disconnected", "lease_expired", "worker_cancelled",
                             "front_lost", "state_unavailable"}) {
    requeues_.Add({{"reason", reason}});
  }
}

void ServerMetrics::Request(const std::string& method, const std::string& code) {
  requests_.Add({{"method", method}, {"code", code}}).Increment();
}

void ServerMetrics::JobFinished(const std::string& outcome) {
  jobs_.Add({{"outcome", outcome}}).Increment();
}

prometheus::Gauge& ServerMetrics::QueueDepth(const std::string& priority) {
  return queue_depth_.Add({{"priority", priority}});
}

void ServerMetrics::StageDuration(int stage, double seconds) {
  stage_duration_.Add({{"stage", std::to_string(stage)}}, DurationBuckets()).Observe(seconds);
}

prometheus::Gauge& ServerMetrics::Workers(const std::string& state) {
  return workers_.Add({{"state", state}});
}

void ServerMetrics::Requeue(const std::string& reason) {
  requeues_.Add({{"reason", reason}}).Increment();
}

}  // namespace tpdiff::server
