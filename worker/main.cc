// tpdiff-worker: loads model packages, dials the front's WorkerGateway and runs jobs.
// Only flags and wiring live here; everything else is in tpdiff::worker.

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <torch/types.h>
#include <ATen/Parallel.h>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "tpdiff/model/cpu_runtime.h"
#include "tpdiff/client/credentials.h"
#include "tpdiff/client/flag_names.h"
#include "prometheus/registry.h"
#include "tpdiff/worker/gateway_client.h"
#include "tpdiff/worker/job_runner.h"
#include "tpdiff/worker/metrics.h"
#include "tpdiff/worker/metrics_server.h"
#include "tpdiff/worker/models.h"

ABSL_FLAG(std::string, server, "localhost:50051", "Address of the front (its WorkerGateway)");
ABSL_FLAG(std::string, models_dir, "models", "Folder of model packages");
ABSL_FLAG(std::string, models, "", "Comma-separated packages to load; empty = all in --models-dir");
ABSL_FLAG(int, slots, 1, "Jobs run at once (the slots share one copy of each model)");
ABSL_FLAG(std::string, device, "auto", "cpu, cuda or auto");
ABSL_FLAG(int, threads, 0, "LibTorch intra-op threads; 0 = number of cores");
ABSL_FLAG(std::string, worker_id, "", "Worker id; empty = hostname-pid");
ABSL_FLAG(std::string, metrics_listen, "", "host:port for /metrics; empty = off");
ABSL_FLAG(absl::Duration, heartbeat, absl::ZeroDuration(),
          "Heartbeat interval; 0 = the one the front sends in Welcome");
ABSL_FLAG(std::string, tls_ca, "", "PEM CA that signs the front's certificate; empty = system roots");
ABSL_FLAG(std::string, tls_cert, "", "PEM client certificate for a front with --tls-client-ca");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls-cert");
ABSL_FLAG(std::string, tls_server_name, "",
          "Name to verify in the front's certificate instead of --server's host");
ABSL_FLAG(std::string, worker_secret_file, "",
          "File with the front's worker secret; default: env TPDIFF_WORKER_SECRET");
ABSL_FLAG(bool, insecure, false, "Plaintext gRPC to the front (local mode and tests only)");

namespace {

int Fail(const std::string& what, const absl::Status& status) {
  std::cerr << "tpdiff-worker: " << what << ": " << status << "\n";
  return 1;
}

std::string DefaultWorkerId() {
  char host[256] = {0};
  if (gethostname(host, sizeof(host) - 1) != 0) host[0] = '\0';
  return absl::StrCat(host[0] != '\0' ? host : "worker", "-", getpid());
}

// Transport credentials and the worker secret from the flags (docs/security.md).
absl::Status ConfigureSecurity(tpdiff::worker::GatewayClientOptions& options) {
  tpdiff::client::ChannelSecurity security;
  security.insecure = absl::GetFlag(FLAGS_insecure);
  security.ca_file = absl::GetFlag(FLAGS_tls_ca);
  security.cert_file = absl::GetFlag(FLAGS_tls_cert);
  security.key_file = absl::GetFlag(FLAGS_tls_key);
  security.server_name = absl::GetFlag(FLAGS_tls_server_name);
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials =
      tpdiff::client::MakeChannelCredentials(security);
  if (!credentials.ok()) return credentials.status();
  options.credentials = *std::move(credentials);
  options.tls_server_name = security.server_name;
  if (!absl::GetFlag(FLAGS_worker_secret_file).empty()) {
    absl::StatusOr<std::string> secret = tpdiff::client::ReadFileContents(
        absl::GetFlag(FLAGS_worker_secret_file), "--worker-secret-file");
    if (!secret.ok()) return secret.status();
    options.secret = std::string(absl::StripTrailingAsciiWhitespace(*secret));
  } else if (const char* env = std::getenv("TPDIFF_WORKER_SECRET"); env != nullptr) {
    options.secret = env;
  }
  return absl::OkStatus();
}

}  // namespace

