// tpdiff-server: the front server. Flags and wiring only; behaviour lives in tpdiff::server.
#include <iostream>
#include <memory>
#include <string>

#include "absl/flags/flag.h"
#include "absl/time/time.h"
#include "tpdiff/common/clock.h"
#include "tpdiff/common/flags.h"
#include "tpdiff/common/signals.h"
#include "tpdiff/server/front_server.h"
#include "tpdiff/server/local_workers.h"
#include "tpdiff/server/server_setup.h"

ABSL_FLAG(std::string, listen, "0.0.0.0:50051", "gRPC address (host:port; port 0 = any free)");
ABSL_FLAG(std::string, metrics_listen, "0.0.0.0:9090", "/metrics address; empty = off");
ABSL_FLAG(std::string, health_listen, "",
          "plaintext host:port serving only grpc.health.v1 (probes that cannot do TLS); empty = off");
ABSL_FLAG(std::string, models_dir, "models", "folder of model packages (models/<name>/model.json)");
ABSL_FLAG(std::string, default_model, "", "model for requests without one; empty = first by name");
ABSL_FLAG(int, local_workers, 0, "tpdiff-worker child processes to run on loopback");
ABSL_FLAG(std::string, worker_binary, "", "worker executable; empty = tpdiff-worker next to this binary");
ABSL_FLAG(int, worker_threads, 0, "LibTorch threads per local worker (its --threads) when > 0");
ABSL_FLAG(int, queue_capacity, 64, "queued jobs per priority before RESOURCE_EXHAUSTED");
ABSL_FLAG(absl::Duration, aging_interval, absl::Seconds(10), "waiting this long raises a job one priority level");
ABSL_FLAG(int, max_attempts, 3, "runs of a job that lost its worker before it fails");
ABSL_FLAG(absl::Duration, heartbeat_interval, absl::Seconds(2), "worker heartbeat period (sent in Welcome)");
ABSL_FLAG(absl::Duration, lease_timeout, absl::Seconds(10), "worker/job silence before its jobs are re-queued");
ABSL_FLAG(absl::Duration, unservable_model_timeout, absl::Seconds(60), "bound on a queued job's wait while no connected worker serves its model (also a model known only from --models-dir): then it fails with FAILED_PRECONDITION");
ABSL_FLAG(absl::Duration, job_ttl, absl::Hours(1), "how long finished jobs and videos are kept");
ABSL_FLAG(int64_t, job_store_bytes, int64_t{1} << 30, "byte budget of stored events and videos");
ABSL_FLAG(absl::Duration, grace_period, absl::Seconds(30), "on SIGTERM, how long running jobs may finish");
ABSL_FLAG(int, max_receive_message_bytes, 16 << 20, "largest gRPC message accepted");
ABSL_FLAG(std::string, tls_cert, "", "PEM certificate chain of this server (TLS for API and workers)");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls-cert");
ABSL_FLAG(std::string, tls_client_ca, "",
          "PEM CA of worker client certificates; set = WorkerGateway requires a client cert it signed");
ABSL_FLAG(std::string, worker_secret_file, "",
          "file holding the shared worker secret (metadata tpdiff-worker-secret on WorkerGateway)");
ABSL_FLAG(bool, insecure, false, "serve plaintext gRPC (local mode and tests only)");
ABSL_FLAG(std::string, auth, "api-key", "api-key (bearer keys from --tenants-file) or none");
ABSL_FLAG(std::string, state, "memory",
          "where queues, jobs, events, videos and tenant counters live: memory (this process) or "
          "redis://HOST:PORT[/DB] | unix:///PATH[?db=N] shared by every replica (docs/scale-out.md)");
ABSL_FLAG(std::string, redis_password_file, "",
          "file holding the Redis password; empty = env TPDIFF_REDIS_PASSWORD, or none");
ABSL_FLAG(std::string, tenants_file, "", "JSON tenants file: API key hashes and limits (docs/security.md)");

int main(int argc, char** argv) {
  using namespace tpdiff::server;
  tpdiff::common::ParseCommandLine(argc, argv, "TPDiff video generation front server");
  tpdiff::common::CatchShutdownSignals();  // before any thread starts

  FrontServerOptions options;
  options.listen = absl::GetFlag(FLAGS_listen);
  options.metrics_listen = absl::GetFlag(FLAGS_metrics_listen);
  options.health_listen = absl::GetFlag(FLAGS_health_listen);
  options.models_dir = absl::GetFlag(FLAGS_models_dir);
  options.default_model = absl::GetFlag(FLAGS_default_model);
  options.dispatcher.queue_capacity = static_cast<size_t>(absl::GetFlag(FLAGS_queue_capacity));
  options.dispatcher.aging_interval = absl::GetFlag(FLAGS_aging_interval);
  options.dispatcher.max_attempts = absl::GetFlag(FLAGS_max_attempts);
  options.dispatcher.heartbeat_interval = absl::GetFlag(FLAGS_heartbeat_interval);
  options.dispatcher.lease_timeout = absl::GetFlag(FLAGS_lease_timeout);
  options.dispatcher.unservable_timeout = absl::GetFlag(FLAGS_unservable_model_timeout);
  options.job_ttl = absl::GetFlag(FLAGS_job_ttl);
  options.job_store_bytes = static_cast<size_t>(absl::GetFlag(FLAGS_job_store_bytes));
  options.max_receive_message_bytes = absl::GetFlag(FLAGS_max_receive_message_bytes);
  const SecurityFlags security{
      absl::GetFlag(FLAGS_tls_cert),           absl::GetFlag(FLAGS_tls_key),
      absl::GetFlag(FLAGS_tls_client_ca),      absl::GetFlag(FLAGS_worker_secret_file),
      absl::GetFlag(FLAGS_insecure),           absl::GetFlag(FLAGS_auth),
      absl::GetFlag(FLAGS_tenants_file)};
  const LocalWorkerFlags local{absl::GetFlag(FLAGS_local_workers),
                               absl::GetFlag(FLAGS_worker_binary),
                               absl::GetFlag(FLAGS_worker_threads)};
  absl::Status setup = ConfigureSecurity(security, options);
  if (setup.ok()) {
    setup = ConfigureState(absl::GetFlag(FLAGS_state), absl::GetFlag(FLAGS_redis_password_file),
                           options);
  }
  if (setup.ok()) setup = PrepareLocalWorkerAuth(local, options);
  if (!setup.ok()) {
    std::cerr << "tpdiff-server: " << setup.message() << "\n";
    return 2;
  }
  tpdiff::common::RealClock clock;
  FrontServer server(options, clock);
  if (absl::Status started = server.Start(); !started.ok()) {
    std::cerr << "tpdiff-server: " << started << "\n";
    return 1;
  }
  std::cerr << "tpdiff-server: " << ServingMessage(server) << "\n";
  absl::StatusOr<std::unique_ptr<LocalWorkers>> workers =
      StartLocalWorkers(local, security, options, server.port());
  if (!workers.ok()) {
    std::cerr << "tpdiff-server: " << workers.status() << "\n";
    server.Shutdown(absl::ZeroDuration());
    return 1;
  }
  const int signal_number = tpdiff::common::WaitForShutdownSignal();
  std::cerr << "tpdiff-server: signal " << signal_number << ", shutting down (grace "
            << absl::FormatDuration(absl::GetFlag(FLAGS_grace_period)) << ")\n";
  if (*workers) (*workers)->StopRestarting();  // draining workers exit on purpose
  server.Shutdown(absl::GetFlag(FLAGS_grace_period));
  if (*workers) (*workers)->Stop();
  return 0;
}
