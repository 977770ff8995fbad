// tpdiff-server: the front server. Parses flags and wires objects; behaviour lives in
// tpdiff::server.
#include <signal.h>
#include <stdlib.h>

#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "tpdiff/client/flag_names.h"
#include "tpdiff/server/clock.h"
#include "tpdiff/server/front_server.h"
#include "tpdiff/server/local_workers.h"
#include "tpdiff/server/security.h"
#include "tpdiff/server/tenants.h"

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
ABSL_FLAG(std::string, tenants_file, "", "JSON tenants file: API key hashes and limits (docs/security.md)");

namespace {

// Security options from the flags (docs/security.md): TLS unless --insecure, worker
// authentication whenever TLS is on, API keys unless --auth=none.
absl::Status ConfigureSecurity(tpdiff::server::FrontServerOptions& options) {
  using tpdiff::server::ReadServerTls;
  const std::string cert = absl::GetFlag(FLAGS_tls_cert), key = absl::GetFlag(FLAGS_tls_key);
  const std::string client_ca = absl::GetFlag(FLAGS_tls_client_ca);
  const bool insecure = absl::GetFlag(FLAGS_insecure);
  if (insecure && !(cert.empty() && key.empty() && client_ca.empty())) {
    return absl::InvalidArgumentError("--insecure conflicts with --tls-cert/--tls-key/--tls-client-ca");
  }
  if (!insecure) {
    if (cert.empty() || key.empty()) {
      return absl::InvalidArgumentError(
          "--tls-cert and --tls-key are required (or --insecure for plaintext on a trusted network)");
    }
    absl::StatusOr<tpdiff::server::ServerTls> tls = ReadServerTls(cert, key, client_ca);
    if (!tls.ok()) return tls.status();
    options.tls = *std::move(tls);
    options.worker_auth.require_client_cert = !client_ca.empty();
  }
  if (!absl::GetFlag(FLAGS_worker_secret_file).empty()) {
    absl::StatusOr<std::string> secret =
        tpdiff::server::ReadSecretFile(absl::GetFlag(FLAGS_worker_secret_file));
    if (!secret.ok()) return secret.status();
    options.worker_auth.secret = *std::move(secret);
  }
  if (options.tls.has_value() && !options.worker_auth.require_client_cert &&
      options.worker_auth.secret.empty()) {
    return absl::InvalidArgumentError(
        "with TLS, workers must authenticate: give --tls-client-ca and/or --worker-secret-file");
  }
  const std::string auth = absl::GetFlag(FLAGS_auth);
  if (auth == "api-key") {
    if (absl::GetFlag(FLAGS_tenants_file).empty()) {
      return absl::InvalidArgumentError("--auth=api-key needs --tenants-file (or --auth=none)");
    }
    absl::StatusOr<std::vector<tpdiff::server::TenantConfig>> tenants =
        tpdiff::server::ReadTenantsFile(absl::GetFlag(FLAGS_tenants_file));
    if (!tenants.ok()) return tenants.status();
    options.tenants = *std::move(tenants);
  } else if (auth != "none") {
    return absl::InvalidArgumentError(absl::StrCat("--auth: \"", auth, "\" is not api-key or none"));
  }
  return absl::OkStatus();
}

}  // namespace

int main(int raw_argc, char** raw_argv) {
  std::vector<std::string> arg_storage;
  std::vector<char*> normalized = tpdiff::client::NormalizeFlagNames(raw_argc, raw_argv, arg_storage);
  int argc = raw_argc;
  char** argv = normalized.data();
  absl::FlagsUsageConfig usage;
  usage.contains_help_flags = [](absl::string_view file) {
    return absl::EndsWith(file, "server/main.cc");
  };
  usage.contains_helpshort_flags = usage.contains_help_flags;
  absl::SetFlagsUsageConfig(usage);
  absl::SetProgramUsageMessage("TPDiff video generation front server");
  absl::ParseCommandLine(argc, argv);

  // Block the shutdown signals before any thread starts, so only sigwait below sees them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  tpdiff::server::FrontServerOptions options;
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
  if (absl::Status secured = ConfigureSecurity(options); !secured.ok()) {
    std::cerr << "tpdiff-server: " << secured.message() << "\n";
    return 2;
  }
  const int local_workers = absl::GetFlag(FLAGS_local_workers);
  if (local_workers > 0 && options.worker_auth.require_client_cert) {
    std::cerr << "tpdiff-server: --local-workers cannot use --tls-client-ca; use --worker-secret-file\n";
    return 2;
  }
  if (local_workers > 0 && options.worker_auth.secret.empty()) {
    // Without --worker-secret-file, a fresh secret, so no other local process can register
    // as a worker.
    options.worker_auth.secret = tpdiff::server::RandomSecret();
  }

  tpdiff::server::RealClock clock;
  tpdiff::server::FrontServer server(options, clock);
  if (absl::Status started = server.Start(); !started.ok()) {
    std::cerr << "tpdiff-server: " << started << "\n";
    return 1;
  }
  std::cerr << "tpdiff-server: serving on port " << server.port();
  if (server.metrics_port() != 0) std::cerr << ", /metrics on port " << server.metrics_port();
  if (server.health_port() != 0) std::cerr << ", health on port " << server.health_port();
  std::cerr << "\n";

  std::unique_ptr<tpdiff::server::LocalWorkers> workers;
  if (local_workers > 0) {
    tpdiff::server::LocalWorkers::Options worker_options;
    worker_options.binary = absl::GetFlag(FLAGS_worker_binary).empty()
                                ? tpdiff::server::DefaultWorkerBinary()
                                : absl::GetFlag(FLAGS_worker_binary);
    worker_options.count = local_workers;
    // tpdiff-worker's flag names (absl, underscores). With TLS the local workers trust the
    // server's own certificate (self-signed, or a chain ending at its CA) and check a name it
    // holds (LocalServerName); the secret reaches them through their environment.
    worker_options.secret = options.worker_auth.secret;
    const bool insecure = absl::GetFlag(FLAGS_insecure);
    worker_options.args = {
        absl::StrCat("--server=", insecure ? "127.0.0.1:" : "localhost:", server.port()),
        absl::StrCat("--models_dir=", options.models_dir),
        insecure ? "--insecure" : absl::StrCat("--tls_ca=", absl::GetFlag(FLAGS_tls_cert))};
    if (options.tls.has_value()) {
      absl::StatusOr<std::string> name =
          tpdiff::server::LocalServerName(options.tls->cert_chain_pem);
      if (!name.ok()) {
        std::cerr << "tpdiff-server: " << name.status() << "\n";
        server.Shutdown(absl::ZeroDuration());
        return 1;
      }
      worker_options.args.push_back(absl::StrCat("--tls_server_name=", *name));
    }
    if (absl::GetFlag(FLAGS_worker_threads) > 0) {
      worker_options.args.push_back(absl::StrCat("--threads=", absl::GetFlag(FLAGS_worker_threads)));
    }
    workers = std::make_unique<tpdiff::server::LocalWorkers>(worker_options);
    if (absl::Status started = workers->Start(); !started.ok()) {
      std::cerr << "tpdiff-server: " << started << "\n";
      server.Shutdown(absl::ZeroDuration());
      return 1;
    }
  }

  int signal_number = 0;
  sigwait(&signals, &signal_number);
  std::cerr << "tpdiff-server: signal " << signal_number << ", shutting down (grace "
            << absl::FormatDuration(absl::GetFlag(FLAGS_grace_period)) << ")\n";
  server.Shutdown(absl::GetFlag(FLAGS_grace_period));
  if (workers) workers->Stop();
  return 0;
}
