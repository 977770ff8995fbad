#ifndef TPDIFF_WORKER_METRICS_H_
#define TPDIFF_WORKER_METRICS_H_

#include <string>

#include "absl/strings/string_view.h"
#include "prometheus/family.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace tpdiff::worker {

// The worker's Prometheus metrics, registered on a registry the caller owns (each test gets
// a fresh one). Labels are bounded: stage is 1..5, format one of mp4/webm/gif/png.
//
// Thread safety: prometheus-cpp metrics are thread-safe; this struct only holds references.
// The registry must outlive it.
class WorkerMetrics {
 public:
  explicit WorkerMetrics(prometheus::Registry& registry);

  // One denoising step of stage `stage` (1-based sampling order, 1 = noisiest).
  void ObserveStep(int stage, double seconds);
  // One encode (preview or result) in `format` ("mp4", "gif", ...).
  void ObserveEncode(absl::string_view format, double seconds);
  void ObserveModelLoad(double seconds);

 private:
  prometheus::Family<prometheus::Histogram>& step_seconds_;
  prometheus::Family<prometheus::Histogram>& encode_seconds_;
  prometheus::Histogram& model_load_seconds_;
};

}  // namespace tpdiff::worker

#endif  // TPDIFF_WORKER_METRICS_H_
