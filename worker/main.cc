// tpdiff-worker: loads model packages, dials the front's WorkerGateway and runs jobs.
// Only flags and wiring live here; everything else is in tpdiff::worker.

#include <iostream>
#include <string>

#include "absl/flags/flag.h"
#include "absl/time/time.h"
#include "tpdiff/common/flags.h"
#include "tpdiff/common/signals.h"
#include "tpdiff/model/cpu_runtime.h"
#include "tpdiff/worker/worker_process.h"

ABSL_FLAG(std::string, server, "localhost:50051", "Address of the front (its WorkerGateway)");
ABSL_FLAG(std::string, models_dir, "models", "Folder of model packages");
ABSL_FLAG(std::string, models, "", "Comma-separated packages to load; empty = all in --models-dir");
ABSL_FLAG(int, slots, 1, "Jobs run at once (the slots share one copy of each model)");
ABSL_FLAG(std::string, device, "auto", "cpu, cuda, cuda:N or auto");
ABSL_FLAG(int, threads, 0, "LibTorch intra-op threads; 0 = number of cores");
ABSL_FLAG(std::string, worker_id, "", "Worker id; empty = hostname-pid");
ABSL_FLAG(std::string, metrics_listen, "", "host:port for /metrics; empty = off");
ABSL_FLAG(absl::Duration, heartbeat, absl::ZeroDuration(),
          "Heartbeat interval; 0 = the one the front sends in Welcome");
ABSL_FLAG(std::string, tls_ca, "",
          "PEM CA that signs the front's certificate; empty = system roots");
ABSL_FLAG(std::string, tls_cert, "", "PEM client certificate for a front with --tls-client-ca");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls-cert");
ABSL_FLAG(std::string, tls_server_name, "",
          "Name to verify in the front's certificate instead of --server's host");
ABSL_FLAG(std::string, worker_secret_file, "",
          "File with the front's worker secret; default: env TPDIFF_WORKER_SECRET");
ABSL_FLAG(bool, insecure, false, "Plaintext gRPC to the front (local mode and tests only)");
ABSL_FLAG(std::string, video_encoder, "auto",
          "MP4 encoder: auto (h264_nvenc where it opens, else libx264), libx264 or h264_nvenc");
ABSL_FLAG(int, encode_queue_depth, 2,
          "Encodes each slot may have waiting on its encoder thread; 0 = encode on the "
          "sampling thread");
ABSL_FLAG(absl::Duration, job_stall_timeout, absl::Seconds(300),
          "Fail a job whose sampler makes no step for this long and replace its slot; 0 = off");

int main(int argc, char** argv) {
  // Sampling ran 2x slower with libgomp's spinning waits on a 2-core machine (cpu_runtime.h).
  tpdiff::model::ReexecWithPassiveOpenMpWait(argv);
  tpdiff::common::ParseCommandLine(argc, argv,
                                   "tpdiff-worker --server=HOST:PORT --models-dir=DIR [flags]");
  tpdiff::common::CatchShutdownSignals();  // before any thread starts
  tpdiff::worker::WorkerProcessOptions o;
  o.server = absl::GetFlag(FLAGS_server);
  o.models_dir = absl::GetFlag(FLAGS_models_dir);
  o.models = absl::GetFlag(FLAGS_models);
  o.slots = absl::GetFlag(FLAGS_slots);
  o.device = absl::GetFlag(FLAGS_device);
  o.threads = absl::GetFlag(FLAGS_threads);
  o.worker_id = absl::GetFlag(FLAGS_worker_id);
  o.metrics_listen = absl::GetFlag(FLAGS_metrics_listen);
  o.heartbeat = absl::GetFlag(FLAGS_heartbeat);
  o.video_encoder = absl::GetFlag(FLAGS_video_encoder);
  o.encode_queue_depth = absl::GetFlag(FLAGS_encode_queue_depth);
  o.job_stall_timeout = absl::GetFlag(FLAGS_job_stall_timeout);
  o.security.insecure = absl::GetFlag(FLAGS_insecure);
  o.security.tls_ca = absl::GetFlag(FLAGS_tls_ca);
  o.security.tls_cert = absl::GetFlag(FLAGS_tls_cert);
  o.security.tls_key = absl::GetFlag(FLAGS_tls_key);
  o.security.tls_server_name = absl::GetFlag(FLAGS_tls_server_name);
  o.security.worker_secret_file = absl::GetFlag(FLAGS_worker_secret_file);
  o.version = TPDIFF_VERSION;
  if (absl::Status status = tpdiff::worker::RunWorkerProcess(o); !status.ok()) {
    std::cerr << "tpdiff-worker: " << status << "\n";
    return 1;
  }
  return 0;
}
