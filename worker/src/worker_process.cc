#include "tpdiff/worker/worker_process.h"

#include <iostream>
#include <memory>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "prometheus/registry.h"
#include "tpdiff/common/clock.h"
#include "tpdiff/common/threads.h"
#include "tpdiff/model/cpu_runtime.h"
#include "tpdiff/core/device.h"
#include "tpdiff/media/encoder.h"
#include "tpdiff/worker/job_runner.h"
#include "tpdiff/worker/metrics.h"
#include "tpdiff/worker/metrics_server.h"
#include "tpdiff/worker/models.h"
#include "tpdiff/worker/readiness.h"

namespace tpdiff::worker {
namespace {

absl::Status Context(absl::string_view what, const absl::Status& status) {
  return absl::Status(status.code(), absl::StrCat(what, ": ", status.message()));
}

}  // namespace

absl::Status RunWorkerProcess(const WorkerProcessOptions& o) {
  absl::StatusOr<int> threads = common::IntraOpThreads(o.threads);
  if (!threads.ok()) return Context("--threads", threads.status());
  model::ConfigureCpuThreads(*threads);
  absl::StatusOr<torch::Device> device = core::ResolveDevice(o.device, "--device");
  if (!device.ok()) return device.status();
  absl::StatusOr<media::H264Choice> h264 =
      media::ChooseH264Encoder(o.video_encoder, "--video-encoder");
  if (!h264.ok()) return h264.status();
  if (!h264->fallback_reason.empty()) {
    std::cerr << "tpdiff-worker: --video-encoder=auto: h264_nvenc is not usable here ("
              << h264->fallback_reason << "); MP4 is encoded with libx264\n";
  }
  if (o.encode_queue_depth < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--encode-queue-depth: ", o.encode_queue_depth, " is below the minimum of 0"));
  }
  if (o.job_stall_timeout < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--job-stall-timeout: must not be negative");
  }

  auto registry = std::make_shared<prometheus::Registry>();
  WorkerMetrics metrics(*registry);
  // Outlives metrics_server, which reports it on /startupz and /readyz.
  WorkerReadiness readiness;
  // Not prometheus::Exposer: its civetweb threads cannot start in a LibTorch process (see
  // metrics_server.h).
  std::unique_ptr<MetricsServer> metrics_server;
  if (!o.metrics_listen.empty()) {
    absl::StatusOr<std::unique_ptr<MetricsServer>> started =
        MetricsServer::Start(o.metrics_listen, registry, &readiness);
    if (!started.ok()) return Context("--metrics-listen", started.status());
    metrics_server = *std::move(started);
    std::cerr << "tpdiff-worker: /metrics on port " << metrics_server->port() << "\n";
  }
  if (o.slots < 1) {
    return absl::InvalidArgumentError(absl::StrCat("--slots: ", o.slots, " is below the minimum of 1"));
  }
  absl::StatusOr<ModelSet> models = LoadWorkerModels(o.models_dir, o.models, *device, &metrics);
  if (!models.ok()) return Context("loading models", models.status());
  readiness.SetModelsLoaded();

  GatewayClientOptions options;
  options.server_address = o.server;
  options.worker_id = o.worker_id.empty() ? DefaultWorkerId() : o.worker_id;
  options.device = DeviceName(*device);
  options.version = o.version;
  options.slots = static_cast<uint32_t>(o.slots);
  options.readiness = &readiness;
  for (const auto& [name, model] : *models) {
    options.models.push_back(ToModelInfo(*model));
  }
  if (o.heartbeat > absl::ZeroDuration()) options.heartbeat_interval = o.heartbeat;
  if (absl::Status secured = ConfigureGatewaySecurity(o.security, options); !secured.ok()) {
    return Context("security flags", secured);
  }
  common::RealClock clock;
  GatewayClient gateway(options, clock);
  JobRunnerOptions runner_options;
  runner_options.worker_id = options.worker_id;
  runner_options.metrics = &metrics;
  runner_options.h264_encoder = h264->encoder;
  runner_options.encode_queue_depth = o.encode_queue_depth;
  runner_options.job_stall_timeout = o.job_stall_timeout;
  runner_options.clock = &clock;
  JobRunner runner(*std::move(models), o.slots, gateway, runner_options);
  // First SIGTERM/SIGINT drains (finish running jobs, then close); a second stops at once.
  // The detached signal thread may outlive `gateway` only while the process exits.
  DrainOnSignals(gateway);

  std::cerr << "tpdiff-worker " << options.worker_id << ": " << options.models.size()
            << " model(s) on " << options.device << ", " << options.slots << " slot(s), "
            << *threads << " thread(s), MP4 via " << media::H264EncoderName(h264->encoder)
            << "; front " << options.server_address << "\n";
  const absl::Status status = gateway.Run(runner);
  runner.Shutdown();
  if (!status.ok() && !absl::IsCancelled(status)) return Context("serving", status);
  return absl::OkStatus();
}

}  // namespace tpdiff::worker
