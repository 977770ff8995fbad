#include "tpdiff/worker/metrics.h"

#include <string>

namespace tpdiff::worker {
namespace {

// Video-sized buckets (architecture.md: 0.05 s .. 1200 s).
const prometheus::Histogram::BucketBoundaries& VideoBuckets() {
  static const auto* b = new prometheus::Histogram::BucketBoundaries{
      0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200};
  return *b;
}

// A denoising step of a small model takes milliseconds: finer buckets at the low end, the
// same video-sized ones above.
const prometheus::Histogram::BucketBoundaries& StepBuckets() {
  static const auto* b = new prometheus::Histogram::BucketBoundaries{
      0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120,
      300, 600, 1200};
  return *b;
}

}  // namespace

WorkerMetrics::WorkerMetrics(prometheus::Registry& registry)
    : step_seconds_(prometheus::BuildHistogram()
                        .Name("tpdiff_worker_step_seconds")
                        .Help("Wall time of one denoising step, by stage (1 = noisiest)")
                        .Register(registry)),
      encode_seconds_(prometheus::BuildHistogram()
                          .Name("tpdiff_worker_encode_seconds")
                          .Help("Wall time of one FFmpeg encode (previews and results)")
                          .Register(registry)),
      model_load_seconds_(prometheus::BuildHistogram()
                              .Name("tpdiff_worker_model_load_seconds")
                              .Help("Wall time to load one model package")
                              .Register(registry)
                              .Add({}, VideoBuckets())) {}

void WorkerMetrics::ObserveStep(int stage, double seconds) {
  step_seconds_.Add({{"stage", std::to_string(stage)}}, StepBuckets()).Observe(seconds);
}

void WorkerMetrics::ObserveEncode(absl::string_view format, double seconds) {
  encode_seconds_.Add({{"format", std::string(format)}}, VideoBuckets()).Observe(seconds);
}

void WorkerMetrics::ObserveModelLoad(double seconds) { model_load_seconds_.Observe(seconds); }

}  // namespace tpdiff::worker
