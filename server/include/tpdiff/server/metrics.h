#ifndef TPDIFF_SERVER_METRICS_H_
#define TPDIFF_SERVER_METRICS_H_

#include <string>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

namespace tpdiff::server {

// The front's metrics (names are a contract with dashboards and alerts: see
// docs/architecture.md). Base units; labels are bounded (method, code, outcome, priority,
// stage 1..5, worker state, requeue reason), never a job id or a prompt.
//
// Ownership: the families live in `registry`, which must outlive this object. Thread safety:
// prometheus-cpp metrics are thread-safe.
class ServerMetrics {
 public:
  explicit ServerMetrics(prometheus::Registry& registry);

  // Histogram buckets for video-sized durations: 0.05 s .. 1200 s.
  static prometheus::Histogram::BucketBoundaries DurationBuckets();

  void Request(const std::string& method, const std::string& code);
  void JobFinished(const std::string& outcome);  // "completed" | "failed" | "cancelled"
  prometheus::Gauge& QueueDepth(const std::string& priority);  // "interactive" | ...
  void QueueWait(double seconds) { queue_wait_.Observe(seconds); }
  void TimeToFirstPreview(double seconds) { time_to_first_preview_.Observe(seconds); }
  void JobDuration(double seconds) { job_duration_.Observe(seconds); }
  void StageDuration(int stage, double seconds);  // stage 1..K in sampling order
  prometheus::Gauge& Workers(const std::string& state);  // "serving" | "draining"
  // reason: "worker_disconnected" | "lease_expired" | "worker_cancelled" | "front_lost" (the
  // front running it died, shared state) | "state_unavailable" (its end could not be
  // stored); zero at start.
  void Requeue(const std::string& reason);
  void FramesGenerated(double frames) { frames_generated_.Increment(frames); }
  prometheus::Gauge& active_streams() { return active_streams_; }

 private:
  prometheus::Family<prometheus::Counter>& requests_;
  prometheus::Family<prometheus::Counter>& jobs_;
  prometheus::Family<prometheus::Gauge>& queue_depth_;
  prometheus::Histogram& queue_wait_;
  prometheus::Histogram& time_to_first_preview_;
  prometheus::Histogram& job_duration_;
  prometheus::Family<prometheus::Histogram>& stage_duration_;
  prometheus::Family<prometheus::Gauge>& workers_;
  prometheus::Family<prometheus::Counter>& requeues_;
  prometheus::Counter& frames_generated_;
  prometheus::Gauge& active_streams_;
};

}  // namespace tpdiff::server

#endif  // TPDIFF_SERVER_METRICS_H_
