#ifndef TPDIFF_WORKER_WORKER_PROCESS_H_
#define TPDIFF_WORKER_WORKER_PROCESS_H_

#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "tpdiff/worker/gateway_client.h"

namespace tpdiff::worker {

// tpdiff-worker's settings, one field per flag.
struct WorkerProcessOptions {
  std::string server = "localhost:50051";  // the front's WorkerGateway
  std::string models_dir = "models";
  std::string models;  // comma-separated packages; empty = all in models_dir
  int slots = 1;
  std::string device = "auto";                      // common::ParseDeviceSpec
  int threads = 0;                                  // LibTorch intra-op threads; 0 = one per core
  std::string worker_id;                            // empty = DefaultWorkerId()
  std::string metrics_listen;                       // host:port of /metrics; empty = off
  absl::Duration heartbeat = absl::ZeroDuration();  // 0 = the front's, from Welcome
  // MP4 encoder: auto (h264_nvenc where it opens, else libx264), libx264 or h264_nvenc.
  std::string video_encoder = "auto";
  int encode_queue_depth = 2;  // encodes waiting per slot; 0 = on the sampling thread
  // No sampler step for this long fails the job and replaces its slot; 0 = off.
  absl::Duration job_stall_timeout = absl::Seconds(300);
  GatewaySecurityFlags security;
  std::string version;  // reported in Hello
};

// The worker process: sets LibTorch's threads, loads every model once (the slots share it),
// serves /metrics, then runs jobs from the front until a drain completes (OK) or a second
// signal stops it.
// SIGINT/SIGTERM (common::CatchShutdownSignals, called before) drive DrainOnSignals. Logs
// progress on stderr; errors name the flag or step that failed.
absl::Status RunWorkerProcess(const WorkerProcessOptions& options);

}  // namespace tpdiff::worker

#endif  // TPDIFF_WORKER_WORKER_PROCESS_H_
