#ifndef TPDIFF_WORKER_GATEWAY_CLIENT_H_
#define TPDIFF_WORKER_GATEWAY_CLIENT_H_

#include <grpcpp/grpcpp.h>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "tpdiff/common/clock.h"
#include "tpdiff/common/worker_secret.h"
#include "tpdiff/v1/video_generation.pb.h"
#include "tpdiff/worker/backoff.h"
#include "tpdiff/worker/event_sink.h"
#include "tpdiff/worker/job_runner.h"
#include "tpdiff/worker/readiness.h"
#include "tpdiff/worker/v1/worker.grpc.pb.h"

namespace tpdiff::worker {

struct GatewayClientOptions {
  std::string server_address;  // the front's WorkerGateway, e.g. "localhost:50052"
  std::string worker_id;
  std::string device;  // "cpu" | "cuda:0", for Hello
  std::string version;
  uint32_t slots = 1;
  std::vector<tpdiff::v1::ModelInfo> models;
  // Overrides Welcome.heartbeat_interval (the front's lease timeout still applies).
  std::optional<absl::Duration> heartbeat_interval;
  BackoffOptions backoff;
  std::shared_ptr<grpc::ChannelCredentials> credentials;  // null = insecure
  // TLS: the name to verify in the front's certificate instead of server_address's host;
  // empty = that host.
  std::string tls_server_name;
  // Shared worker secret, sent as metadata common::kWorkerSecretMetadata on every Connect; empty =
  // none (the front may instead require a client certificate: see docs/security.md).
  std::string secret;
  // Emit blocks while this many bytes wait for the stream, so a slow network slows the
  // sampler instead of growing memory without bound.
  size_t max_buffered_bytes = size_t{64} << 20;
  // Told when the front accepts this worker (Welcome) and when that stream ends, and when a
  // drain begins; null = nobody listens. Not owned; must outlive the client.
  WorkerReadiness* readiness = nullptr;
};

// tpdiff-worker's flags for dialling the front (docs/security.md).
struct GatewaySecurityFlags {
  bool insecure = false;           // plaintext (local mode and tests only)
  std::string tls_ca;              // PEM roots of the front's certificate; empty = system roots
  std::string tls_cert;            // client certificate for a front with --tls-client-ca
  std::string tls_key;             // its private key
  std::string tls_server_name;     // name to verify instead of the dialled host
  std::string worker_secret_file;  // empty = env common::kWorkerSecretEnv, if set
};

// Fills options.credentials, tls_server_name and secret from `flags`. INVALID_ARGUMENT for
// conflicting flags, NOT_FOUND naming an unreadable file.
absl::Status ConfigureGatewaySecurity(const GatewaySecurityFlags& flags,
                                      GatewayClientOptions& options);

// "<hostname>-<pid>": the worker id when none is given.
std::string DefaultWorkerId();

// The worker's side of WorkerGateway.Connect: dials the front, says Hello, waits for Welcome,
// then feeds Assign / Cancel / Drain to the JobRunner and streams its events back, with a
// Heartbeat every heartbeat interval. When the stream breaks, the running jobs are abandoned
// (the front re-queues them; reporting them cancelled would end them for the client) and it
// dials again with exponential backoff and jitter; a drain during that wait ends Run (OK).
//
// Threads: Run's caller reads the stream; one writer thread per connection owns all writes
// (gRPC allows one outstanding write), so slot threads only enqueue. During a drain one more
// thread per connection waits for the runner to go idle and wakes the writer.
//
// Time: heartbeats, reconnect backoff and the close grace of a drain are deadlines on
// `clock` (a FakeClock in tests); nothing polls.
//
// Thread safety: Emit, Drain and Shutdown may be called from any thread. Ownership: `clock`
// must outlive the client.
class GatewayClient : public EventSink {
 public:
  GatewayClient(GatewayClientOptions options, const common::Clock& clock);
  ~GatewayClient() override;

  // Serves `runner` until a drain finishes (OK) or Shutdown is called (CANCELLED).
  absl::Status Run(JobRunner& runner);

  // Finish the running jobs, take no new ones, then close the stream (SIGTERM).
  void Drain();
  // Stop at once: abandon the jobs and close. Run returns.
  void Shutdown();

  // EventSink: queued for the stream; dropped while disconnected (their jobs were abandoned).
  void Emit(tpdiff::worker::v1::WorkerEvent event) override;

  bool connected() const;
  // Number of streams that got as far as Welcome; tests watch reconnects with it.
  int welcomes() const;

 private:
  enum class End { kBroken, kDrained, kShutdown };
  // `ended_with`: the stream's final status (why the front refused or ended it).
  End ServeConnection(JobRunner& runner, absl::Status* ended_with);
  void WriterLoop(JobRunner& runner,
                  grpc::ClientReaderWriter<tpdiff::worker::v1::WorkerMessage,
                                           tpdiff::worker::v1::DispatchMessage>* stream,
                  grpc::ClientContext* context, absl::Duration heartbeat);
  bool WriterHasWork() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool EmitAdmissible() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const GatewayClientOptions options_;
  const common::Clock& clock_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<tpdiff::worker::v1::WorkerGateway::Stub> stub_;

  mutable absl::Mutex mu_;
  std::deque<tpdiff::worker::v1::WorkerMessage> outbox_ ABSL_GUARDED_BY(mu_);
  size_t outbox_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  bool connected_ ABSL_GUARDED_BY(mu_) = false;
  bool stream_done_ ABSL_GUARDED_BY(mu_) = false;  // the current stream's reader ended
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;
  bool drained_ ABSL_GUARDED_BY(mu_) = false;  // the writer half-closed after a drain
  // Draining: waits for the runner to go idle, then sets runner_idle_. Started by the writer,
  // joined by ServeConnection once the writer has ended.
  std::thread idle_watch_ ABSL_GUARDED_BY(mu_);
  bool runner_idle_ ABSL_GUARDED_BY(mu_) = false;
  int welcomes_ ABSL_GUARDED_BY(mu_) = 0;
  JobRunner* runner_ ABSL_GUARDED_BY(mu_) = nullptr;
  grpc::ClientContext* context_ ABSL_GUARDED_BY(mu_) = nullptr;  // of the live stream
};

// The first SIGINT/SIGTERM (common::CatchShutdownSignals) drains `gateway`, the second shuts
// it down; each is logged on stderr. Waits on a detached thread, so `gateway` must live until
// the process exits.
void DrainOnSignals(GatewayClient& gateway);

}  // namespace tpdiff::worker

#endif  // TPDIFF_WORKER_GATEWAY_CLIENT_H_
