#ifndef TPDIFF_SERVER_FRONT_SERVER_H_
#define TPDIFF_SERVER_FRONT_SERVER_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/grpcpp.h>
#include <prometheus/exposer.h>
#include <prometheus/registry.h>

#include "absl/status/status.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "tpdiff/server/clock.h"
#include "tpdiff/server/dispatcher.h"
#include "tpdiff/server/job_store.h"
#include "tpdiff/server/metrics.h"
#include "tpdiff/server/model_registry.h"
#include "tpdiff/server/redis_state.h"
#include "tpdiff/server/security.h"
#include "tpdiff/server/services.h"
#include "tpdiff/server/tenants.h"

namespace tpdiff::server {

// The health service name that reports readiness; "" reports liveness.
inline constexpr char kReadinessService[] = "tpdiff.v1.VideoGeneration";

struct FrontServerOptions {
  std::string listen = "0.0.0.0:50051";  // host:port; port 0 picks a free one (see port())
  std::string metrics_listen;            // host:port for /metrics; empty = no exposer
  // host:port of a second, always plaintext gRPC listener serving only grpc.health.v1 (the
  // same statuses as the main port), for probes that cannot do TLS such as Kubernetes'
  // native gRPC probes; empty = none. It reveals SERVING/NOT_SERVING and nothing else.
  std::string health_listen;
  std::string models_dir;                // read at start when set; missing folder = error
  std::string default_model;
  DispatcherOptions dispatcher;
  absl::Duration job_ttl = absl::Hours(1);
  size_t job_store_bytes = size_t{1} << 30;
  int max_receive_message_bytes = 16 << 20;
  int max_send_message_bytes = 16 << 20;
  absl::Duration tick_interval = absl::Milliseconds(100);  // leases, deadlines, health
  // Security (docs/security.md). The library defaults to plaintext without auth, as tests
  // and local mode use it; tpdiff-server makes both explicit (--insecure, --auth=none).
  std::optional<ServerTls> tls;  // nullopt = plaintext
  WorkerAuthOptions worker_auth;  // checked on WorkerGateway.Connect
  std::optional<std::vector<TenantConfig>> tenants;  // nullopt = no API keys (--auth=none)
  // Shared state (--state=redis://...; docs/scale-out.md): nullopt = in this process.
  std::optional<RedisAddress> redis;
};

// Wires the front: model registry, job store, dispatcher, gRPC services (with health and
// reflection), the /metrics exposer and a ticker thread; with options.redis, the store,
// queue and tenant limits are Redis's, shared with the other replicas.
//
// Ownership: owns everything it builds; borrows `clock` (must outlive it). Thread safety:
// Start, Drain and Shutdown are called from one controlling thread.
class FrontServer {
 public:
  FrontServer(FrontServerOptions options, const Clock& clock);
  ~FrontServer();  // Shutdown(0) if still running

  absl::Status Start();
  int port() const { return port_; }                  // the bound gRPC port
  int metrics_port() const { return metrics_port_; }  // 0 without an exposer
  int health_port() const { return health_port_; }    // 0 without --health-listen

  // Stops admitting (UNAVAILABLE) and reports the readiness service NOT_SERVING.
  void Drain();
  // Graceful shutdown: Drain, cancel queued jobs, send Drain to workers, let running jobs
  // finish for up to `grace`, cancel the rest (Cancelled{source: "shutdown"}), report every
  // health service NOT_SERVING and stop the gRPC server and the exposer.
  void Shutdown(absl::Duration grace);

  Dispatcher& dispatcher() { return *dispatcher_; }
  JobStore& store() { return *store_; }
  prometheus::Registry& registry() { return *registry_; }
  Tenants* tenants() { return tenants_.get(); }  // null when auth is off

 private:
  void TickLoop();
  void UpdateHealth();
  void SetHealth(const std::string& service, bool serving);

  const FrontServerOptions options_;
  const Clock& clock_;
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<ServerMetrics> metrics_;
  std::unique_ptr<ModelRegistry> models_;
  std::unique_ptr<RedisState> redis_;  // before what borrows it: destroyed after
  std::unique_ptr<JobStore> store_;
  std::unique_ptr<Dispatcher> dispatcher_;
  std::unique_ptr<Tenants> tenants_;
  std::unique_ptr<WorkerAuthenticator> worker_auth_;
  std::unique_ptr<VideoGenerationService> api_service_;
  std::unique_ptr<WorkerGatewayService> gateway_service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<grpc::CallbackGenericService> health_unimplemented_;  // outlives health_server_
  std::unique_ptr<grpc::Server> health_server_;  // health-only plaintext listener, or null
  std::unique_ptr<prometheus::Exposer> exposer_;
  std::thread ticker_;
  absl::Notification stop_ticker_;
  int port_ = 0;
  int metrics_port_ = 0;
  int health_port_ = 0;
  bool started_ = false;
  bool stopped_ = false;
};

}  // namespace tpdiff::server

#endif  // TPDIFF_SERVER_FRONT_SERVER_H_