int main(int raw_argc, char** raw_argv) {
  // Sampling ran 2x slower with libgomp's spinning waits on a 2-core machine (cpu_runtime.h).
  tpdiff::model::ReexecWithPassiveOpenMpWait(raw_argv);
  std::vector<std::string> arg_storage;
  std::vector<char*> argv = tpdiff::client::NormalizeFlagNames(raw_argc, raw_argv, arg_storage);
  absl::SetProgramUsageMessage("tpdiff-worker --server=HOST:PORT --models-dir=DIR [flags]");
  absl::ParseCommandLine(raw_argc, argv.data());
  using namespace tpdiff::worker;

  // Signals are taken by one thread with sigwait, so block them before any thread starts.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  const int threads = absl::GetFlag(FLAGS_threads) > 0
                          ? absl::GetFlag(FLAGS_threads)
                          : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  at::set_num_threads(threads);
  const int slots = absl::GetFlag(FLAGS_slots);
  if (slots < 1) return Fail("--slots", absl::InvalidArgumentError("must be at least 1"));

  absl::StatusOr<torch::Device> device = ParseDevice(absl::GetFlag(FLAGS_device));
  if (!device.ok()) return Fail("--device", device.status());

  auto registry = std::make_shared<prometheus::Registry>();
  WorkerMetrics metrics(*registry);
  // Not prometheus::Exposer: its civetweb threads cannot start in a LibTorch process (see
  // metrics_server.h).
  std::unique_ptr<MetricsServer> metrics_server;
  if (!absl::GetFlag(FLAGS_metrics_listen).empty()) {
    absl::StatusOr<std::unique_ptr<MetricsServer>> started =
        MetricsServer::Start(absl::GetFlag(FLAGS_metrics_listen), registry);
    if (!started.ok()) return Fail("--metrics-listen", started.status());
    metrics_server = *std::move(started);
    std::cerr << "tpdiff-worker: /metrics on port " << metrics_server->port() << "\n";
  }

  const std::string models_dir = absl::GetFlag(FLAGS_models_dir);
  std::vector<std::string> names;
  if (absl::GetFlag(FLAGS_models).empty()) {
    absl::StatusOr<std::vector<std::string>> listed = ListModelPackages(models_dir);
    if (!listed.ok()) return Fail("--models-dir", listed.status());
    names = *listed;
  } else {
    names = absl::StrSplit(absl::GetFlag(FLAGS_models), ',', absl::SkipWhitespace());
  }
  if (names.empty()) {
    return Fail("--models", absl::NotFoundError(absl::StrCat("no model packages in ", models_dir)));
  }
  absl::StatusOr<ModelSet> models = LoadModels(models_dir, names, *device, &metrics);
  if (!models.ok()) return Fail("loading models", models.status());

  GatewayClientOptions options;
  options.server_address = absl::GetFlag(FLAGS_server);
  options.worker_id = absl::GetFlag(FLAGS_worker_id).empty() ? DefaultWorkerId()
                                                             : absl::GetFlag(FLAGS_worker_id);
  options.device = DeviceName(*device);
  options.version = TPDIFF_VERSION;
  options.slots = static_cast<uint32_t>(slots);
  for (const auto& [name, model] : *models) options.models.push_back(ToModelInfo(*model));
  if (absl::GetFlag(FLAGS_heartbeat) > absl::ZeroDuration()) {
    options.heartbeat_interval = absl::GetFlag(FLAGS_heartbeat);
  }
  if (absl::Status secured = ConfigureSecurity(options); !secured.ok()) {
    return Fail("security flags", secured);
  }
  GatewayClient gateway(options);
  JobRunnerOptions runner_options;
  runner_options.worker_id = options.worker_id;
  runner_options.metrics = &metrics;
  JobRunner runner(*std::move(models), slots, gateway, runner_options);

  // First SIGTERM/SIGINT drains (finish running jobs, then close); a second stops at once.
  std::thread([&gateway, signals] {
    int sig = 0;
    sigwait(&signals, &sig);
    std::cerr << "tpdiff-worker: signal " << sig << ", draining\n";
    gateway.Drain();
    sigwait(&signals, &sig);
    std::cerr << "tpdiff-worker: signal " << sig << ", stopping\n";
    gateway.Shutdown();
  }).detach();

  std::cerr << "tpdiff-worker " << options.worker_id << ": " << names.size() << " model(s) on "
            << options.device << ", " << slots << " slot(s), " << threads
            << " thread(s); front " << options.server_address << "\n";
  const absl::Status status = gateway.Run(runner);
  runner.Shutdown();
  if (!status.ok() && !absl::IsCancelled(status)) return Fail("serving", status);
  return 0;
}
